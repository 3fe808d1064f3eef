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
from fedray.privacy.mechanisms import add_gaussian_noise, clip_to_norm
from fedray.privacy.randomness import Randomness
from fedray.strategies import Strategy

VectorStep = Callable[[np.ndarray], np.ndarray]


def identity(vector: np.ndarray) -> np.ndarray:
    return vector


@dataclass(frozen=True)
class Update:
    """What a hospital sends the aggregator: the mechanism's output and nothing else.

    ``weight`` is a function of public quantities only (training-set sizes, or the
    fixed 1/(qN) of central and distributed DP). Losses, ε, timings and counts are
    the researcher's diagnostics: they travel in a :class:`HospitalReport` to the
    driver, never on the aggregator's path."""

    hospital: int
    payload: Any
    weight: float


@dataclass(frozen=True)
class HospitalReport:
    """Simulator diagnostics from one hospital's round: hospital -> driver only."""

    hospital: int
    train_loss: Optional[float]  # None when it did not train (not sampled, exhausted)
    seconds: dict[str, float] = field(default_factory=dict)
    epsilon: Optional[float] = None  # this hospital's ε spent so far (local, DP-SGD)
    exhausted: bool = False  # budget spent: the hospital sent nothing
    sampled: bool = True  # distributed: whether its own coin put its data in
    values_clipped: int = 0  # quantised packing: values outside ±range


@dataclass(frozen=True)
class ClientPipeline:
    clip: VectorStep = identity
    noise_std: float = 0.0  # std of the Gaussian added after clipping, before weighting
    codec: Codec = field(default_factory=PlainCodec)

    def __call__(self, delta: np.ndarray, *, weight: float, randomness: Randomness
                 ) -> tuple[Any, float, int]:
        """Returns the payload, the seconds spent encoding it and how many values the
        codec had to clip (a diagnostic that stays with the hospital's report)."""
        private = self.clip(delta)
        if self.noise_std > 0:
            private = add_gaussian_noise(private, self.noise_std, randomness.generator(),
                                         secure=randomness.secure)
        weighted = (private * weight).astype(np.float32)
        start = time.perf_counter()
        payload = self.codec.encode(weighted)
        return payload, time.perf_counter() - start, self.codec.out_of_range(weighted)


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
    released: bool = True  # False: too few valid updates, nothing decrypted or released


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
    sum would carry too few noise shares); ``min_accepted=0`` with server noise
    releases a noised zero sum when nothing arrived (central DP never skips a round)."""
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
    releases_empty = total is None and min_accepted == 0 and server_noise is not None
    if (total is None and not releases_empty) or len(accepted) < min_accepted:
        if total is not None:
            rejected.extend(Rejection(h, f"only {len(accepted)} valid updates, fewer than the "
                                         f"{min_accepted} the noise shares need; not released")
                            for h in accepted)
            accepted = []
        return AggregateResult(global_vector, (), tuple(rejected), nbytes,
                               {"aggregate": summed, "decrypt": 0.0}, released=False)
    start = time.perf_counter()
    summed_update = (np.zeros(size) if total is None else (decode or codec.decode)(total))
    decoded = time.perf_counter() - start
    if server_noise is not None:
        summed_update = server_noise(summed_update)
    mean_update = summed_update / (fixed_denominator or weight_sum)
    new_global = strategy.server_update(global_vector, mean_update)
    return AggregateResult(
        new_global, tuple(accepted), tuple(rejected), nbytes,
        {"aggregate": summed, "decrypt": decoded},
    )


def client_pipeline(mode: str, *, clip: float, noise_std: float,
                    codec: Optional[Codec] = None) -> ClientPipeline:
    """The hospital-side steps of each privacy mode (docs/privacy.md).

    local and distributed clip and add noise (the full σC, or a share of it);
    central clips and leaves the noise to the aggregator; dpsgd protects records
    inside training, so its update needs no further step.
    """
    codec = codec or PlainCodec()
    if mode not in ("local", "central", "distributed"):
        return ClientPipeline(codec=codec)
    clipper = functools.partial(clip_to_norm, clip=clip)
    if mode == "central":
        return ClientPipeline(clip=clipper, codec=codec)
    return ClientPipeline(clip=clipper, noise_std=noise_std, codec=codec)
