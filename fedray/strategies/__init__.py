"""Strategies (docs/strategies.md). The package imports lazily: ``fedray.strategies.traits``
is read by the config rules before torch is imported, so importing it must not pull in
the strategies themselves (which need torch)."""

from __future__ import annotations

import importlib
from typing import Any

_HOMES = {
    "ClientRound": "base", "State": "base", "Strategy": "base", "Upload": "base",
    "FedAvg": "fedavg", "FedBN": "fedbn", "FedAdam": "fedopt", "FedYogi": "fedopt",
    "FedAdagrad": "fedopt", "FedProx": "fedprox", "Local": "reference", "Pooled": "reference",
    "Scaffold": "scaffold", "STRATEGIES": "registry", "build_strategy": "registry",
    "StrategyTraits": "traits", "TRAITS": "traits", "traits_of": "traits",
}

__all__ = [
    "STRATEGIES", "TRAITS", "ClientRound", "FedAdagrad", "FedAdam", "FedAvg", "FedBN",
    "FedProx", "FedYogi", "Local", "Pooled", "Scaffold", "State", "Strategy",
    "StrategyTraits", "Upload", "build_strategy", "traits_of",
]  # = _HOMES' keys (tests/test_registries.py)


def __getattr__(name: str) -> Any:
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module 'fedray.strategies' has no attribute {name!r}")
    return getattr(importlib.import_module(f"fedray.strategies.{home}"), name)
