"""What the rest of fedray may know about a strategy, without importing torch.

Config rules (fedray/config_rules.py), the orchestrator and the workers ask a
strategy's traits, never its name: a new strategy states its traits here and in its
class, and nothing outside ``fedray/strategies/`` changes.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class StrategyTraits:
    """``aggregates``: False when every hospital trains alone and nothing is summed
    (``local``: the final models are cross-evaluated instead). ``trains_on_union``: one
    extra trainer, built from every hospital's plan, trains on the union of their
    records and its model is the global one (``pooled``). ``keeps_batchnorm_local``:
    each hospital keeps its BatchNorm layers (FedBN), so a BatchNorm model is safe
    under client-level DP and the strategy needs one. ``control_variates``: the server
    state sums the hospitals' Δc every round (SCAFFOLD), so client-level DP noise would
    accumulate there. ``plain_sgd_only``: the client rule assumes plain SGD steps."""

    aggregates: bool = True
    trains_on_union: bool = False
    keeps_batchnorm_local: bool = False
    control_variates: bool = False
    plain_sgd_only: bool = False

    @property
    def reference_run(self) -> bool:
        """A reference row of an FL table (local, pooled): no update to protect, attack
        or encrypt."""
        return not self.aggregates or self.trains_on_union


FEDERATED = StrategyTraits()

TRAITS: dict[str, StrategyTraits] = {
    "fedavg": FEDERATED,
    "fedprox": FEDERATED,
    "scaffold": StrategyTraits(control_variates=True, plain_sgd_only=True),
    "fedadam": FEDERATED,
    "fedyogi": FEDERATED,
    "fedadagrad": FEDERATED,
    "fedbn": StrategyTraits(keeps_batchnorm_local=True),
    "local": StrategyTraits(aggregates=False),
    "pooled": StrategyTraits(trains_on_union=True),
}


def traits_of(name: str) -> StrategyTraits:
    return TRAITS[name]
