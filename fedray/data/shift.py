"""Feature shift between hospitals ("different scanners"), for any partition and dataset.

Each hospital draws, from its own seeded stream, a :class:`Scanner`: a per-feature gain
and offset, a level of additive measurement noise, and a set of features it does not
measure at all. The scanner is applied where the hospital builds its data, after its
own standardisation, to train and test alike; it is a pure function of
``(seed, hospital index)`` and the records, so it does not matter which actor (or how
many hospitals beside it) builds the hospital.

With strength ``s`` (``partition.feature_shift``) and share ``m``
(``partition.masked_features``), over ``d`` features:

- gain   ``exp(s/2 · z)``, ``z ~ N(0, 1)`` per feature (log-normal, median 1);
- offset ``s · z'``,  ``z' ~ N(0, 1)`` per feature;
- noise  ``N(0, (s/2)²)`` added to every measured value;
- masked ``round(m·d)`` features, at least one when ``m > 0`` and never all ``d``,
  are set to 0 (the standardised mean: "not measured here").

The normals and the feature order for masking are drawn whatever ``s`` and ``m`` are,
so a larger ``s`` scales the same shift and a larger ``m`` masks a superset.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

STREAM = 0x5CA7  # keeps these draws apart from the partitioner's and the generator's


@dataclass(frozen=True)
class FeatureShift:
    """What the driver plans: the strength and masked share, and the run's seed.

    A null object when both are 0 (the default): :meth:`apply` returns its input.
    """

    strength: float = 0.0
    masked_share: float = 0.0
    seed: int = 0

    @property
    def enabled(self) -> bool:
        return self.strength > 0 or self.masked_share > 0

    def scanner(self, *, hospital: int, num_features: int) -> Scanner:
        return draw_scanner(
            hospital=hospital, num_features=num_features, strength=self.strength,
            masked_share=self.masked_share, seed=self.seed,
        )

    def apply(
        self, x_train: np.ndarray, x_test: np.ndarray, *, hospital: int
    ) -> tuple[np.ndarray, np.ndarray]:
        """Both splits of one hospital, seen through its scanner."""
        if not self.enabled:
            return x_train, x_test
        scanner = self.scanner(hospital=hospital, num_features=x_train.shape[1])
        train_rng, test_rng = noise_streams(hospital=hospital, seed=self.seed)
        return scanner.measure(x_train, train_rng), scanner.measure(x_test, test_rng)


NO_SHIFT = FeatureShift()


@dataclass(frozen=True)
class Scanner:
    """One hospital's measurement: ``x · gain + offset + noise``, masked columns 0."""

    gain: np.ndarray  # (d,)
    offset: np.ndarray  # (d,)
    noise_std: float
    masked: np.ndarray  # bool, (d,)

    def measure(self, features: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        out = features.astype(np.float64) * self.gain + self.offset
        if self.noise_std > 0:
            out = out + rng.normal(0.0, self.noise_std, size=out.shape)
        out[:, self.masked] = 0.0
        return out.astype(np.float32)


def masked_count(num_features: int, share: float) -> int:
    """``round(share·d)``, at least one feature when ``share > 0``, never all of them."""
    if share <= 0:
        return 0
    return int(min(num_features - 1, max(1, round(share * num_features))))


def draw_scanner(
    *, hospital: int, num_features: int, strength: float, masked_share: float, seed: int
) -> Scanner:
    params = np.random.default_rng(np.random.SeedSequence([seed, STREAM, hospital]).spawn(3)[0])
    gain_z = params.standard_normal(num_features)
    offset_z = params.standard_normal(num_features)
    order = params.permutation(num_features)
    masked = np.zeros(num_features, dtype=bool)
    masked[order[: masked_count(num_features, masked_share)]] = True
    return Scanner(
        gain=np.exp(0.5 * strength * gain_z),
        offset=strength * offset_z,
        noise_std=0.5 * strength,
        masked=masked,
    )


def noise_streams(*, hospital: int, seed: int) -> tuple[np.random.Generator, np.random.Generator]:
    """Independent noise for the train and the test split of one hospital."""
    _, train, test = np.random.SeedSequence([seed, STREAM, hospital]).spawn(3)
    return np.random.default_rng(train), np.random.default_rng(test)
