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

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

from fedray.privacy.accounting import PrivacyLedger
from fedray.privacy.mechanisms import add_gaussian_noise, clip_to_norm
from fedray.privacy.randomness import Randomness
from fedray.privacy.skellam import (
    SkellamPlan,
    centre,
    conditional_round,
    rotate,
    skellam_noise,
    unrotate,
    wrap,
)


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


class KeepFloats:
    """No discretisation: the weighted update goes to the codec as it is."""

    def __call__(self, weighted: np.ndarray, randomness: Randomness) -> np.ndarray:
        return weighted


@dataclass(frozen=True)
class SkellamShare:
    """Distributed DP (fedray/privacy/skellam.py): the weighted, clipped update rotated,
    scaled by γ, rounded conditionally to integers, plus this hospital's Skellam share
    (variance ``share_variance``), offset by 2^(B−1) and reduced into the field 2^B:
    integers in [0, 2^B). The offset makes a value its centred representative shifted,
    so the lanes' sum of n hospitals less n·2^(B−1) is the exact integer sum unless one
    hospital's own value left the field (fedray/crypto/lanes.py counts the sum's wraps)."""

    plan: SkellamPlan
    share_variance: float

    def __call__(self, weighted: np.ndarray, randomness: Randomness) -> np.ndarray:
        plan, rng = self.plan, randomness.generator()
        scaled = rotate(np.asarray(weighted, dtype=np.float64), plan.seed) * plan.scale
        rounded = conditional_round(scaled, plan.l2, rng)
        noised = rounded + skellam_noise(len(rounded), self.share_variance, rng)
        if not plan.reduces:  # threshold CKKS: whole, so the combined sum is exactly S
            return noised.astype(np.float64)
        return wrap(noised + (1 << (plan.bits - 1)), plan.bits).astype(np.float64)


Discretize = KeepFloats | SkellamShare


class KeepSum:
    """The decoded sum is the weighted sum already."""

    def __call__(self, total: np.ndarray, size: int, summands: int) -> np.ndarray:
        return total


@dataclass(frozen=True)
class SkellamRestore:
    """The server's side of :class:`SkellamShare`: the released integers (modulo 2^B
    less the ``summands`` hospitals' offsets of 2^(B−1); or the whole sum S under
    threshold CKKS), re-centred into the field (so S mod 2^B either way), divided by γ
    and rotated back to ``size`` coordinates."""

    plan: SkellamPlan

    def __call__(self, total: np.ndarray, size: int, summands: int) -> np.ndarray:
        plan = self.plan
        integers = np.rint(total).astype(np.int64)
        if plan.reduces:
            integers -= summands * (1 << (plan.bits - 1))
        return unrotate(centre(integers, plan.bits) / plan.scale, plan.seed, size)


Restore = KeepSum | SkellamRestore


@dataclass
class SkellamLedger:
    """The run's spending under distributed DP's Skellam mechanism: its own RDP
    (fedray/privacy/skellam.py), amplified by the hospitals' coins (``sample_rate``),
    composed over the rounds released. Same interface as :class:`PrivacyLedger`."""

    plan: SkellamPlan
    noise_multiplier: float  # σ: the released sum's noise std over the clip, unscaled
    sample_rate: float
    delta: float
    budget: float | None = None
    steps: int = 0
    accountant: str = "skellam-rdp"

    def epsilon_after(self, steps: int) -> float:
        return self.plan.epsilon(rounds=steps, sample_rate=self.sample_rate, delta=self.delta)

    @property
    def epsilon(self) -> float:
        return self.epsilon_after(self.steps)

    def can_afford(self, more_steps: int) -> bool:
        return self.budget is None or self.epsilon_after(self.steps + more_steps) <= self.budget

    def record(self, steps: int) -> None:
        self.steps += steps

    def with_double_sensitivity(self) -> SkellamLedger:
        """The ledger of a neighbour twice as far (a replacement), without a budget:
        Δ₂ and Δ₁ doubled under the same subsampling bound, as the Gaussian ledger halves
        σ — a heuristic for the replace relation under Poisson sampling, not a proof."""
        plan = dataclasses.replace(self.plan, l2=2 * self.plan.l2, l1=2 * self.plan.l1)
        return dataclasses.replace(self, plan=plan, budget=None)


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

    ledger: PrivacyLedger | SkellamLedger
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
    discretize: Discretize = field(default_factory=KeepFloats)


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
    a plaintext, noise-free update must keep (central DP), or None. ``restore``: what
    turns the decoded sum back into the weighted sum (distributed DP's integers)."""

    noise: NoSumNoise | SumNoise = field(default_factory=NoSumNoise)
    denominator: float | None = None
    min_accepted: int = 1
    norm_bound: float | None = None
    restore: Restore = field(default_factory=KeepSum)

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

    def __init__(self, ledger: PrivacyLedger | SkellamLedger, *, charge_on_dispatch: bool
                 ) -> None:
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
