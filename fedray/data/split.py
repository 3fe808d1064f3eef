"""One hospital's train/test split, drawn exactly as scikit-learn's ``ShuffleSplit`` and
``StratifiedShuffleSplit`` (1.4 and later) draw it for the same labels, fraction and
seed, so FLamby's ``train_test_split`` rows are kept; without their per-call input
checks, which cost ~0.4 ms a hospital (40 s of a 100,000-hospital plan).

``tests/data/test_split.py`` checks every draw against scikit-learn on random labels.
Hospitals with the same label sequence get the same positions, so they are cached.
"""

from __future__ import annotations

from functools import lru_cache
from math import ceil, floor

import numpy as np


def shuffle_split(labels: np.ndarray, *, train_fraction: float, seed: int
                  ) -> tuple[np.ndarray, np.ndarray]:
    """Sorted train and test positions: stratified by label when every class present
    has more than two records (FLamby's Fed-Heart-Disease rule), plain otherwise."""
    labels = np.ascontiguousarray(labels)
    train, test = _cached(labels.tobytes(), labels.dtype.str, train_fraction, seed)
    return train.copy(), test.copy()


@lru_cache(maxsize=65536)
def _cached(raw: bytes, dtype: str, train_fraction: float, seed: int
            ) -> tuple[np.ndarray, np.ndarray]:
    labels = np.frombuffer(raw, dtype=np.dtype(dtype))
    n_train, n_test = _sizes(len(labels), train_fraction)
    rng = np.random.RandomState(seed)
    classes, inverse, counts = np.unique(labels, return_inverse=True, return_counts=True)
    if len(classes) > 1 and bool(np.all(counts > 2)):
        train, test = _stratified(inverse, counts, n_train, n_test, rng)
    else:
        order = rng.permutation(len(labels))
        train, test = order[n_test:n_test + n_train], order[:n_test]
    return np.sort(train), np.sort(test)


def _sizes(n: int, train_fraction: float) -> tuple[int, int]:
    """scikit-learn's sizes for train_size=f, test_size=1−f: floor and ceil, in its
    floating-point order."""
    test_fraction = 1.0 - train_fraction
    n_test, n_train = ceil(test_fraction * n), floor(train_fraction * n)
    if n_train + n_test > n or n_train == 0:
        raise ValueError(f"{n} records cannot be split {train_fraction:g} / {test_fraction:g}")
    return n_train, n_test


def _stratified(inverse: np.ndarray, counts: np.ndarray, n_train: int, n_test: int,
                rng: np.random.RandomState) -> tuple[np.ndarray, np.ndarray]:
    if min(n_train, n_test) < len(counts):
        raise ValueError(f"a split of {n_train} / {n_test} records cannot hold "
                         f"{len(counts)} classes on each side")
    members = np.split(np.argsort(inverse, kind="stable"), np.cumsum(counts)[:-1])
    train_per_class = _approximate_mode(counts, n_train, rng)
    test_per_class = _approximate_mode(counts - train_per_class, n_test, rng)
    train, test = [], []
    for rows, k_train, k_test in zip(members, train_per_class, test_per_class):
        shuffled = rows[rng.permutation(len(rows))]
        train.append(shuffled[:k_train])
        test.append(shuffled[k_train:k_train + k_test])
    # (scikit-learn shuffles both lists once more; sorted here, so only its draws matter,
    # and nothing draws after them)
    return np.concatenate(train), np.concatenate(test)


def _approximate_mode(counts: np.ndarray, draws: int, rng: np.random.RandomState
                      ) -> np.ndarray:
    """Per-class share of ``draws`` in proportion to ``counts``: floors, then the
    leftover to the largest remainders, ties broken at random (scikit-learn's rule)."""
    exact = counts / counts.sum() * draws
    taken = np.floor(exact)
    missing = int(draws - taken.sum())
    remainder = exact - taken
    for value in np.sort(np.unique(remainder))[::-1] if missing > 0 else ():
        tied = np.flatnonzero(remainder == value)
        chosen = rng.choice(tied, size=min(len(tied), missing), replace=False)
        taken[chosen] += 1
        missing -= len(chosen)
        if missing == 0:
            break
    return taken.astype(int)
