"""The codec of a threshold-CKKS run (``encryption.key_holders=k``, k ≥ 2).

Hospitals encrypt with the joint public key; the aggregator validates and adds
ciphertexts with no key at all; each key holder (a decryptor holding one share) turns
the round's verified sum into its partial decryption, and only all k partial
decryptions combined give the sum (fedray/crypto/threshold.py). Payloads are the same
``EncryptedVector`` as single-key CKKS, so registration, digests and verified
decryption (fedray/crypto/release.py) apply unchanged."""

from __future__ import annotations

from typing import Any

import numpy as np

from fedray.crypto.ckks import EncryptedVector, shape_problem
from fedray.crypto.lanes import rotated_length
from fedray.crypto.threshold import SecretShare, ThresholdParameters, encrypt, partial_decrypt
from fedray.crypto.threshold import add as add_ciphertexts
from fedray.crypto.threshold import combine as combine_partials


class ThresholdCodec:
    """``joint_public``: the joint public key (hospitals encrypt with it; None for a key
    holder or the aggregator, which never encrypt). ``share``: a key holder's share; its
    :meth:`decode` returns a partial decryption, never values."""

    name = "ckks-threshold"

    def __init__(self, params: ThresholdParameters, fingerprint: str, *,
                 joint_public: bytes | None = None, share: SecretShare | None = None) -> None:
        self.params, self.fingerprint = params, fingerprint
        self._joint_public, self._share = joint_public, share
        self.can_decrypt = share is not None  # partially: one share of k
        self.slots = params.slots

    def _chunks(self, size: int) -> int:
        return -(-size // self.slots)

    def encode(self, vector: np.ndarray) -> EncryptedVector:
        if self._joint_public is None:
            raise PermissionError("this party has no joint public key to encrypt with")
        values = np.asarray(vector, dtype=np.float64)
        return EncryptedVector(self.fingerprint, int(values.shape[0]),
                               encrypt(self.params, self._joint_public, values))

    def out_of_range(self, vector: np.ndarray) -> int:
        return int(np.sum(np.abs(np.asarray(vector)) >= self.params.value_bound))

    def validate(self, payload: Any, size: int) -> str | None:
        problem = shape_problem(payload, fingerprint=self.fingerprint, size=size,
                                parts=self._chunks(size))
        if problem is not None:
            return problem
        try:
            add_ciphertexts(self.params, [payload.ciphertexts])  # loads and checks each part
        except Exception as err:  # SEAL refuses truncated, altered or foreign bytes
            return f"ciphertext does not load: {type(err).__name__}: {str(err)[:80]}"
        return None

    def add(self, total: Any, payload: EncryptedVector) -> Any:
        """A running sum: the list of encrypted vectors so far, added at :meth:`seal`
        (one pass, with the summand count the smudging noise is sized for)."""
        return [*(total or []), payload]

    def seal(self, total: Any) -> EncryptedVector:
        if isinstance(total, EncryptedVector):
            return total
        parts = add_ciphertexts(self.params, [p.ciphertexts for p in total])
        return EncryptedVector(self.fingerprint, total[0].size, parts)

    def decode(self, payload: Any) -> Any:
        """A key holder's partial decryption of a (verified) sum: bytes, not values."""
        if self._share is None:
            raise PermissionError("this party holds no key share: it cannot decrypt")
        sealed = self.seal(payload)
        return partial_decrypt(self.params, self._share, sealed.ciphertexts,
                                         np.random.default_rng())

    def combine(self, total: EncryptedVector, partials: list[bytes]) -> np.ndarray:
        """The sum, from every holder's partial decryption of exactly ``total``."""
        return combine_partials(self.params, total.ciphertexts, partials, size=total.size)

    def nbytes(self, payload: EncryptedVector) -> int:
        return payload.nbytes


class IntegerThresholdCodec(ThresholdCodec):
    """Threshold CKKS over distributed DP's integers (one a slot, below the preset's
    value bound): an update of ``size`` values arrives as its rotation's
    power-of-two length (fedray/crypto/lanes.py ``rotated_length``)."""

    def validate(self, payload: Any, size: int) -> str | None:
        return super().validate(payload, rotated_length(size))
