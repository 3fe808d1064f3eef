"""fedray: a Ray-based simulator of privacy-preserving federated learning between
hospitals. ``fedray.simulate(SimulationConfig(...))`` is the library's front door."""

from fedray.config import (
    ConfigError, DatasetConfig, ModelConfig, PartitionConfig, RayConfig, SimulationConfig,
    StrategyConfig, config_from_dict,
)
from fedray.simulation import Result, simulate

__all__ = [
    "ConfigError", "DatasetConfig", "ModelConfig", "PartitionConfig", "RayConfig", "Result",
    "SimulationConfig", "StrategyConfig", "config_from_dict", "simulate",
]
__version__ = "0.1.0"
