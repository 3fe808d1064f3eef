"""Strategy registry: config name -> constructor (docs/strategies.md)."""

from __future__ import annotations

from collections.abc import Callable

from fedray.config import StrategyConfig
from fedray.strategies.base import Strategy
from fedray.strategies.fedavg import FedAvg
from fedray.strategies.fedbn import FedBN
from fedray.strategies.fedopt import FedAdagrad, FedAdam, FedYogi
from fedray.strategies.fedprox import FedProx
from fedray.strategies.reference import Local, Pooled
from fedray.strategies.scaffold import Scaffold


def _lr(config: StrategyConfig, default: float = 1.0) -> float:
    return config.server_lr if config.server_lr is not None else default


def _fedopt(cls: type) -> Callable[[StrategyConfig], Strategy]:
    # an adaptive step starts near η·√(1/(1 − β2))·(1 − β1) ≈ 3η per coordinate: small η
    return lambda c: cls(server_lr=_lr(c, 0.01), beta1=c.beta1, beta2=c.beta2, tau=c.tau)


STRATEGIES: dict[str, Callable[[StrategyConfig], Strategy]] = {
    "fedavg": lambda c: FedAvg(server_lr=_lr(c)),
    "fedprox": lambda c: FedProx(mu=c.mu, server_lr=_lr(c)),
    "scaffold": lambda c: Scaffold(server_lr=_lr(c), control_weights=c.control_weights),
    "fedadam": _fedopt(FedAdam),
    "fedyogi": _fedopt(FedYogi),
    "fedadagrad": _fedopt(FedAdagrad),
    "fedbn": lambda c: FedBN(server_lr=_lr(c)),
    "local": lambda c: Local(),
    "pooled": lambda c: Pooled(),
}


def build_strategy(config: StrategyConfig) -> Strategy:
    return STRATEGIES[config.name](config)
