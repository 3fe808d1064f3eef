"""The update's path, written once.

Hospital: delta -> clip -> noise -> weight -> encode (encrypt).
Aggregator: validate -> sum -> decode -> divide by the arrived weight -> server rule.

Privacy and encryption plug in as steps; today's steps are identities, so the round
loop never changes when they arrive.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Callable, Optional

import numpy as np

from fedray.crypto import Codec, PlainCodec
from fedray.strategies import Strategy

VectorStep = Callable[[np.ndarray], np.ndarray]


def identity(vector: np.ndarray) -> np.ndarray:
    return vector


@dataclass(frozen=True)
class Update:
    """What a hospital sends: its (encoded) weighted update and scalar metadata."""

    hospital: int
    payload: Any
    weight: float
    num_samples: int
    train_loss: float
    seconds: dict[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class ClientPipeline:
    clip: VectorStep = identity
    noise: VectorStep = identity
    codec: Codec = field(default_factory=PlainCodec)

    def __call__(self, delta: np.ndarray, *, weight: float) -> tuple[Any, float]:
        """Returns the payload and the seconds spent encoding it."""
        private = self.noise(self.clip(delta))
        weighted = (private * weight).astype(np.float32)
        start = time.perf_counter()
        payload = self.codec.encode(weighted)
        return payload, time.perf_counter() - start


@dataclass(frozen=True)
class Rejection:
    hospital: int
    reason: str


@dataclass(frozen=True)
class AggregateResult:
    global_vector: Optional[np.ndarray]  # None in the report sent to the driver
    accepted: tuple[int, ...]
    rejected: tuple[Rejection, ...]
    bytes_received: int
    seconds: dict[str, float]
    # (hospital, train loss, seconds) of every update that arrived, accepted or not
    update_stats: tuple[tuple[int, float, dict[str, float]], ...] = ()


def aggregate(
    updates: list[Update], *, global_vector: np.ndarray, codec: Codec, strategy: Strategy,
    decode: Optional[Callable[[Any], np.ndarray]] = None,
) -> AggregateResult:
    """Validates, sums and applies the server rule. A bad update is rejected, never
    averaged in; the mean is taken over the weights that actually arrived."""
    size = global_vector.shape[0]
    total, weight_sum, nbytes = None, 0.0, 0
    accepted: list[int] = []
    rejected: list[Rejection] = []
    start = time.perf_counter()
    # Summing in hospital order makes the result independent of arrival order and of
    # how hospitals are spread over actors: same seed, same model.
    updates = sorted(updates, key=lambda u: u.hospital)
    for update in updates:
        reason = codec.validate(update.payload, size)
        if reason is None and not (np.isfinite(update.weight) and update.weight > 0):
            reason = f"weight {update.weight!r} is not a finite positive number"
        if reason is not None:
            rejected.append(Rejection(update.hospital, reason))
            continue
        total = codec.add(total, update.payload)
        weight_sum += update.weight
        nbytes += codec.nbytes(update.payload)
        accepted.append(update.hospital)
    summed = time.perf_counter() - start
    stats = tuple((u.hospital, u.train_loss, u.seconds) for u in updates)
    if total is None:
        return AggregateResult(global_vector, (), tuple(rejected), nbytes,
                               {"aggregate": summed, "decrypt": 0.0}, stats)
    start = time.perf_counter()
    mean_update = (decode or codec.decode)(total) / weight_sum
    decoded = time.perf_counter() - start
    new_global = strategy.server_update(global_vector, mean_update)
    return AggregateResult(
        new_global, tuple(accepted), tuple(rejected), nbytes,
        {"aggregate": summed, "decrypt": decoded}, stats,
    )
