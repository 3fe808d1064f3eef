import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fedray.data.partition import PartitionError, dirichlet, iid, natural, partition_records


def _is_exact_cover(parts, n):
    joined = np.concatenate(parts)
    return len(joined) == n and np.array_equal(np.sort(joined), np.arange(n))


labels_strategy = st.lists(st.integers(0, 3), min_size=40, max_size=300).map(np.array)


@settings(max_examples=40, deadline=None)
@given(labels=labels_strategy, clients=st.integers(1, 8), seed=st.integers(0, 2**16),
       name=st.sampled_from(["iid", "dirichlet", "quantity"]),
       alpha=st.floats(0.3, 5.0))
def test_every_record_used_exactly_once_and_deterministic(labels, clients, seed, name, alpha):
    kwargs = dict(labels=labels, groups=None, num_clients=clients, alpha=alpha,
                  min_records=2, seed=seed)
    try:
        parts = partition_records(name, **kwargs)
    except PartitionError:
        return  # an infeasible request must fail loudly, never return a bad split
    assert len(parts) == clients
    assert _is_exact_cover(parts, len(labels))
    assert min(len(p) for p in parts) >= 2
    again = partition_records(name, **kwargs)
    assert all(np.array_equal(a, b) for a, b in zip(parts, again))


def test_natural_groups_by_hospital_id():
    groups = np.array([2, 0, 0, 1, 2, 2])
    parts = natural(groups)
    assert [p.tolist() for p in parts] == [[1, 2], [3], [0, 4, 5]]


def _label_skew(parts, labels):
    """Mean total-variation distance between a hospital's label mix and the global mix."""
    overall = np.bincount(labels, minlength=labels.max() + 1) / len(labels)
    dists = []
    for p in parts:
        mix = np.bincount(labels[p], minlength=len(overall)) / len(p)
        dists.append(0.5 * np.abs(mix - overall).sum())
    return float(np.mean(dists))


def test_label_skew_grows_as_alpha_falls():
    labels = np.random.default_rng(0).integers(0, 4, size=4000)
    skews = []
    for alpha in (100.0, 1.0, 0.1):
        per_seed = [
            _label_skew(dirichlet(labels, 10, alpha, np.random.default_rng(s), 2), labels)
            for s in range(5)
        ]
        skews.append(np.mean(per_seed))
    assert skews[0] < skews[1] < skews[2]
    assert skews[0] < 0.05 and skews[2] > 0.4


def test_more_hospitals_than_records_fails_clearly():
    with pytest.raises(PartitionError, match="needs 200 records; the dataset has 50"):
        iid(50, 100, np.random.default_rng(0), min_records=2)


def test_different_seeds_give_different_partitions():
    labels = np.arange(100) % 2
    a = partition_records("iid", labels=labels, groups=None, num_clients=4, alpha=1,
                          min_records=2, seed=1)
    b = partition_records("iid", labels=labels, groups=None, num_clients=4, alpha=1,
                          min_records=2, seed=2)
    assert not all(np.array_equal(x, y) for x, y in zip(a, b))
