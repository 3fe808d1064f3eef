"""Calibration and accounting, delegated to Opacus's accountants.

fedray writes no privacy formula of its own: σ comes from Opacus's
``get_noise_multiplier`` and ε from an Opacus accountant (RDP or PRV) fed the exact
history of (noise multiplier, sample rate, steps) that was run, with Opacus's default
settings, so a reviewer running Opacus on the same history gets the same number.

At large σ (small ε, few steps) Opacus's RDP warns that its best order is the largest
it tries: the RDP ε is then a valid but loose (conservative) bound; ``accountant=prv``
is tighter there. fedray keeps the defaults and silences that one warning.
"""

from __future__ import annotations

import dataclasses
import functools
import warnings
from dataclasses import dataclass
from typing import Any

from fedray.privacy.adjacency import Adjacency

History = tuple[tuple[float, float, int], ...]


def calibrate_noise_multiplier(
    *, epsilon: float, delta: float, sample_rate: float, steps: int, accountant: str,
    adjacency: Adjacency = Adjacency.ADD_REMOVE,
) -> float:
    """The smallest σ (to Opacus's tolerance) whose ε after ``steps`` is ≤ ``epsilon``
    under ``adjacency``: Opacus's add/remove σ scaled by the relation's sensitivity."""
    from opacus.accountants.utils import get_noise_multiplier  # imported on use: workers

    adjacency.accounted_multiplier(1.0, sample_rate)  # refuses what cannot be accounted
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Optimal order is the largest alpha")
        return adjacency.sensitivity * float(get_noise_multiplier(
            target_epsilon=epsilon, target_delta=delta, sample_rate=sample_rate, steps=steps,
            accountant=accountant,
        ))


@functools.lru_cache(maxsize=256)
def _rdp_of_one_step(noise_multiplier: float, sample_rate: float) -> Any:
    from opacus.accountants import RDPAccountant
    from opacus.accountants.analysis.rdp import compute_rdp

    return compute_rdp(q=sample_rate, noise_multiplier=noise_multiplier, steps=1,
                       orders=RDPAccountant.DEFAULT_ALPHAS)


def _rdp_epsilon(history: History, delta: float) -> float:
    """What ``RDPAccountant.get_epsilon`` computes, with each (σ, q)'s one-step RDP
    curve cached: Opacus's RDP of T steps is T times that curve (the same product),
    and the subsampled curve costs ~0.2 s to evaluate, once per ledger check otherwise."""
    from opacus.accountants import RDPAccountant
    from opacus.accountants.analysis.rdp import get_privacy_spent

    rdp = sum(_rdp_of_one_step(sigma, q) * steps for sigma, q, steps in history)
    eps, _ = get_privacy_spent(orders=RDPAccountant.DEFAULT_ALPHAS, rdp=rdp, delta=delta)
    return float(eps)


@functools.lru_cache(maxsize=4096)
def epsilon_spent(history: History, *, delta: float, accountant: str) -> float:
    """ε after the mechanisms in ``history``: (noise multiplier, sample rate, steps)."""
    from opacus.accountants import create_accountant

    if not history or all(steps == 0 for _, _, steps in history):
        return 0.0
    if accountant == "rdp":
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="Optimal order is the largest alpha")
            return _rdp_epsilon(tuple(e for e in history if e[2] > 0), delta)
    acc = create_accountant(mechanism=accountant)
    acc.history = [entry for entry in history if entry[2] > 0]
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Optimal order is the largest alpha")
        return float(acc.get_epsilon(delta=delta))


@dataclass
class PrivacyLedger:
    """One protected party's spending: a hospital (local, DP-SGD) or the run (central,
    distributed), under its mode's neighbouring relation.

    ``budget`` is a cap: :meth:`can_afford` says whether more steps stay within it,
    and the caller stops the party instead of exceeding it.
    """

    noise_multiplier: float  # σ = noise std / C, Opacus's meaning
    sample_rate: float
    delta: float
    accountant: str
    budget: float | None = None
    steps: int = 0
    adjacency: Adjacency = Adjacency.ADD_REMOVE

    def epsilon_after(self, steps: int) -> float:
        sigma = self.adjacency.accounted_multiplier(self.noise_multiplier, self.sample_rate)
        history = ((sigma, self.sample_rate, steps),)
        return epsilon_spent(history, delta=self.delta, accountant=self.accountant)

    @property
    def epsilon(self) -> float:
        return self.epsilon_after(self.steps)

    def can_afford(self, more_steps: int) -> bool:
        if self.budget is None:
            return True
        return self.epsilon_after(self.steps + more_steps) <= self.budget

    def record(self, steps: int) -> None:
        self.steps += steps

    def with_double_sensitivity(self) -> PrivacyLedger:
        """The ledger of a neighbour twice as far (a replacement: σ/2), without a budget."""
        return dataclasses.replace(self, noise_multiplier=self.noise_multiplier / 2,
                                   budget=None)
