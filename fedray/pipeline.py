"""The update's path, written once.

Hospital: delta -> clip -> noise -> weight -> encode (encrypt).
Aggregator: validate -> sum -> decode -> divide by the arrived weight -> server rule.

Privacy plugs in as steps (:func:`client_pipeline` builds them from a privacy plan);
encryption plugs in as the codec. The round loop never changes when they do.
"""

from __future__ import annotations

import functools
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Optional

import numpy as np

from fedray.crypto import Codec, PlainCodec
from fedray.strategies import Strategy

VectorStep = Callable[[np.ndarray], np.ndarray]
NoiseStep = Callable[[np.ndarray, np.random.Generator], np.ndarray]


def identity(vector: np.ndarray) -> np.ndarray:
    return vector


def no_noise(vector: np.ndarray, rng: np.random.Generator) -> np.ndarray:
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
    epsilon: Optional[float] = None  # this hospital's ε spent so far (local, DP-SGD)
    exhausted: bool = False  # budget spent: the hospital did not train, payload is None


@dataclass(frozen=True)
class ClientPipeline:
    clip: VectorStep = identity
    noise: NoiseStep = no_noise
    codec: Codec = field(default_factory=PlainCodec)

    def __call__(self, delta: np.ndarray, *, weight: float,
                 rng: Optional[np.random.Generator] = None) -> tuple[Any, float]:
        """Returns the payload and the seconds spent encoding it."""
        private = self.noise(self.clip(delta), rng if rng is not None else _NO_RNG)
        weighted = (private * weight).astype(np.float32)
        start = time.perf_counter()
        payload = self.codec.encode(weighted)
        return payload, time.perf_counter() - start


_NO_RNG = np.random.default_rng(0)  # only read by steps that add no noise


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
    # (hospital, train loss, seconds, ε) of every update that arrived, accepted or not
    update_stats: tuple[tuple[int, float, dict[str, float], Optional[float]], ...] = ()
    exhausted: tuple[int, ...] = ()  # hospitals that stopped: privacy budget spent
    values_clipped: int = 0  # quantised packing: values outside ±range in accepted updates


def aggregate(
    updates: list[Update], *, global_vector: np.ndarray, codec: Codec, strategy: Strategy,
    decode: Optional[Callable[[Any], np.ndarray]] = None,
    server_noise: Optional[VectorStep] = None, fixed_denominator: Optional[float] = None,
    min_accepted: int = 1,
) -> AggregateResult:
    """Validates, sums and applies the server rule. A bad update is rejected, never
    averaged in. The mean divides by the weights that actually arrived, or by
    ``fixed_denominator`` (central DP: a data-independent denominator), after
    ``server_noise`` (central DP's noise on the sum) when given. Fewer than
    ``min_accepted`` valid updates are not decrypted or released (distributed DP: the
    sum would carry too few noise shares)."""
    exhausted = tuple(sorted(u.hospital for u in updates if u.exhausted))
    updates = [u for u in updates if not u.exhausted]
    size = global_vector.shape[0]
    total, weight_sum, nbytes, clipped = None, 0.0, 0, 0
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
        clipped += getattr(update.payload, "clipped", 0)
        weight_sum += update.weight
        nbytes += codec.nbytes(update.payload)
        accepted.append(update.hospital)
    summed = time.perf_counter() - start
    stats = tuple((u.hospital, u.train_loss, u.seconds, u.epsilon) for u in updates)
    if total is None or len(accepted) < min_accepted:
        if total is not None:
            rejected.extend(Rejection(h, f"only {len(accepted)} valid updates, fewer than the "
                                         f"{min_accepted} the noise shares need; not released")
                            for h in accepted)
            accepted = []
        return AggregateResult(global_vector, (), tuple(rejected), nbytes,
                               {"aggregate": summed, "decrypt": 0.0}, stats, exhausted)
    start = time.perf_counter()
    summed_update = (decode or codec.decode)(total)
    decoded = time.perf_counter() - start
    if server_noise is not None:
        summed_update = server_noise(summed_update)
    mean_update = summed_update / (fixed_denominator or weight_sum)
    new_global = strategy.server_update(global_vector, mean_update)
    return AggregateResult(
        new_global, tuple(accepted), tuple(rejected), nbytes,
        {"aggregate": summed, "decrypt": decoded}, stats, exhausted, clipped,
    )


def client_pipeline(mode: str, *, clip: float, noise_std: float,
                    codec: Optional[Codec] = None) -> ClientPipeline:
    """The hospital-side steps of each privacy mode (docs/privacy.md).

    local and distributed clip and add noise (the full σC, or a share of it);
    central clips and leaves the noise to the aggregator; dpsgd protects records
    inside training, so its update needs no further step.
    """
    from fedray.privacy import add_gaussian_noise, clip_to_norm

    codec = codec or PlainCodec()
    if mode not in ("local", "central", "distributed"):
        return ClientPipeline(codec=codec)
    clipper = functools.partial(clip_to_norm, clip=clip)
    if mode == "central":
        return ClientPipeline(clip=clipper, codec=codec)

    def noise(vector: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        return add_gaussian_noise(vector, noise_std, rng)

    return ClientPipeline(clip=clipper, noise=noise, codec=codec)
