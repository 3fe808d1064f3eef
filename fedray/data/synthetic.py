"""A seeded generator of tabular hospital data at any scale.

Records come from one shared teacher (so federating helps); heterogeneity comes from
the partitioner (label and quantity skew) and from a per-hospital covariate shift
applied after partitioning (:func:`shift_features`), which mimics other scanners and
lab equipment.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

from fedray.config import DatasetConfig
from fedray.data.base import RecordTable


def make_synthetic(config: DatasetConfig, *, seed: int) -> RecordTable:
    rng = np.random.default_rng([seed, 0x5EED])
    d, c, n = config.num_features, config.num_classes, config.num_records
    features = rng.standard_normal((n, d)).astype(np.float32)
    hidden = np.tanh(features @ rng.standard_normal((d, 2 * d)) / np.sqrt(d))
    logits = hidden @ rng.standard_normal((2 * d, c)) * 3.0
    labels = np.argmax(logits + rng.gumbel(size=logits.shape), axis=1).astype(np.int64)
    return RecordTable(
        features=features,
        labels=labels,
        groups=None,
        group_names=(),
        num_classes=c,
        standardise_per_hospital=False,
        train_fraction=1.0 - config.test_fraction,
        split_seed=seed,
    )


def shift_features(
    features: np.ndarray, *, hospital: int, strength: float, seed: int
) -> np.ndarray:
    """One hospital's covariate shift: a per-feature gain and offset of size ``strength``."""
    if strength == 0:
        return features
    gain, offset = _gain_and_offset(seed, hospital, strength, features.shape[1])
    return (features * gain + offset).astype(np.float32)


@lru_cache(maxsize=4)  # a hospital's train split, then its test split: drawn once
def _gain_and_offset(seed: int, hospital: int, strength: float, d: int
                     ) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng([seed, 0xC0DE, hospital])
    gain = np.exp(strength * 0.5 * rng.standard_normal(d))
    return gain, strength * rng.standard_normal(d)
