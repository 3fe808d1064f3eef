import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fedray.config import ConfigError, DatasetConfig, PartitionConfig, config_from_dict
from fedray.data import build_hospitals, plan_federation
from fedray.data.shift import NO_SHIFT, FeatureShift, draw_scanner, masked_count


def _x(rows=50, d=6, seed=0):
    return np.random.default_rng(seed).standard_normal((rows, d)).astype(np.float32)


def test_off_is_the_identity():
    x, y = _x(), _x(seed=1)
    assert not NO_SHIFT.enabled
    a, b = NO_SHIFT.apply(x, y, hospital=3)
    assert a is x and b is y


def test_deterministic_in_seed_and_hospital():
    x, y = _x(), _x(seed=1)
    shift = FeatureShift(strength=1.0, masked_share=0.3, seed=7)
    a = shift.apply(x, y, hospital=2)
    b = FeatureShift(strength=1.0, masked_share=0.3, seed=7).apply(x, y, hospital=2)
    assert all(np.array_equal(p, q) for p, q in zip(a, b))
    other_hospital = shift.apply(x, y, hospital=3)
    other_seed = FeatureShift(strength=1.0, masked_share=0.3, seed=8).apply(x, y, hospital=2)
    assert not np.array_equal(a[0], other_hospital[0])
    assert not np.array_equal(a[0], other_seed[0])


@settings(max_examples=50, deadline=None)
@given(d=st.integers(1, 40), share=st.floats(0.0, 0.999), hospital=st.integers(0, 500),
       seed=st.integers(0, 2**16), strength=st.floats(0.0, 3.0))
def test_masks_train_and_test_alike_and_never_all_features(d, share, hospital, seed, strength):
    x, y = _x(20, d), _x(7, d, seed=1)
    a, b = FeatureShift(strength=strength, masked_share=share, seed=seed).apply(
        x, y, hospital=hospital)
    assert a.dtype == b.dtype == np.float32 and a.shape == x.shape and b.shape == y.shape
    scanner = draw_scanner(hospital=hospital, num_features=d, strength=strength,
                           masked_share=share, seed=seed)
    assert scanner.masked.sum() == masked_count(d, share)
    assert np.all(a[:, scanner.masked] == 0) and np.all(b[:, scanner.masked] == 0)
    assert (~scanner.masked).any()
    # a larger share masks a superset; a larger strength scales the same draw
    more = draw_scanner(hospital=hospital, num_features=d, strength=2 * strength,
                        masked_share=min(0.999, share + 0.2), seed=seed)
    assert np.all(more.masked[scanner.masked])
    assert np.allclose(np.log(more.gain), 2 * np.log(scanner.gain))
    assert np.allclose(more.offset, 2 * scanner.offset)


@pytest.mark.parametrize("d, share, count", [
    (13, 0.0, 0), (13, 0.01, 1), (13, 0.2, 3), (13, 0.99, 12), (1, 0.5, 0), (2, 0.5, 1),
])
def test_masked_count(d, share, count):
    assert masked_count(d, share) == count


def test_strength_sets_gain_offset_and_noise():
    s = 2.0
    zeros = np.zeros((20000, 3), dtype=np.float32)
    shift = FeatureShift(strength=s, seed=0)
    a, _ = shift.apply(zeros, zeros[:10], hospital=0)
    scanner = shift.scanner(hospital=0, num_features=3)
    assert np.allclose(a.mean(axis=0), scanner.offset, atol=0.05)
    assert np.allclose(a.std(axis=0), s / 2, rtol=0.05)
    gains = draw_scanner(hospital=0, num_features=20000, strength=s, masked_share=0, seed=0).gain
    assert abs(np.log(gains).std() - s / 2) < 0.05


def _hospitals(plans, dataset, seed=0):
    return {p.index: h for p, h in zip(plans, build_hospitals(dataset, plans, seed=seed))}


def test_independent_of_which_actor_builds_the_hospital():
    dataset = DatasetConfig(name="synthetic", num_records=600)
    partition = PartitionConfig(name="iid", feature_shift=1.0, masked_features=0.3)
    plans = list(plan_federation(dataset, partition, num_clients=6, seed=3).hospitals)
    together = _hospitals(plans, dataset, seed=3)
    apart = {**_hospitals(plans[4:], dataset, seed=3), **_hospitals(plans[::-1][2:], dataset, 3)}
    alone = _hospitals([plans[5]], dataset, seed=3)
    for index, h in together.items():
        assert np.array_equal(h.x_train, apart[index].x_train)
        assert np.array_equal(h.x_test, apart[index].x_test)
    assert np.array_equal(together[5].x_test, alone[5].x_test)


CASES = [("heart_disease", "natural"), ("heart_disease", "iid"), ("heart_disease", "shards"),
         ("synthetic", "iid"), ("synthetic", "dirichlet"), ("synthetic", "quantity"),
         ("synthetic", "shards")]


@pytest.mark.parametrize("dataset_name, partition_name", CASES)
def test_composes_with_every_partition_and_dataset(dataset_name, partition_name):
    dataset = DatasetConfig(name=dataset_name, num_records=800, feature_shift=0.0)
    plain = PartitionConfig(name=partition_name)
    shifted = PartitionConfig(name=partition_name, feature_shift=1.5, masked_features=0.25)
    base = plan_federation(dataset, plain, num_clients=4, seed=0)
    plan = plan_federation(dataset, shifted, num_clients=4, seed=0)
    assert [h.train_rows.tolist() for h in base.hospitals] == \
        [h.train_rows.tolist() for h in plan.hospitals]  # the rows do not move
    before = build_hospitals(dataset, list(base.hospitals), seed=0)
    after = build_hospitals(dataset, list(plan.hospitals), seed=0)
    for b, a in zip(before, after):
        assert np.array_equal(b.y_train, a.y_train) and np.array_equal(b.y_test, a.y_test)
        masked = np.all(a.x_train == 0, axis=0) & np.all(a.x_test == 0, axis=0)
        assert masked.sum() >= masked_count(a.x_train.shape[1], 0.25)
    gap = lambda hs: np.std([h.x_train.mean(axis=0) for h in hs], axis=0).mean()  # noqa: E731
    assert gap(after) > 2 * gap(before)  # hospitals now differ (heart: visible after scaling)


@pytest.mark.parametrize("values", [
    {"feature_shift": -0.1}, {"feature_shift": float("nan")}, {"feature_shift": True},
    {"masked_features": 1.0}, {"masked_features": -0.2}, {"masked_features": "half"},
])
def test_bad_values_are_one_line_config_errors(values):
    key = next(iter(values))
    with pytest.raises(ConfigError) as info:
        config_from_dict({"partition": {"name": "iid", **values}})
    assert info.value.key == f"partition.{key}"
    assert str(info.value).startswith(f"partition.{key}=") and "\n" not in str(info.value)
