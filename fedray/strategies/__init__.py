"""Strategy registry: config name -> constructor."""

from __future__ import annotations

from typing import Callable

from fedray.config import StrategyConfig
from fedray.strategies.base import Strategy
from fedray.strategies.fedavg import FedAvg

__all__ = ["FedAvg", "STRATEGIES", "Strategy", "build_strategy"]

STRATEGIES: dict[str, Callable[[StrategyConfig], Strategy]] = {
    "fedavg": lambda config: FedAvg(server_lr=config.server_lr),
}


def build_strategy(config: StrategyConfig) -> Strategy:
    return STRATEGIES[config.name](config)
