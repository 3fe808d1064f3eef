import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fedray.config import PARTITIONS, ConfigError, DatasetConfig, PartitionConfig, config_from_dict
from fedray.data import load_records, plan_federation
from fedray.data.partition import (
    PARTITIONERS,
    PartitionError,
    label_shards,
    partition_records,
    shards,
)

labels_strategy = st.lists(st.integers(0, 4), min_size=20, max_size=400).map(np.array)


@settings(max_examples=60, deadline=None)
@given(labels=labels_strategy, clients=st.integers(1, 10), per_client=st.integers(1, 5),
       seed=st.integers(0, 2**16))
def test_each_record_once_and_each_hospital_holds_exactly_k_whole_shards(
    labels, clients, per_client, seed
):
    try:
        parts = shards(labels, clients, per_client, np.random.default_rng(seed), 2)
    except PartitionError as err:
        assert err.key == "partition.shards_per_client" or "records" in str(err)
        return
    assert len(parts) == clients
    joined = np.concatenate(parts)
    assert np.array_equal(np.sort(joined), np.arange(len(labels)))
    # the same stream gives the shards that were dealt: each hospital holds k of them whole
    pieces = label_shards(labels, clients * per_client, np.random.default_rng(seed))
    for part in parts:
        held = [p for p in pieces if np.isin(p, part).any()]
        assert len(held) == per_client
        assert all(np.isin(p, part).all() for p in held)
        assert sum(len(p) for p in held) == len(part)
    again = shards(labels, clients, per_client, np.random.default_rng(seed), 2)
    assert all(np.array_equal(a, b) for a, b in zip(parts, again))


@settings(max_examples=40, deadline=None)
@given(shard_size=st.integers(2, 6), per_class=st.lists(st.integers(1, 4), min_size=2,
                                                         max_size=5),
       per_client=st.integers(1, 3), seed=st.integers(0, 2**16))
def test_hospital_sees_at_most_k_labels_when_classes_fill_whole_shards(
    shard_size, per_class, per_client, seed
):
    labels = np.repeat(np.arange(len(per_class)), np.array(per_class) * shard_size)
    num_shards = len(labels) // shard_size
    if num_shards % per_client:
        return
    labels = np.random.default_rng(seed).permutation(labels)  # order must not matter
    parts = shards(labels, num_shards // per_client, per_client, np.random.default_rng(seed))
    assert all(len(np.unique(labels[p])) <= per_client for p in parts)


def test_shards_are_label_sorted_runs():
    labels = np.array([1, 0, 2, 1, 0, 2, 1, 0, 2])
    pieces = label_shards(labels, 3, np.random.default_rng(0))
    assert [sorted(set(labels[p])) for p in pieces] == [[0], [1], [2]]


def test_registry_covers_the_config_names():
    assert set(PARTITIONERS) == set(PARTITIONS)


def test_seeds_change_the_dealing():
    labels = np.arange(200) % 10
    kwargs = dict(labels=labels, groups=None, num_clients=10, alpha=1.0, min_records=2,
                  shards_per_client=2)
    a = partition_records("shards", seed=0, **kwargs)
    b = partition_records("shards", seed=1, **kwargs)
    assert not all(np.array_equal(x, y) for x, y in zip(a, b))


def test_too_many_shards_is_a_one_line_config_error_before_ray():
    dataset = DatasetConfig(name="synthetic", num_records=300)
    partition = PartitionConfig(name="shards", shards_per_client=50)
    with pytest.raises(ConfigError) as info:
        plan_federation(dataset, partition, num_clients=10, seed=0)
    assert info.value.key == "partition.shards_per_client"
    assert str(info.value).startswith("partition.shards_per_client=50: ")
    assert "500 shards" in str(info.value) and "\n" not in str(info.value)


def test_shards_too_small_for_min_records_names_the_key():
    with pytest.raises(PartitionError, match="fewer than min_records=4") as info:
        shards(np.arange(45) % 2, 10, 3, np.random.default_rng(0), min_records=4)
    assert info.value.key == "partition.shards_per_client"


@pytest.mark.parametrize("value", [0, -1, 1.5, True, "2"])
def test_bad_shards_per_client(value):
    with pytest.raises(ConfigError) as info:
        config_from_dict({"partition": {"name": "shards", "shards_per_client": value}})
    assert info.value.key == "partition.shards_per_client"
    assert "\n" not in str(info.value)


@pytest.mark.parametrize("name, clients", [("synthetic", 10), ("heart_disease", 8)])
def test_plans_on_both_datasets_pool_the_records(name, clients):
    dataset = DatasetConfig(name=name, num_records=1000, num_classes=10)
    plan = plan_federation(dataset, PartitionConfig(name="shards", shards_per_client=2),
                           num_clients=clients, seed=0)
    labels = load_records(dataset, 0).labels
    rows = [np.concatenate([h.train_rows, h.test_rows]) for h in plan.hospitals]
    assert len(rows) == clients
    assert np.array_equal(np.sort(np.concatenate(rows)), np.arange(len(labels)))
    # two shards, each straddling at most one class boundary here: at most 4 labels
    assert max(np.unique(labels[r]).size for r in rows) <= 4
    if name == "synthetic":  # ten classes, twenty shards: most hospitals see two or three
        assert np.mean([np.unique(labels[r]).size for r in rows]) <= 3
