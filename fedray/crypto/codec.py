"""The codec interface between a hospital's pipeline and the aggregator."""

from __future__ import annotations

from typing import Any, Protocol

import numpy as np


class Codec(Protocol):
    name: str

    def encode(self, vector: np.ndarray) -> Any: ...

    def out_of_range(self, vector: np.ndarray) -> int:
        """How many values ``encode`` would have to clip (0 for exact codecs)."""

    def validate(self, payload: Any, size: int) -> str | None:
        """None if the aggregator may add ``payload``; else why it is rejected."""

    def add(self, total: Any, payload: Any) -> Any: ...

    def decode(self, payload: Any) -> np.ndarray: ...

    def nbytes(self, payload: Any) -> int: ...


class PlainCodec:
    """No encryption: a flat float32 vector, checked for shape and finiteness."""

    name = "none"

    def encode(self, vector: np.ndarray) -> np.ndarray:
        return np.ascontiguousarray(vector, dtype=np.float32)

    def out_of_range(self, vector: np.ndarray) -> int:
        return 0

    def validate(self, payload: Any, size: int) -> str | None:
        if not isinstance(payload, np.ndarray):
            return f"payload is {type(payload).__name__}, expected a float32 array"
        if payload.dtype != np.float32 or payload.ndim != 1:
            return (f"payload is {payload.dtype} with shape {payload.shape}, "
                    f"expected float32 ({size},)")
        if payload.shape[0] != size:
            return f"payload has {payload.shape[0]} values, the model has {size}"
        bad = int(np.count_nonzero(~np.isfinite(payload)))
        if bad:
            return f"payload has {bad} non-finite values (NaN or inf)"
        return None

    def add(self, total: np.ndarray | None, payload: np.ndarray) -> np.ndarray:
        return payload.astype(np.float64) if total is None else total + payload

    def decode(self, payload: np.ndarray) -> np.ndarray:
        return np.asarray(payload, dtype=np.float64)

    def nbytes(self, payload: np.ndarray) -> int:
        return int(payload.nbytes)


class AwaitingKeys:
    """A hospital's codec while encryption is on but its keys have not arrived from
    the key authority: encoding refuses, so nothing is ever sent in the clear."""

    name = "ckks"

    def encode(self, vector: np.ndarray) -> Any:
        raise RuntimeError("encryption is on but the key authority has not provisioned "
                           "this hospital's worker: refusing to send an update")

    def out_of_range(self, vector: np.ndarray) -> int:
        return 0
