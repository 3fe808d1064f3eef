"""The key authority and the decryptor: the two Ray roles that touch the CKKS secret.

The key authority runs once, before round 1: it makes the key set and hands out the
secret context (to hospitals and the decryptor) and the public one (to the
aggregator) as Ray objects the driver passes along without reading. The decryptor
stands for the hospitals' side of decryption: it holds a hospital's copy of the
secret context, decrypts only the aggregate, and rounds it before it leaves (exact
CKKS: to 2^-decrypt_rounding_bits; packed: every slot to an integer).
"""

from __future__ import annotations

import numpy as np

from typing import Any

from fedray.crypto import make_codec
from fedray.crypto.ckks import CKKSCodec, CKKSParameters, new_key_set, round_to_grid


class KeyAuthority:
    def __init__(self, params: CKKSParameters) -> None:
        self._keys = new_key_set(params)

    def secret_context(self) -> tuple[bytes, str]:
        return self._keys.secret_context, self._keys.fingerprint

    def public_context(self) -> tuple[bytes, str]:
        return self._keys.public_context, self._keys.fingerprint


class Decryptor:
    def __init__(self, secret_context: tuple[bytes, str], encryption: Any,
                 num_hospitals: int) -> None:
        self.codec = make_codec(secret_context, encryption, num_hospitals)
        self.rounding_bits = encryption.decrypt_rounding_bits

    def decrypt(self, total: Any) -> np.ndarray:
        if isinstance(self.codec, CKKSCodec):
            return round_to_grid(self.codec.decode(total), self.rounding_bits)
        # packed: slots are rounded to integers before unpacking, no CKKS error remains
        return self.codec.decode(total)
