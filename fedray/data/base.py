"""What a dataset hands to the federation: records, their real hospital ids, and how
to turn one hospital's records into train and test splits."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from fedray.data.shift import NO_SHIFT, FeatureShift
from fedray.data.split import shuffle_split


@dataclass(frozen=True)
class RecordTable:
    """All records of a dataset before partitioning (features not yet standardised)."""

    features: np.ndarray  # float32, (n, d)
    labels: np.ndarray  # int64, (n,)
    groups: np.ndarray | None  # int, (n,): real hospital of each record, or None
    group_names: tuple[str, ...]
    num_classes: int
    standardise_per_hospital: bool  # fit on each hospital's own train split (FLamby)
    train_fraction: float
    split_seed: int


@dataclass(frozen=True)
class HospitalData:
    """One hospital's records, already split and preprocessed."""

    name: str
    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray

    @property
    def num_train(self) -> int:
        return len(self.y_train)

    @property
    def num_test(self) -> int:
        return len(self.y_test)


def standardise(train: np.ndarray, test: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Scales both splits with the train split's mean and (unbiased) std.

    The 1e-9 guard keeps constant columns (Switzerland records no cholesterol) at 0.
    """
    mean = train.mean(axis=0, dtype=np.float64)
    std = train.std(axis=0, ddof=1, dtype=np.float64) if len(train) > 1 else np.zeros_like(mean)
    scale = std + 1e-9
    return (
        ((train - mean) / scale).astype(np.float32),
        ((test - mean) / scale).astype(np.float32),
    )


@dataclass(frozen=True)
class HospitalPlan:
    """Which records one hospital holds: row numbers into the dataset's table, and the
    feature shift its "scanner" applies (drawn where it is built, from ``index``).

    Plans are what the driver computes and sends; records stay where they are read.
    """

    index: int
    name: str
    train_rows: np.ndarray
    test_rows: np.ndarray
    shift: FeatureShift = NO_SHIFT


def plan_hospital(
    table: RecordTable, rows: np.ndarray, *, index: int, name: str,
    shift: FeatureShift = NO_SHIFT,
) -> HospitalPlan:
    rows = np.asarray(rows)
    train, test = shuffle_split(
        table.labels[rows], train_fraction=table.train_fraction, seed=table.split_seed
    )
    return HospitalPlan(
        index=index, name=name, train_rows=rows[train], test_rows=rows[test], shift=shift
    )


def build_hospital(table: RecordTable, plan: HospitalPlan) -> HospitalData:
    x_train, x_test = table.features[plan.train_rows], table.features[plan.test_rows]
    if table.standardise_per_hospital:
        x_train, x_test = standardise(x_train, x_test)
    return HospitalData(
        name=plan.name,
        x_train=np.ascontiguousarray(x_train, dtype=np.float32),
        y_train=table.labels[plan.train_rows].astype(np.int64),
        x_test=np.ascontiguousarray(x_test, dtype=np.float32),
        y_test=table.labels[plan.test_rows].astype(np.int64),
    )
