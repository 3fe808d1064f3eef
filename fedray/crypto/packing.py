"""Quantised packing: two updates' values per CKKS slot, 16 bytes per parameter.

Each value is clipped to ±range and rounded to one of 2^bits levels (an integer);
integers from consecutive positions share a slot as lane_0 + lane_1·2^W, where W
leaves room for the sum over every hospital. The ciphertexts are encrypted at scale
2^20, where integers below 2^39 survive a sum exactly (CKKS error ~0.003 in integer
units, rounded away), so the aggregate of the quantised updates decrypts exactly; the
only error is the quantisation itself, range/2^bits per value — far below DP noise.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from statistics import NormalDist
from typing import Any

import numpy as np

from fedray.crypto.ckks import CKKSCodec, EncryptedVector

PACKING_SCALE_BITS = 20
# Under DP, a clipped value changes the mechanism: the range is chosen so that the
# chance that any value of the whole run is clipped stays below δ/100, and a hand-set
# range that allows more is refused. (Distributed DP does not use it: the rounded
# shares' sum would not be post-processing of the Gaussian sum. It sums integers in
# its own lanes: fedray/crypto/lanes.py.)
CLIP_SHARE_OF_DELTA = 0.01
LANE_CAPACITY_BITS = 39  # 60-bit data prime, scale 2^20: integers < 2^39 stay exact
LANES = 2


@dataclass(frozen=True)
class Layout:
    """How quantised integers share a slot, for sums of up to ``max_summands``."""

    bits: int
    value_range: float
    max_summands: int

    @property
    def lane_width(self) -> int:
        return self.bits + max(1, math.ceil(math.log2(self.max_summands + 1)))

    @property
    def levels(self) -> int:
        return 2 ** self.bits - 1

    def check(self) -> str | None:
        if LANES * self.lane_width > LANE_CAPACITY_BITS:
            return (f"{LANES} lanes of {self.bits} bits plus room for {self.max_summands} "
                    f"hospitals need {LANES * self.lane_width} bits; a slot holds "
                    f"{LANE_CAPACITY_BITS}: lower quantization_bits")
        return None


def quantize(values: np.ndarray, layout: Layout) -> np.ndarray:
    """Integers in [0, levels]; values beyond ±range are clipped to it."""
    bounded = np.clip(values, -layout.value_range, layout.value_range)
    scaled = (bounded + layout.value_range) / (2 * layout.value_range) * layout.levels
    return np.rint(scaled).astype(np.int64)


def count_out_of_range(values: np.ndarray, layout: Layout) -> int:
    return int(np.count_nonzero(np.abs(values) > layout.value_range))


def dequantize_sum(sums: np.ndarray, count: int, layout: Layout) -> np.ndarray:
    """The sum of ``count`` dequantised vectors, from the sum of their integers."""
    return sums / layout.levels * (2 * layout.value_range) - count * layout.value_range


def clipped_share_bound(value_range: float, *, clip: float, noise_std: float,
                        weight: float) -> float:
    """Bound on the share of one hospital's values beyond ±range. Each weighted value
    is w·(u + n) with |u| ≤ C (the update is clipped to norm C) and n ~ N(0, s²), so
    it leaves the range only if |n| > R/w − C."""
    margin = value_range / weight - clip
    if margin <= 0:
        return 1.0
    if noise_std == 0:
        return 0.0
    return math.erfc(margin / (noise_std * math.sqrt(2.0)))


def noise_tails(*, delta: float, values_per_run: int) -> float:
    """How many noise std a range must leave above the clipped update so that no value
    of the run is clipped, except with probability δ·CLIP_SHARE_OF_DELTA."""
    per_value = delta * CLIP_SHARE_OF_DELTA / values_per_run
    return -NormalDist().inv_cdf(per_value / 2.0)


def range_for_noise(*, clip: float, noise_stds: list[float], weights: list[float],
                    tails: float) -> float:
    """The smallest range that keeps every hospital's values (clipped update plus
    ``tails`` noise std, after its largest weight) inside: one range for all, so
    clipping biases no hospital more than another."""
    return max(w * (clip + tails * s) for w, s in zip(weights, noise_stds))


def pack(integers: np.ndarray, layout: Layout) -> np.ndarray:
    padded = np.concatenate([integers, np.zeros(len(integers) % LANES, dtype=np.int64)])
    lanes = padded.reshape(-1, LANES)
    return (lanes * (2.0 ** (layout.lane_width * np.arange(LANES)))).sum(axis=1)


def unpack(slots: np.ndarray, size: int, layout: Layout) -> np.ndarray:
    remaining = np.rint(slots).astype(np.int64)
    width = 2 ** layout.lane_width
    lanes = []
    for _ in range(LANES):
        lanes.append(np.mod(remaining, width))
        remaining = remaining // width
    return np.stack(lanes, axis=1).reshape(-1)[:size]


@dataclass(frozen=True)
class PackedVector:
    inner: EncryptedVector  # ciphertexts of the packed slots
    size: int  # values before packing
    count: int  # how many hospitals' vectors are summed in it

    @property
    def nbytes(self) -> int:
        return self.inner.nbytes


class PackedSums:
    """What packed codecs share: a running sum of packed ciphertexts that counts the
    vectors in it, sealed into one :class:`PackedVector`."""

    inner: CKKSCodec

    def add(self, total: Any, payload: PackedVector) -> Any:
        """Running sum: (loaded ciphertext parts, hospitals summed, values)."""
        parts, count, _ = total if total is not None else (None, 0, payload.size)
        return self.inner.add(parts, payload.inner), count + 1, payload.size

    def seal(self, total: Any) -> PackedVector:
        parts, count, size = total
        return PackedVector(self.inner.seal(parts), size, count)

    def nbytes(self, payload: PackedVector) -> int:
        return payload.nbytes


class PackedCKKSCodec(PackedSums):
    """The CKKS codec over quantised, two-per-slot packed values."""

    name = "ckks-packed"

    def __init__(self, context: bytes, key_fingerprint: str, layout: Layout) -> None:
        self.inner = CKKSCodec(context, key_fingerprint, scale_bits=PACKING_SCALE_BITS)
        self.layout = layout
        self.can_decrypt = self.inner.can_decrypt

    def encode(self, vector: np.ndarray) -> PackedVector:
        integers = quantize(np.asarray(vector, dtype=np.float64), self.layout)
        return PackedVector(self.inner.encode(pack(integers, self.layout)),
                            int(vector.shape[0]), 1)

    def out_of_range(self, vector: np.ndarray) -> int:
        """A diagnostic for the hospital's report: it never rides in the payload."""
        return count_out_of_range(np.asarray(vector, dtype=np.float64), self.layout)

    def validate(self, payload: Any, size: int) -> str | None:
        if not isinstance(payload, PackedVector):
            return f"payload is {type(payload).__name__}, expected a packed encrypted vector"
        if payload.size != size or payload.count != 1:
            return f"packed vector of {payload.size} values x {payload.count}, expected {size} x 1"
        return self.inner.validate(payload.inner, -(-size // LANES))

    def decode(self, payload: Any) -> np.ndarray:
        sealed = payload if isinstance(payload, PackedVector) else self.seal(payload)
        slots = self.inner.decode(sealed.inner)
        return dequantize_sum(unpack(slots, sealed.size, self.layout), sealed.count, self.layout)
