"""Calibration and accounting, delegated to Opacus's accountants.

fedray writes no privacy formula of its own: σ comes from Opacus's
``get_noise_multiplier`` and ε from an Opacus accountant (RDP or PRV) fed the exact
history of (noise multiplier, sample rate, steps) that was run.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Optional

History = tuple[tuple[float, float, int], ...]


def calibrate_noise_multiplier(
    *, epsilon: float, delta: float, sample_rate: float, steps: int, accountant: str
) -> float:
    """The smallest σ (to Opacus's tolerance) whose ε after ``steps`` is ≤ ``epsilon``."""
    from opacus.accountants.utils import get_noise_multiplier  # imported on use: workers

    return float(get_noise_multiplier(
        target_epsilon=epsilon, target_delta=delta, sample_rate=sample_rate, steps=steps,
        accountant=accountant,
    ))


@functools.lru_cache(maxsize=4096)
def epsilon_spent(history: History, *, delta: float, accountant: str) -> float:
    """ε after the mechanisms in ``history``: (noise multiplier, sample rate, steps)."""
    from opacus.accountants import create_accountant

    if not history or all(steps == 0 for _, _, steps in history):
        return 0.0
    acc = create_accountant(mechanism=accountant)
    acc.history = [entry for entry in history if entry[2] > 0]
    return float(acc.get_epsilon(delta=delta))


@dataclass
class PrivacyLedger:
    """One protected party's spending: a hospital (local, DP-SGD) or the run (central).

    ``budget`` is a cap: :meth:`can_afford` says whether more steps stay within it,
    and the caller stops the party instead of exceeding it.
    """

    noise_multiplier: float
    sample_rate: float
    delta: float
    accountant: str
    budget: Optional[float] = None
    steps: int = 0

    def epsilon_after(self, steps: int) -> float:
        history = ((self.noise_multiplier, self.sample_rate, steps),)
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
