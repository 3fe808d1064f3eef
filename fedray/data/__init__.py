"""Datasets and partitioners. :func:`load_federation` turns a config into hospitals."""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Callable

import numpy as np

from fedray.config import DatasetConfig, PartitionConfig
from fedray.data.base import HospitalData, RecordTable, make_hospital
from fedray.data.heart_disease import DatasetUnavailable, load_heart_disease
from fedray.data.partition import PartitionError, partition_records
from fedray.data.synthetic import make_synthetic, shift_features

__all__ = [
    "DatasetUnavailable", "Federation", "HospitalData", "PartitionError", "RecordTable",
    "load_federation", "load_records",
]

DATASETS: dict[str, Callable[[DatasetConfig, int], RecordTable]] = {
    "heart_disease": lambda config, seed: load_heart_disease(),
    "synthetic": lambda config, seed: make_synthetic(config, seed=seed),
}


@dataclass(frozen=True)
class Federation:
    hospitals: tuple[HospitalData, ...]
    num_features: int
    num_classes: int


def load_records(config: DatasetConfig, seed: int) -> RecordTable:
    return DATASETS[config.name](config, seed)


@functools.lru_cache(maxsize=4)
def load_federation(
    dataset: DatasetConfig, partition: PartitionConfig, num_clients: int, seed: int
) -> Federation:
    """Deterministic in its arguments, so every actor rebuilds the same hospitals and
    keeps only its own: raw records never travel between processes."""
    table = load_records(dataset, seed)
    parts = partition_records(
        partition.name, labels=table.labels, groups=table.groups, num_clients=num_clients,
        alpha=partition.alpha, min_records=partition.min_records, seed=seed,
    )
    hospitals = []
    for index, rows in enumerate(parts):
        if len(rows) < 2:
            raise PartitionError(f"hospital {index} got {len(rows)} records; each needs >= 2")
        name = table.group_names[index] if partition.name == "natural" else f"hospital_{index:03d}"
        hospital = make_hospital(table, rows, name, split_seed=table.split_seed)
        if dataset.name == "synthetic" and dataset.feature_shift > 0:
            shift = functools.partial(
                shift_features, hospital=index, strength=dataset.feature_shift, seed=seed
            )
            hospital = HospitalData(
                name=hospital.name, x_train=shift(hospital.x_train), y_train=hospital.y_train,
                x_test=shift(hospital.x_test), y_test=hospital.y_test,
            )
        hospitals.append(hospital)
    return Federation(
        hospitals=tuple(hospitals),
        num_features=int(table.features.shape[1]),
        num_classes=table.num_classes,
    )


def pooled_labels(federation: Federation) -> np.ndarray:
    return np.concatenate([h.y_test for h in federation.hospitals])
