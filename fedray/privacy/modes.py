"""One object per privacy mode: what it protects and against which neighbouring
worlds, who is sampled and how, how each party's σ is planned, what the hospital does
to its update, and what the server adds. Nothing else in fedray branches on the mode
(docs/privacy.md has the threat model of each)."""

from __future__ import annotations

from collections.abc import Callable
from typing import ClassVar

import numpy as np

from fedray.privacy.adjacency import Adjacency

RUN = -1  # the party key of the run's own accountant (central, distributed)


def sample_size(num_hospitals: int, fraction: float) -> int:
    """How many hospitals a fixed-size round asks (at least one)."""
    return max(1, round(fraction * num_hospitals))


SigmaFor = Callable[..., float]  # (sample_rate=q, steps=T) -> σ for the run's target ε


class PrivacyMode:
    """``none``: no privacy; the base every mode refines."""

    name: ClassVar[str] = "none"
    adjacency: ClassVar[Adjacency | None] = None
    unit: ClassVar[str | None] = None  # "hospital" (client-level) or "record"
    per_hospital: ClassVar[bool] = False  # one accountant per hospital, else the run's
    clips_updates: ClassVar[bool] = False  # the hospital clips its update to C
    trains_records_privately: ClassVar[bool] = False  # DP-SGD inside the hospital
    self_sampling: ClassVar[bool] = False  # each hospital flips its own coin
    releases_every_round: ClassVar[bool] = False  # a noised sum even if nobody arrived
    fixed_weights: ClassVar[bool] = False  # every participant weighs 1/(qN)
    noise_on_updates: ClassVar[bool] = False  # the updates themselves carry noise
    sample_is_secret: ClassVar[bool] = False  # who took part is part of what ε protects
    # the hospitals' noise is integer Skellam shares on integer updates, summed exactly
    # (fedray/privacy/skellam.py); ε from the Skellam mechanism's own RDP
    sums_integers: ClassVar[bool] = False

    @property
    def enabled(self) -> bool:
        return self.adjacency is not None

    def plan_parties(self, *, num_rounds: int, fraction: float, train_sizes: list[int],
                     batch_size: int, sigma_for: SigmaFor, steps_for: Callable[[int], int]
                     ) -> dict[int, tuple[float, float, int]]:
        """Each accountant's (σ, sample rate, steps per round it takes part)."""
        return {}

    def client_noise_std(self, *, sigma: float, clip: float, min_shares: int,
                         colluders: int) -> float:
        return 0.0

    def server_noise_std(self, *, sigma: float, clip: float, fixed_weight: float) -> float:
        return 0.0

    def sample(self, num_hospitals: int, fraction: float, rng: np.random.Generator
               ) -> np.ndarray:
        """A fixed-size sample: the aggregator sees who takes part anyway."""
        count = sample_size(num_hospitals, fraction)
        return np.sort(rng.choice(num_hospitals, size=count, replace=False))


class LocalDP(PrivacyMode):
    """Each hospital clips and adds the full noise; replace-one (participation is seen)."""

    name = "local"
    adjacency, unit, per_hospital = Adjacency.REPLACE_ONE, "hospital", True
    clips_updates, noise_on_updates = True, True

    def plan_parties(self, *, num_rounds: int, fraction: float, train_sizes: list[int],
                     batch_size: int, sigma_for: SigmaFor, steps_for: Callable[[int], int]
                     ) -> dict[int, tuple[float, float, int]]:
        sigma = sigma_for(sample_rate=1.0, steps=num_rounds)  # q = 1: no amplification
        return dict.fromkeys(range(len(train_sizes)), (sigma, 1.0, 1))

    def client_noise_std(self, *, sigma: float, clip: float, min_shares: int,
                         colluders: int) -> float:
        return sigma * clip


class CentralDP(PrivacyMode):
    """DP-FedAvg: a trusted server samples (hidden) and noises the sum; add/remove."""

    name = "central"
    adjacency, unit = Adjacency.ADD_REMOVE, "hospital"
    clips_updates, releases_every_round, fixed_weights = True, True, True
    sample_is_secret = True  # the Poisson sample (distributed: the hospitals' own coins)

    def plan_parties(self, *, num_rounds: int, fraction: float, train_sizes: list[int],
                     batch_size: int, sigma_for: SigmaFor, steps_for: Callable[[int], int]
                     ) -> dict[int, tuple[float, float, int]]:
        return {RUN: (sigma_for(sample_rate=fraction, steps=num_rounds), fraction, 1)}

    def server_noise_std(self, *, sigma: float, clip: float, fixed_weight: float) -> float:
        return sigma * clip * fixed_weight  # one hospital moves the sum by ≤ C/(qN)

    def sample(self, num_hospitals: int, fraction: float, rng: np.random.Generator
               ) -> np.ndarray:
        """Poisson: each hospital independently, the sampling Opacus accounts."""
        return np.flatnonzero(rng.random(num_hospitals) < fraction)


class DistributedDP(CentralDP):
    """Everyone sends every round, each with an integer noise share (Skellam); only the
    encrypted integer sum carries the full noise; each hospital's own coin decides its
    content; zero-out. Any m released shares, less the t colluders know, still carry
    the planned variance (fedray/privacy/skellam.py)."""

    name = "distributed"
    adjacency = Adjacency.ZERO_OUT
    releases_every_round, self_sampling, noise_on_updates = False, True, True
    sums_integers = True

    def server_noise_std(self, *, sigma: float, clip: float, fixed_weight: float) -> float:
        return 0.0

    def sample(self, num_hospitals: int, fraction: float, rng: np.random.Generator
               ) -> np.ndarray:
        return np.arange(num_hospitals)


class DPSGD(PrivacyMode):
    """Opacus DP-SGD inside each hospital; add/remove one record."""

    name = "dpsgd"
    adjacency, unit, per_hospital = Adjacency.ADD_REMOVE, "record", True
    trains_records_privately = True

    def plan_parties(self, *, num_rounds: int, fraction: float, train_sizes: list[int],
                     batch_size: int, sigma_for: SigmaFor, steps_for: Callable[[int], int]
                     ) -> dict[int, tuple[float, float, int]]:
        parties = {}
        for i, n in enumerate(train_sizes):
            q = min(1.0, batch_size / n)  # Poisson batches of batch_size on average
            steps = steps_for(n)
            parties[i] = (sigma_for(sample_rate=q, steps=steps * num_rounds), q, steps)
        return parties


MODES: dict[str, PrivacyMode] = {mode.name: mode for mode in
                                 (PrivacyMode(), LocalDP(), CentralDP(), DistributedDP(),
                                  DPSGD())}
