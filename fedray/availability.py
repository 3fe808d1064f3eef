"""Dropouts and stragglers: which hospitals are offline in a round, and which are late.

Each hospital draws, once and seeded, its probability of being reachable in a round and
its compute-speed factor. In a round, an offline hospital does not train; a hospital
whose simulated time (its local steps × seconds per step × its speed factor) passes
``round_timeout_s`` trains (and spends its privacy budget) but arrives late, and its
update is dropped. Simulated time keeps runs reproducible; the wall-clock timeout on
actor batches stays as the safety net. Pure functions over numpy generators.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from fedray.config import AvailabilityConfig


@dataclass(frozen=True)
class Profile:
    """Each hospital's online probability and speed factor (index = hospital)."""

    online: np.ndarray
    speed: np.ndarray
    round_seconds: np.ndarray  # simulated seconds of one round's local work


def draw_profile(config: AvailabilityConfig, steps: list[int],
                 generator: np.random.Generator) -> Profile:
    n = len(steps)
    online = np.clip(config.online + generator.uniform(-1, 1, n) * config.online_spread,
                     0.0, 1.0)
    speed = np.exp(generator.normal(0.0, config.speed_spread, n))
    return Profile(online, speed, np.asarray(steps) * config.seconds_per_step * speed)


def local_steps(sizes: list[int], *, epochs: int, steps: int | None,
                batch_size: int) -> list[int]:
    """Local SGD steps per round for each hospital (its batches × epochs, or steps)."""
    return [steps if steps is not None else epochs * math.ceil(n / batch_size) for n in sizes]


def offline(profile: Profile, invited: np.ndarray, generator: np.random.Generator
            ) -> set[int]:
    """The invited hospitals that cannot be reached this round (one coin each)."""
    coins = generator.random(len(profile.online))  # every hospital: streams stay aligned
    return {int(i) for i in invited if i < len(coins) and coins[i] >= profile.online[i]}


def late(profile: Profile, training: set[int], timeout_s: float | None) -> set[int]:
    """The hospitals whose simulated round time passes the round's timeout."""
    if timeout_s is None:
        return set()
    return {i for i in training if i < len(profile.round_seconds)
            and profile.round_seconds[i] > timeout_s}
