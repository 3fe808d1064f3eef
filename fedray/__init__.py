"""fedray: a Ray-based simulator of privacy-preserving federated learning between
hospitals. ``fedray.simulate(SimulationConfig(...))`` is the library's front door."""

from typing import Any

from fedray.config import (
    ConfigError,
    DatasetConfig,
    EncryptionConfig,
    ModelConfig,
    PartitionConfig,
    PrivacyConfig,
    RayConfig,
    SimulationConfig,
    StrategyConfig,
    config_from_dict,
)


def __getattr__(name: str) -> Any:  # lazy: Ray workers import fedray.* without the orchestrator
    if name in ("Result", "simulate"):
        from fedray import simulation

        return getattr(simulation, name)
    raise AttributeError(f"module 'fedray' has no attribute {name!r}")


__all__ = [
    "ConfigError", "DatasetConfig", "EncryptionConfig", "ModelConfig", "PartitionConfig",
    "PrivacyConfig", "RayConfig", "Result", "SimulationConfig", "StrategyConfig",
    "config_from_dict", "simulate",
]
__version__ = "0.1.0"
