"""Partitioners: pure, seeded functions from labels (and real hospital ids) to one
index array per hospital. Each record is used exactly once."""

from __future__ import annotations

from typing import Callable, Optional

import numpy as np

MAX_DRAWS = 1000


class PartitionError(ValueError):
    """The records cannot be split as asked (e.g. more hospitals than records)."""


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
        f"in {MAX_DRAWS} draws over {num_clients} hospitals; raise alpha or lower num_clients"
    )


Partitioner = Callable[..., list[np.ndarray]]


def partition_records(
    name: str, *, labels: np.ndarray, groups: Optional[np.ndarray], num_clients: int,
    alpha: float, min_records: int, seed: int,
) -> list[np.ndarray]:
    """Dispatches by name; ``natural`` ignores the count and uses the real hospitals."""
    rng = np.random.default_rng([seed, 0xFED])
    if name == "natural":
        if groups is None:
            raise PartitionError("partition=natural needs a dataset with real hospital ids")
        return natural(groups)
    builders: dict[str, Partitioner] = {
        "iid": lambda: iid(len(labels), num_clients, rng, min_records),
        "quantity": lambda: quantity(len(labels), num_clients, alpha, rng, min_records),
        "dirichlet": lambda: dirichlet(labels, num_clients, alpha, rng, min_records),
    }
    if name not in builders:
        raise PartitionError(f"unknown partition {name!r}; known: natural, {', '.join(builders)}")
    return builders[name]()
