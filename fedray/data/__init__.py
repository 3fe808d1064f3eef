"""Datasets and partitioners.

The driver *plans* the federation (:func:`plan_federation`: which rows each hospital
holds, split into train and test); each hospital actor then *builds* only its own
hospitals from the dataset it reads itself (:func:`build_hospitals`). Row numbers
(and the seeded feature-shift spec) travel between processes, records never do.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable
from dataclasses import dataclass

from fedray.config import ConfigError, DatasetConfig, PartitionConfig
from fedray.data.base import HospitalData, HospitalPlan, RecordTable, build_hospital, plan_hospital
from fedray.data.heart_disease import DatasetUnavailable, load_heart_disease
from fedray.data.partition import PARTITIONERS, PartitionError, partition_records
from fedray.data.shift import FeatureShift, Scanner
from fedray.data.synthetic import make_synthetic, shift_features

__all__ = [
    "PARTITIONERS", "DatasetUnavailable", "FeatureShift", "FederationPlan", "HospitalData",
    "HospitalPlan", "PartitionError", "RecordTable", "Scanner", "build_hospitals",
    "load_records", "partition_records", "plan_federation",
]

DATASETS: dict[str, Callable[[DatasetConfig, int], RecordTable]] = {
    "heart_disease": lambda config, seed: load_heart_disease(),
    "synthetic": lambda config, seed: make_synthetic(config, seed=seed),
}


@dataclass(frozen=True)
class FederationPlan:
    hospitals: tuple[HospitalPlan, ...]
    num_features: int
    num_classes: int

    @property
    def train_sizes(self) -> list[int]:
        return [len(h.train_rows) for h in self.hospitals]


@functools.lru_cache(maxsize=2)
def load_records(config: DatasetConfig, seed: int) -> RecordTable:
    """The whole table; deterministic in its arguments, so every process reads the same."""
    return DATASETS[config.name](config, seed)


def plan_federation(
    dataset: DatasetConfig, partition: PartitionConfig, *, num_clients: int, seed: int
) -> FederationPlan:
    """Which rows each hospital holds, and the feature shift it will apply.

    Raises :class:`ConfigError` when the partition names the key to change (e.g.
    ``partition.shards_per_client``), else :class:`PartitionError`.
    """
    table = load_records(dataset, seed)
    try:
        parts = partition_records(
            partition.name, labels=table.labels, groups=table.groups, num_clients=num_clients,
            alpha=partition.alpha, min_records=partition.min_records, seed=seed,
            shards_per_client=partition.shards_per_client,
        )
    except PartitionError as err:
        if err.key is None:
            raise
        raise ConfigError(err.key, err.value, str(err)) from None
    shift = FeatureShift(
        strength=partition.feature_shift, masked_share=partition.masked_features, seed=seed
    )
    plans = []
    for index, rows in enumerate(parts):
        if len(rows) < 2:
            raise PartitionError(f"hospital {index} got {len(rows)} records; each needs >= 2")
        name = table.group_names[index] if partition.name == "natural" else f"hospital_{index:03d}"
        plans.append(plan_hospital(table, rows, index=index, name=name, shift=shift))
    return FederationPlan(
        hospitals=tuple(plans),
        num_features=int(table.features.shape[1]),
        num_classes=table.num_classes,
    )


def build_hospitals(
    dataset: DatasetConfig, plans: list[HospitalPlan], *, seed: int
) -> list[HospitalData]:
    """Reads the dataset in this process and builds the planned hospitals from it.

    Order per hospital: its rows, its own standardisation (heart_disease), the synthetic
    generator's shift (``dataset.feature_shift``), then the partition's feature shift
    and masking (``plan.shift``, so masked features stay exactly 0).
    """
    table = load_records(dataset, seed)
    hospitals = []
    for plan in plans:
        hospital = build_hospital(table, plan)
        x_train, x_test = hospital.x_train, hospital.x_test
        if dataset.name == "synthetic" and dataset.feature_shift > 0:
            shift = functools.partial(
                shift_features, hospital=plan.index, strength=dataset.feature_shift, seed=seed
            )
            x_train, x_test = shift(x_train), shift(x_test)
        x_train, x_test = plan.shift.apply(x_train, x_test, hospital=plan.index)
        hospitals.append(dataclasses.replace(hospital, x_train=x_train, x_test=x_test))
    return hospitals
