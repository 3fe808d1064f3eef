"""Privacy as steps: what a privacy mode puts into a hospital and into the server.

A mode (fedray/privacy/modes.py) is turned by its plan (fedray/privacy/plan.py) into
objects that the hospital, the workers and the driver only call: the update's steps
(clip, noise), the hospital's ledger, its participation coin, its local trainer, the
server's steps (noise on the sum, the denominator, the release floor, the norm bound)
and the run's ledger. "No privacy" is these objects' null forms, so nothing outside
``fedray/privacy/`` asks which mode runs. The order of the update's steps is written
once, in :class:`fedray.pipeline.ClientPipeline`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

from fedray.privacy.accounting import PrivacyLedger
from fedray.privacy.mechanisms import add_gaussian_noise, clip_to_norm
from fedray.privacy.randomness import Randomness


class UpdateStep(Protocol):
    """One step on a hospital's update vector before weighting (clip, noise)."""

    def __call__(self, vector: np.ndarray, randomness: Randomness) -> np.ndarray: ...


@dataclass(frozen=True)
class ClipToNorm:
    """Scales the update to L2 norm at most ``clip`` (C)."""

    clip: float

    def __call__(self, vector: np.ndarray, randomness: Randomness) -> np.ndarray:
        return clip_to_norm(vector, clip=self.clip)


@dataclass(frozen=True)
class GaussianNoise:
    """Adds N(0, std²) per coordinate from the hospital's own noise stream."""

    std: float

    def __call__(self, vector: np.ndarray, randomness: Randomness) -> np.ndarray:
        return add_gaussian_noise(vector, self.std, randomness.generator(),
                                  secure=randomness.secure)


class NoLedger:
    """The ledger of a party nobody accounts for: affords everything, spends nothing."""

    epsilon: float | None = None
    steps_per_round = 0

    def can_afford_round(self) -> bool:
        return True

    def charge_round(self) -> None:
        """Nothing to charge."""

    def state_dict(self) -> int | None:
        return None

    def load_state_dict(self, state: int | None) -> None:
        """Nothing to restore."""


@dataclass
class HospitalLedger:
    """A hospital's own accountant (local DP, DP-SGD) and its planned mechanism:
    σ, sample rate and the accountant steps one round takes."""

    ledger: PrivacyLedger
    steps_per_round: int

    @property
    def epsilon(self) -> float:
        return self.ledger.epsilon

    @property
    def noise_multiplier(self) -> float:
        return self.ledger.noise_multiplier

    @property
    def sample_rate(self) -> float:
        return self.ledger.sample_rate

    @property
    def accountant(self) -> str:
        return self.ledger.accountant

    def can_afford_round(self) -> bool:
        return self.ledger.can_afford(self.steps_per_round)

    def charge_round(self) -> None:
        self.ledger.record(self.steps_per_round)

    def record(self, steps: int) -> None:
        self.ledger.record(steps)

    def state_dict(self) -> int | None:
        return self.ledger.steps

    def load_state_dict(self, state: int | None) -> None:
        self.ledger.steps = int(state or 0)


Ledger = NoLedger | HospitalLedger


class EveryRound:
    """A hospital whose data is in every round it is asked to (draws no coin)."""

    def draw(self, randomness: Randomness) -> bool | None:
        """None: no coin was drawn, the data is in."""
        return None


@dataclass(frozen=True)
class OwnCoin:
    """Distributed DP: the hospital puts its data into a round with probability
    ``rate``, by its own coin; otherwise it sends a zero update with its noise share."""

    rate: float

    def draw(self, randomness: Randomness) -> bool | None:
        """Whether the coin put the data into this round."""
        return bool(randomness.generator().random() < self.rate)


Participation = EveryRound | OwnCoin


@dataclass(frozen=True)
class ClientPrivacy:
    """What a privacy mode puts into one hospital."""

    steps: tuple[UpdateStep, ...] = ()
    ledger: Ledger = field(default_factory=NoLedger)
    participation: Participation = field(default_factory=EveryRound)


class NoSumNoise:
    """The server adds nothing to the sum."""

    def __call__(self, total: np.ndarray) -> np.ndarray:
        return total

    def state_dict(self) -> dict | None:
        return None

    def load_state_dict(self, state: dict | None) -> None:
        """Nothing to restore."""


@dataclass
class SumNoise:
    """Central DP: the server adds N(0, std²) to the weighted sum from its own stream."""

    std: float
    randomness: Randomness

    def __call__(self, total: np.ndarray) -> np.ndarray:
        return add_gaussian_noise(total, self.std, self.randomness.generator(),
                                  secure=self.randomness.secure)

    def state_dict(self) -> dict | None:
        return self.randomness.state_dict()

    def load_state_dict(self, state: dict | None) -> None:
        self.randomness.load_state_dict(state)


@dataclass(frozen=True)
class ServerPrivacy:
    """What a privacy mode puts into the aggregator. ``denominator``: the averaged
    parts' fixed divisor (central, distributed: the weights sum to 1 in expectation),
    or None for the weights that arrived. ``min_accepted``: fewer valid updates are not
    released (0: a noised sum even when nobody arrived). ``norm_bound``: the clip bound
    a plaintext, noise-free update must keep (central DP), or None."""

    noise: NoSumNoise | SumNoise = field(default_factory=NoSumNoise)
    denominator: float | None = None
    min_accepted: int = 1
    norm_bound: float | None = None

    @property
    def releases_empty_rounds(self) -> bool:
        return self.min_accepted == 0


class NoRunLedger:
    """The run's ledger when the run itself spends nothing (per-hospital modes, none)."""

    epsilon: float | None = None

    def can_start_round(self) -> bool:
        return True

    def dispatched(self) -> bool:
        return False

    def settled(self, released: bool) -> bool:
        return False

    def state_dict(self) -> dict[str, Any]:
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Nothing to restore."""


class RunLedger:
    """The run's own accountant (central, distributed DP).

    central releases a noised sum every round, so each round is charged when it is
    dispatched. distributed releases only sums with enough noise shares, so a round is
    charged when the aggregator reports it released; until then it counts as possibly
    spent, and a round is started only if every round in flight could be afforded."""

    def __init__(self, ledger: PrivacyLedger, *, charge_on_dispatch: bool) -> None:
        self.ledger = ledger
        self.charge_on_dispatch = charge_on_dispatch
        self.in_flight = 0

    @property
    def epsilon(self) -> float:
        return self.ledger.epsilon

    def can_start_round(self) -> bool:
        return self.ledger.can_afford(1 + self.in_flight)

    def dispatched(self) -> bool:
        """Records a dispatched round; True when that already charged it."""
        if self.charge_on_dispatch:
            self.ledger.record(1)
            return True
        self.in_flight += 1
        return False

    def settled(self, released: bool) -> bool:
        """Settles a round the aggregator reported on; True when it was charged."""
        if self.charge_on_dispatch:
            return False
        self.in_flight -= 1
        if released:
            self.ledger.record(1)
        return released

    def state_dict(self) -> dict[str, Any]:
        return {"steps": self.ledger.steps, "in_flight": self.in_flight}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.ledger.steps = int(state["steps"])
        self.in_flight = int(state["in_flight"])
