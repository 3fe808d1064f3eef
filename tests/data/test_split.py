"""fedray's train/test split against scikit-learn's train_test_split, which FLamby uses
per centre: the same rows for the same labels, fraction and seed (stratified when every
class has more than two records), and an error where scikit-learn refuses."""

import numpy as np
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st
from sklearn.model_selection import train_test_split

from fedray.data.split import shuffle_split


def _sklearn(labels, fraction, seed):
    _, counts = np.unique(labels, return_counts=True)
    stratify = labels if len(counts) > 1 and (counts > 2).all() else None
    train, test = train_test_split(np.arange(len(labels)), train_size=fraction,
                                   test_size=1 - fraction, random_state=seed, shuffle=True,
                                   stratify=stratify)
    return np.sort(train), np.sort(test)


@settings(max_examples=60, deadline=None)
@given(n=st.integers(2, 80), classes=st.integers(1, 5), skew=st.floats(0.0, 3.0),
       fraction=st.sampled_from([0.5, 0.6, 0.66, 0.7, 0.75, 0.8, 0.9]),
       seed=st.integers(0, 2**31 - 1))
@example(n=3, classes=2, skew=0.0, fraction=0.75, seed=43)
@example(n=10, classes=2, skew=0.0, fraction=0.7, seed=42)  # 1 − 0.7 is 0.30000000000000004
@example(n=101, classes=3, skew=1.0, fraction=0.75, seed=43)
@example(n=7, classes=3, skew=0.0, fraction=0.75, seed=0)
def test_the_split_is_scikit_learns(n, classes, skew, fraction, seed):
    weights = np.exp(-skew * np.arange(classes))
    labels = np.random.default_rng(seed).choice(classes, size=n, p=weights / weights.sum())
    try:
        expected = _sklearn(labels, fraction, seed)
    except ValueError:
        with pytest.raises(ValueError):
            shuffle_split(labels, train_fraction=fraction, seed=seed)
        return
    train, test = shuffle_split(labels, train_fraction=fraction, seed=seed)
    assert np.array_equal(train, expected[0]) and np.array_equal(test, expected[1])
    train[:] = -1  # the cache hands out copies
    assert np.array_equal(shuffle_split(labels, train_fraction=fraction, seed=seed)[0],
                          expected[0])
