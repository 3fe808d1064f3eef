import numpy as np

from fedray.config import DatasetConfig, PartitionConfig
from fedray.data import build_hospitals, plan_federation


def _build(seed, shift=0.5, clients=5):
    dataset = DatasetConfig(name="synthetic", num_records=600, feature_shift=shift)
    plan = plan_federation(dataset, PartitionConfig(name="iid"), num_clients=clients, seed=seed)
    return build_hospitals(dataset, list(plan.hospitals), seed=seed)


def test_same_seed_same_hospitals_in_any_process():
    a, b = _build(3), _build(3)
    assert all(np.array_equal(x.x_train, y.x_train) for x, y in zip(a, b))
    assert not np.array_equal(_build(4)[0].x_train, a[0].x_train)


def test_feature_shift_makes_hospitals_differ():
    shifted = _build(0, shift=2.0)
    plain = _build(0, shift=0.0)
    gap = lambda hs: np.std([h.x_train.mean(axis=0) for h in hs], axis=0).mean()  # noqa: E731
    assert gap(shifted) > 5 * gap(plain)


def test_split_sizes_follow_test_fraction():
    hospitals = _build(0)
    total_test = sum(h.num_test for h in hospitals)
    assert 0.2 < total_test / 600 < 0.3
