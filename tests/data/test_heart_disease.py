import numpy as np
import pandas as pd
import pytest

from fedray.config import DatasetConfig, PartitionConfig
from fedray.data import build_hospitals, load_records, plan_federation
from fedray.data.heart_disease import (
    CSV_SHA256,
    FEATURE_NAMES,
    DatasetUnavailable,
    check_sha256,
    reconcile_hospitals,
)

# FLamby's Fed-Heart-Disease train/test sizes (owkin/FLamby, fed_heart_disease/README.md)
FLAMBY_SIZES = {
    "Cleveland": (199, 104), "Hungary": (172, 89), "Switzerland": (30, 16),
    "VA Long Beach": (85, 45),
}


@pytest.fixture(scope="module")
def hospitals():
    plan = plan_federation(DatasetConfig(), PartitionConfig(), num_clients=4, seed=0)
    return plan, build_hospitals(DatasetConfig(), list(plan.hospitals), seed=0)


def test_sizes_equal_flamby(hospitals):
    plan, data = hospitals
    assert {h.name: (h.num_train, h.num_test) for h in data} == FLAMBY_SIZES
    assert plan.num_features == len(FEATURE_NAMES) == 13
    assert plan.num_classes == 2


def test_split_is_independent_of_the_run_seed(hospitals):
    plan, _ = hospitals
    other = plan_federation(DatasetConfig(), PartitionConfig(), num_clients=4, seed=7)
    for a, b in zip(plan.hospitals, other.hospitals):
        assert np.array_equal(a.train_rows, b.train_rows)  # FLamby's fixed seed 43


def test_standardised_on_own_train_split(hospitals):
    _, data = hospitals
    cleveland = data[0]
    assert np.allclose(cleveland.x_train.mean(axis=0), 0, atol=1e-5)
    assert np.allclose(cleveland.x_train.std(axis=0, ddof=1), 1, atol=1e-4)
    # Switzerland records no cholesterol (all 0): the column stays 0, not NaN.
    switzerland = data[2]
    chol = FEATURE_NAMES.index("chol")
    assert np.all(switzerland.x_train[:, chol] == 0)
    assert np.all(np.isfinite(switzerland.x_test))


def test_labels_are_binary_disease_vs_none():
    table = load_records(DatasetConfig(), 0)
    assert set(np.unique(table.labels)) == {0, 1}
    assert len(table.labels) == 740  # rows complete in the ten kept attributes


def test_row_304_moves_to_hungary():
    frame = pd.DataFrame({"id": [303, 304, 305], "dataset": ["Cleveland"] * 2 + ["Hungary"]})
    assert reconcile_hospitals(frame).tolist() == [0, 1, 1]


def test_wrong_file_is_refused():
    check_sha256_ok = CSV_SHA256  # the real file passes (used by every load above)
    assert check_sha256_ok
    with pytest.raises(DatasetUnavailable, match="sha256"):
        check_sha256(b"id,age\n1,63\n")
