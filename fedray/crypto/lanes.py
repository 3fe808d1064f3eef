"""Integer lanes: distributed DP's integers modulo 2^B, several to a CKKS slot, summed
exactly.

Each hospital's values are integers in [0, 2^B) (fedray/privacy/skellam.py). A slot
holds L of them as lane_0 + lane_1·2^W + …, with W = B + ⌈log2(n + 1)⌉ bits per lane,
so that the sum of n hospitals' lanes never carries into the next lane. Encrypted at
scale 2^20 (fedray/crypto/packing.py's reasoning: integers below 2^39 survive a sum
exactly, the CKKS error ~0.003 of an integer unit rounded away), L = ⌊39 / W⌋ lanes fit.
Decoding reads each lane's exact integer sum and reduces it modulo 2^B: what the
decryptor releases is (Σ hospitals' integers) mod 2^B and nothing finer, a function of
the Skellam mechanism's integer sum; beside it, the decryptor counts the coordinates
whose sum wrapped around the field, a diagnostic for the researcher only.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from fedray.crypto.ckks import CKKSCodec
from fedray.crypto.packing import LANE_CAPACITY_BITS, PACKING_SCALE_BITS, PackedSums, PackedVector


def rotated_length(size: int) -> int:
    """How many integers an update of ``size`` values becomes: the Hadamard rotation's
    next power of two (fedray/privacy/skellam.py ``padded_length``; kept here so that
    crypto never imports privacy)."""
    return 1 << max(0, math.ceil(math.log2(max(size, 1))))


@dataclass(frozen=True)
class IntegerLanes:
    """How integers modulo 2^``bits`` from up to ``max_summands`` hospitals share slots."""

    bits: int
    max_summands: int

    @property
    def lane_width(self) -> int:
        return self.bits + max(1, math.ceil(math.log2(self.max_summands + 1)))

    @property
    def lanes(self) -> int:
        return LANE_CAPACITY_BITS // self.lane_width

    def check(self) -> str | None:
        if self.lanes < 1:
            return (f"a lane of {self.bits} bits plus room for {self.max_summands} hospitals "
                    f"needs {self.lane_width} bits; a slot holds {LANE_CAPACITY_BITS}: "
                    "lower privacy.bits")
        return None

    def pack(self, integers: np.ndarray) -> np.ndarray:
        """Slots of ``lanes`` integers each (the last padded with zeros)."""
        count = -(-len(integers) // self.lanes)
        padded = np.zeros(count * self.lanes, dtype=np.int64)
        padded[: len(integers)] = integers
        shifts = 2.0 ** (self.lane_width * np.arange(self.lanes))
        return (padded.reshape(count, self.lanes) * shifts).sum(axis=1)

    def unpack(self, slots: np.ndarray, size: int) -> np.ndarray:
        """Each lane's integer, in order, cut to ``size``."""
        remaining = np.rint(slots).astype(np.int64)
        width = 1 << self.lane_width
        lanes = []
        for _ in range(self.lanes):
            lanes.append(np.mod(remaining, width))
            remaining = remaining // width
        return np.stack(lanes, axis=1).reshape(-1)[:size]


class IntegerLanesCodec(PackedSums):
    """The CKKS codec over integer lanes (privacy=distributed)."""

    name = "ckks-integer-lanes"

    def __init__(self, context: bytes, key_fingerprint: str, lanes: IntegerLanes) -> None:
        self.inner = CKKSCodec(context, key_fingerprint, scale_bits=PACKING_SCALE_BITS)
        self.layout = lanes
        self.can_decrypt = self.inner.can_decrypt

    def encode(self, vector: np.ndarray) -> PackedVector:
        integers = np.rint(np.asarray(vector, dtype=np.float64)).astype(np.int64)
        if integers.size and (integers.min() < 0 or integers.max() >= 1 << self.layout.bits):
            raise ValueError(f"values must be integers in [0, 2^{self.layout.bits})")
        return PackedVector(self.inner.encode(self.layout.pack(integers)), len(integers), 1)

    def out_of_range(self, vector: np.ndarray) -> int:
        """Nothing is clipped: the values arrive reduced into the field."""
        return 0

    def validate(self, payload: Any, size: int) -> str | None:
        """``size``: the update's coordinates; the integers are its rotation, padded."""
        if not isinstance(payload, PackedVector):
            return f"payload is {type(payload).__name__}, expected a packed encrypted vector"
        length = rotated_length(size)
        if payload.size != length or payload.count != 1:
            return (f"integer vector of {payload.size} values x {payload.count}, expected "
                    f"{length} x 1")
        return self.inner.validate(payload.inner, -(-length // self.layout.lanes))

    def decode(self, payload: Any) -> np.ndarray:
        """The lanes' sums modulo 2^B (as floats): all a release may show."""
        return self.decode_counting(payload)[0]

    def decode_counting(self, payload: Any) -> tuple[np.ndarray, int]:
        """The release, and how many of its coordinates wrapped around the field. Each
        hospital sends its centred integers offset by 2^(B−1) (fedray/privacy/steps.py
        SkellamShare), so a lane's exact sum less n·2^(B−1) is the integers' true sum S;
        (S + n·2^(B−1)) mod 2^B is released (the server takes the offsets off), and S
        outside [−2^(B−1), 2^(B−1)) is a wrap. The count is a function of S, the Skellam
        mechanism's output, unless a hospital's own value left the field (far rarer
        than the sum's: its spread is the sum's over √n)."""
        sealed = payload if isinstance(payload, PackedVector) else self.seal(payload)
        if sealed.count > self.layout.max_summands:
            raise ValueError(f"a sum of {sealed.count} vectors overflows lanes made for "
                             f"{self.layout.max_summands}")
        half = 1 << (self.layout.bits - 1)
        sums = self.layout.unpack(self.inner.decode(sealed.inner), sealed.size)
        true_sum = sums - sealed.count * half
        wrapped = int(np.count_nonzero((true_sum < -half) | (true_sum >= half)))
        return np.mod(sums, 1 << self.layout.bits).astype(np.float64), wrapped
