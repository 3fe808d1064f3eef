"""Partitioners: pure, seeded functions from labels (and real hospital ids) to one
index array per hospital. Each record is used exactly once.

A new partition is a function over a :class:`Request`, registered by name with
:func:`register_partitioner`; its name must also be in ``fedray.config.PARTITIONS``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

MAX_DRAWS = 1000


class PartitionError(ValueError):
    """The records cannot be split as asked (e.g. more hospitals than records).

    ``key`` and ``value`` name the config key to change when it is not ``num_clients``.
    """

    def __init__(self, message: str, *, key: str | None = None, value: Any = None) -> None:
        super().__init__(message)
        self.key, self.value = key, value


def _check_count(num_records: int, num_clients: int, min_records: int) -> None:
    if num_clients * min_records > num_records:
        raise PartitionError(
            f"{num_clients} hospitals x {min_records} records each needs "
            f"{num_clients * min_records} records; the dataset has {num_records}"
        )


def natural(groups: np.ndarray) -> list[np.ndarray]:
    """One hospital per real hospital id, in id order."""
    return [np.flatnonzero(groups == g) for g in np.unique(groups)]


def iid(num_records: int, num_clients: int, rng: np.random.Generator, min_records: int = 1
        ) -> list[np.ndarray]:
    _check_count(num_records, num_clients, min_records)
    return [np.sort(part) for part in np.array_split(rng.permutation(num_records), num_clients)]


def quantity(
    num_records: int, num_clients: int, alpha: float, rng: np.random.Generator,
    min_records: int = 1,
) -> list[np.ndarray]:
    """Sizes drawn from Dirichlet(alpha): small alpha gives a few large hospitals."""
    _check_count(num_records, num_clients, min_records)
    spare = num_records - num_clients * min_records
    sizes = min_records + rng.multinomial(spare, rng.dirichlet(np.full(num_clients, alpha)))
    cuts = np.cumsum(sizes)[:-1]
    return [np.sort(part) for part in np.split(rng.permutation(num_records), cuts)]


def dirichlet(
    labels: np.ndarray, num_clients: int, alpha: float, rng: np.random.Generator,
    min_records: int = 1,
) -> list[np.ndarray]:
    """Label skew: each class is spread over hospitals by proportions ~ Dirichlet(alpha).

    Redraws until every hospital holds ``min_records``; a request that cannot be met
    (alpha tiny, many hospitals) fails instead of looping forever.
    """
    _check_count(len(labels), num_clients, min_records)
    by_class = [np.flatnonzero(labels == c) for c in np.unique(labels)]
    for _ in range(MAX_DRAWS):
        parts: list[list[np.ndarray]] = [[] for _ in range(num_clients)]
        for members in by_class:
            shares = rng.dirichlet(np.full(num_clients, alpha))
            cuts = (np.cumsum(shares)[:-1] * len(members)).astype(int)
            for client, chunk in enumerate(np.split(rng.permutation(members), cuts)):
                parts[client].append(chunk)
        merged = [np.sort(np.concatenate(p)) for p in parts]
        if min(len(p) for p in merged) >= min_records:
            return merged
    raise PartitionError(
        f"dirichlet(alpha={alpha}) left a hospital with fewer than {min_records} records "
        f"in {MAX_DRAWS} draws over {num_clients} hospitals; raise alpha or lower num_clients",
        key="partition.alpha", value=alpha,
    )


def label_shards(labels: np.ndarray, num_shards: int, rng: np.random.Generator
                 ) -> list[np.ndarray]:
    """Records sorted by label (in random order within a label), cut into ``num_shards``
    consecutive runs whose sizes differ by at most one."""
    order = rng.permutation(len(labels))
    order = order[np.argsort(labels[order], kind="stable")]
    return np.array_split(order, num_shards)


def shards(
    labels: np.ndarray, num_clients: int, per_client: int, rng: np.random.Generator,
    min_records: int = 1,
) -> list[np.ndarray]:
    """Pathological label skew (McMahan et al., 2017): ``num_clients · per_client`` label
    shards, ``per_client`` of them dealt at random to each hospital.

    A hospital's labels come from at most ``per_client`` shards, so from few classes.
    Fails unless every dealing leaves each hospital ``min_records`` records.
    """
    _check_count(len(labels), num_clients, min_records)
    num_shards = num_clients * per_client
    if num_shards > len(labels):
        raise PartitionError(
            f"{num_clients} hospitals x {per_client} shards = {num_shards} shards, more than "
            f"the {len(labels)} records; lower shards_per_client or num_clients",
            key="partition.shards_per_client", value=per_client,
        )
    smallest = per_client * (len(labels) // num_shards)  # k shards of the smaller size
    if smallest < min_records:
        raise PartitionError(
            f"{num_clients} hospitals x {per_client} shards = {num_shards} shards of "
            f"{len(labels)} records leave a hospital {smallest} records, fewer than "
            f"min_records={min_records}; lower shards_per_client or num_clients",
            key="partition.shards_per_client", value=per_client,
        )
    pieces = label_shards(labels, num_shards, rng)
    hands = rng.permutation(num_shards).reshape(num_clients, per_client)
    return [np.sort(np.concatenate([pieces[s] for s in hand])) for hand in hands]


@dataclass(frozen=True)
class Request:
    """Everything a partitioner may use; each takes what it needs."""

    labels: np.ndarray
    groups: np.ndarray | None
    num_clients: int
    alpha: float
    shards_per_client: int
    min_records: int
    rng: np.random.Generator


Partitioner = Callable[[Request], list[np.ndarray]]
PARTITIONERS: dict[str, Partitioner] = {}


def register_partitioner(name: str) -> Callable[[Partitioner], Partitioner]:
    def register(builder: Partitioner) -> Partitioner:
        PARTITIONERS[name] = builder
        return builder
    return register


@register_partitioner("natural")
def _natural(r: Request) -> list[np.ndarray]:
    """Ignores the count and uses the real hospitals."""
    if r.groups is None:
        raise PartitionError("partition=natural needs a dataset with real hospital ids")
    return natural(r.groups)


@register_partitioner("iid")
def _iid(r: Request) -> list[np.ndarray]:
    return iid(len(r.labels), r.num_clients, r.rng, r.min_records)


@register_partitioner("quantity")
def _quantity(r: Request) -> list[np.ndarray]:
    return quantity(len(r.labels), r.num_clients, r.alpha, r.rng, r.min_records)


@register_partitioner("dirichlet")
def _dirichlet(r: Request) -> list[np.ndarray]:
    return dirichlet(r.labels, r.num_clients, r.alpha, r.rng, r.min_records)


@register_partitioner("shards")
def _shards(r: Request) -> list[np.ndarray]:
    return shards(r.labels, r.num_clients, r.shards_per_client, r.rng, r.min_records)


def partition_records(
    name: str, *, labels: np.ndarray, groups: np.ndarray | None, num_clients: int,
    alpha: float, min_records: int, seed: int, shards_per_client: int = 2,
) -> list[np.ndarray]:
    """Dispatches by name to the registered partitioner, with a stream drawn from ``seed``."""
    if name not in PARTITIONERS:
        raise PartitionError(f"unknown partition {name!r}; known: {', '.join(PARTITIONERS)}")
    return PARTITIONERS[name](Request(
        labels=np.asarray(labels), groups=groups, num_clients=num_clients, alpha=alpha,
        shards_per_client=shards_per_client, min_records=min_records,
        rng=np.random.default_rng([seed, 0xFED]),
    ))
