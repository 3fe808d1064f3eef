"""The update's path, written once.

Hospital: uploads (named vectors, concatenated) -> clip -> noise -> weight -> discretise
-> encode.
Aggregator: validate -> sum -> decode -> restore -> noise -> split -> average -> server
rule (with state).

Privacy plugs in as steps (fedray/privacy/steps.py: the plan builds a hospital's
``ClientPrivacy`` and the server's ``ServerPrivacy``); encryption plugs in as the
codec. The round loop never changes when they do.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from fedray.crypto import Codec, PlainCodec
from fedray.messages import HospitalReport, Update  # noqa: F401 (the pipeline's messages)
from fedray.privacy.randomness import Randomness
from fedray.privacy.steps import Discretize, KeepFloats, ServerPrivacy, UpdateStep
from fedray.strategies import Strategy
from fedray.strategies.base import State, split_uploads, upload_sizes


@dataclass(frozen=True)
class ClientPipeline:
    """A hospital's update path: its privacy steps in order (clip, then noise), then
    its round weight, then its discretisation (distributed DP's integers with their
    noise share; else nothing), then the codec."""

    steps: tuple[UpdateStep, ...] = ()
    codec: Codec = field(default_factory=PlainCodec)
    discretize: Discretize = field(default_factory=KeepFloats)

    def __call__(self, delta: np.ndarray, *, weight: Any, randomness: Randomness
                 ) -> tuple[Any, float, int]:
        """Returns the payload, the seconds spent encoding it and how many values the
        codec had to clip (a diagnostic that stays with the hospital's report)."""
        private = delta
        for step in self.steps:
            private = step(private, randomness)
        weighted = self.discretize((private * weight).astype(np.float32), randomness)
        start = time.perf_counter()
        payload = self.codec.encode(weighted)
        return payload, time.perf_counter() - start, self.codec.out_of_range(weighted)


@dataclass(frozen=True)
class Rejection:
    hospital: int
    reason: str


@dataclass(frozen=True)
class AggregateResult:
    broadcast: RoundBroadcast | None  # the next round's; None in the driver's report
    server_state: State | None  # the strategy's server state; None in the report
    accepted: tuple[int, ...]
    rejected: tuple[Rejection, ...]
    bytes_received: int
    seconds: dict[str, float]
    released: bool = True  # False: too few valid updates, nothing decrypted or released


@dataclass(frozen=True)
class RoundBroadcast:
    """What every hospital receives for a round: the global model and the strategy's
    extra vectors (SCAFFOLD's server control variate). One object in Ray's store."""

    global_vector: np.ndarray
    extras: State = field(default_factory=dict)


@dataclass(frozen=True)
class UploadLayout:
    """How a strategy's named uploads sit in the one vector that is encrypted."""

    strategy: Strategy
    sizes: tuple[int, ...]
    num_hospitals: int
    # model positions each hospital keeps (FedBN): the server never moves them, so the
    # noise DP adds there never reaches anyone's BatchNorm
    kept: np.ndarray | None = None

    @property
    def size(self) -> int:
        return sum(self.sizes)

    def coordinate_weights(self, weight: float) -> np.ndarray:
        """A hospital's pre-scaling, per coordinate: its round weight on averaged
        parts, 1/N on parts summed over all hospitals."""
        return np.concatenate([
            np.full(n, weight if u.average == "mean" else 1.0 / self.num_hospitals)
            for u, n in zip(self.strategy.uploads, self.sizes)])

    def means(self, summed: np.ndarray, denominator: float) -> State:
        parts = split_uploads(self.strategy, summed, list(self.sizes))
        means = {u.name: parts[u.name] / denominator if u.average == "mean" else parts[u.name]
                 for u in self.strategy.uploads}
        if self.kept is not None:
            means["model"] = np.where(self.kept, 0.0, means["model"])
        return means


def upload_layout(strategy: Strategy, model: Any, num_hospitals: int) -> UploadLayout:
    from fedray.models import flatten, num_trainable  # torch: workers have it already

    sizes = upload_sizes(strategy, size=flatten(model).shape[0],
                         num_trainable=num_trainable(model))
    return UploadLayout(strategy, tuple(sizes), num_hospitals, strategy.local_positions(model))


def aggregate(
    updates: list[Update], *, broadcast: RoundBroadcast, server_state: State,
    weights: dict[int, float], layout: UploadLayout, codec: Codec,
    decode: Callable[[Any, tuple[int, ...]], np.ndarray] | None = None,
    server: ServerPrivacy | None = None, round_: int | None = None,
) -> AggregateResult:
    """Validates, sums and applies the server rule. A bad update is rejected, never
    averaged in. ``weights`` are the round's weights as the orchestrator assigned them
    (never echoed by a hospital); averaged parts divide by the weights that actually
    arrived, or by the server's fixed ``denominator`` (central and distributed DP:
    data-independent), after its ``noise`` (central DP's noise on the sum). ``server``
    (fedray/privacy/steps.py, none by default): fewer than its ``min_accepted`` valid
    updates are not decrypted or released (distributed DP: the sum would carry too few
    noise shares); ``min_accepted=0`` releases a noised zero sum when nothing arrived
    (central DP never skips a round); with a ``norm_bound`` (plaintext updates clipped
    to C with no noise of their own, central DP) an update longer than its weight × C
    cannot come from an honest hospital and is refused.
    ``decode(total, accepted)``: who decrypts the sum when the aggregator cannot (the
    decryptor, which checks it is the sum of the ``accepted`` hospitals' registered
    updates). ``round_``: updates made for another round are refused (a replay)."""
    server = server or ServerPrivacy()
    min_accepted, norm_bound = server.min_accepted, server.norm_bound
    total, weight_sum, nbytes = None, 0.0, 0
    accepted: list[int] = []
    rejected: list[Rejection] = []
    start = time.perf_counter()
    # Summing in hospital order makes the result independent of arrival order and of
    # how hospitals are spread over actors: same seed, same model.
    updates = sorted(updates, key=lambda u: u.hospital)
    seen: set[int] = set()
    for update in updates:
        reason = codec.validate(update.payload, layout.size)
        if update.hospital not in weights:
            reason = "was not asked to take part this round"
        elif update.hospital in seen:
            reason = "sent a second update this round"
        elif round_ is not None and update.round_ != round_:
            reason = f"replayed an update made for round {update.round_}"
        elif reason is None and norm_bound is not None:
            reason = _above_clip(update.payload, layout, weights[update.hospital], norm_bound)
        if reason is not None:
            rejected.append(Rejection(update.hospital, reason))
            continue
        seen.add(update.hospital)
        total = codec.add(total, update.payload)
        weight_sum += weights[update.hospital]
        nbytes += codec.nbytes(update.payload)
        accepted.append(update.hospital)
    summed = time.perf_counter() - start
    releases_empty = total is None and server.releases_empty_rounds
    if (total is None and not releases_empty) or len(accepted) < min_accepted:
        if total is not None:
            rejected.extend(Rejection(h, f"only {len(accepted)} valid updates, fewer than the "
                                         f"{min_accepted} the noise shares need; not released")
                            for h in accepted)
            accepted = []
        return AggregateResult(broadcast, server_state, (), tuple(rejected), nbytes,
                               {"aggregate": summed, "decrypt": 0.0}, released=False)
    start = time.perf_counter()
    summed_update = (np.zeros(layout.size) if total is None
                     else decode(total, tuple(accepted)) if decode is not None
                     else codec.decode(total))
    decoded = time.perf_counter() - start
    summed_update = server.noise(server.restore(summed_update, layout.size, len(accepted)))
    means = layout.means(summed_update, server.denominator or weight_sum)
    strategy = layout.strategy
    new_global, new_state = strategy.server_update(broadcast.global_vector, means, server_state)
    return AggregateResult(
        RoundBroadcast(new_global, strategy.broadcast(new_state)), new_state,
        tuple(accepted), tuple(rejected), nbytes, {"aggregate": summed, "decrypt": decoded},
    )


def _above_clip(payload: np.ndarray, layout: UploadLayout, weight: float, clip: float
                ) -> str | None:
    """Why a plaintext update breaks the clip bound, or None (float64, with a 1e-6 margin
    for the float32 payload's rounding)."""
    norm = float(np.linalg.norm(np.asarray(payload, dtype=np.float64)))
    bound = float(np.max(layout.coordinate_weights(weight))) * clip
    if norm > bound * (1 + 1e-6):
        return f"norm {norm:.6g} is above the clip bound {bound:.6g} (weight × C)"
    return None
