"""Verified decryption: the hospitals' side decrypts one sum per round, and only a sum
it has checked is made of at least ``min_shares`` contributions the hospitals
registered themselves (docs/encryption.md, "Verified decryption").

A hospital registers the digest of the ciphertext it sent for a round directly with
the decryptor, signed with its own registration key (an HMAC key derived from a
secret of the key authority; the aggregator holds none, so it cannot register a
contribution of its own, such as a ciphertext of values it chose). To decrypt, the
aggregator names the round and the contributions it summed and sends its sum. The
decryptor checks each contribution against its registration, sums them itself and
compares that with the aggregator's sum bit for bit (homomorphic addition is exact
modular arithmetic, so an honest sum is identical), then decrypts its own sum, once.
Any refusal means the aggregator left the protocol: nothing more is decrypted in
that run (fail closed).
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass
from typing import Any, Optional

import numpy as np

from fedray.crypto.ckks import CKKSCodec, round_to_grid

REGISTRATION_KEY_BYTES = 32


class DecryptionRefused(PermissionError):
    """The decryptor refused a request: it decrypts nothing more this run."""


@dataclass(frozen=True)
class Registration:
    """A hospital's word, to the decryptor, on what it sent the aggregator."""

    hospital: int
    round_: int
    digest: bytes  # of the payload (EncryptedVector.digest)
    tag: bytes  # HMAC-SHA256 under the hospital's own registration key


def hospital_key(master: bytes, hospital: int) -> bytes:
    """Hospital ``hospital``'s registration key: only it and the decryptor (which holds
    ``master``) can compute it."""
    return hmac.new(master, b"fedray-registration|%d" % hospital, hashlib.sha256).digest()


def _signed(key: bytes, hospital: int, round_: int, digest: bytes) -> bytes:
    message = b"%d|%d|" % (hospital, round_) + digest
    return hmac.new(key, message, hashlib.sha256).digest()


def register_update(update: Any, key: bytes) -> Registration:
    """The registration of ``update`` (a pipeline Update), signed with ``key``."""
    digest = update.payload.digest()
    return Registration(update.hospital, update.round_, digest,
                        _signed(key, update.hospital, update.round_, digest))


class VerifiedDecryption:
    """The decryptor's rules, apart from Ray: registrations in, one sum per round out.

    ``codec`` holds the secret key. Exact CKKS decryptions are rounded to
    2^-``rounding_bits`` before they leave (Li and Micciancio, 2021); packed sums
    are integers and decode exactly."""

    def __init__(self, *, codec: Any, master_key: bytes, min_shares: int,
                 rounding_bits: int) -> None:
        if not codec.can_decrypt:
            raise ValueError("verified decryption needs a codec with the secret key")
        self.codec = codec
        self._master = master_key
        self.min_shares = min_shares
        self.rounding_bits = rounding_bits
        self.last_round = 0  # the last round decrypted; rounds only go forward
        self.refused: Optional[str] = None  # why it stopped decrypting, once it has
        self._registered: dict[tuple[int, int], bytes] = {}  # (round, hospital) -> digest

    def register(self, registrations: list[Registration]) -> None:
        for r in registrations:
            expected = _signed(hospital_key(self._master, r.hospital), r.hospital, r.round_,
                               r.digest)
            if not hmac.compare_digest(expected, r.tag):
                raise DecryptionRefused(f"registration for hospital {r.hospital} in round "
                                        f"{r.round_} is not signed with that hospital's key")
            if r.round_ <= self.last_round:
                raise DecryptionRefused(f"round {r.round_} is over (round {self.last_round} "
                                        f"was decrypted): hospital {r.hospital} registers late")
            if (r.round_, r.hospital) in self._registered:
                raise DecryptionRefused(f"hospital {r.hospital} registered a second update "
                                        f"for round {r.round_}")
            self._registered[(r.round_, r.hospital)] = r.digest

    def decrypt(self, round_: int, updates: list[Any], claimed: Any) -> np.ndarray:
        """The rounded sum of ``updates`` if they are registered contributions of this
        round, at least ``min_shares`` of them, and ``claimed`` is exactly their sum;
        else DecryptionRefused, now and for every later request."""
        if self.refused is not None:
            raise DecryptionRefused(f"the decryptor stopped decrypting when it refused "
                                    f"{self.refused}")
        reason = self._refusal(round_, updates)
        mine = None if reason is not None else self._sum(updates)
        if reason is None and (mine is None or not hasattr(claimed, "digest")
                               or claimed.digest() != mine.digest()):
            reason = "the sum sent is not the sum of the contributions it names"
        if reason is not None:
            self.refused = f"round {round_} ({reason})"
            raise DecryptionRefused(f"decryption of round {round_} refused: {reason}; "
                                    f"nothing more is decrypted this run")
        self.last_round = round_
        self._registered = {k: v for k, v in self._registered.items() if k[0] > round_}
        if isinstance(self.codec, CKKSCodec):
            return round_to_grid(self.codec.decode(mine), self.rounding_bits)
        return self.codec.decode(mine)  # packed: slots are rounded to integers already

    def _refusal(self, round_: int, updates: list[Any]) -> Optional[str]:
        if round_ <= self.last_round:
            return f"round {round_} is not after the last decrypted round, {self.last_round}"
        hospitals = [u.hospital for u in updates]
        if len(set(hospitals)) != len(hospitals):
            return "a hospital's contribution is counted twice"
        if len(hospitals) < self.min_shares:
            return (f"{len(hospitals)} contributions, fewer than the {self.min_shares} a "
                    f"released sum needs")
        for u in updates:
            registered = self._registered.get((round_, u.hospital))
            if u.round_ != round_ or registered is None:
                return f"hospital {u.hospital} registered no update for round {round_}"
            if not hasattr(u.payload, "digest") or u.payload.digest() != registered:
                return f"hospital {u.hospital}'s update is not the one it registered"
        return None

    def _sum(self, updates: list[Any]) -> Optional[Any]:
        """The decryptor's own sum of the checked contributions (None: one does not
        load, which a registered ciphertext from an honest hospital always does)."""
        total = None
        for u in updates:
            size = getattr(u.payload, "size", -1)
            if self.codec.validate(u.payload, size) is not None:
                return None
            total = self.codec.add(total, u.payload)
        return self.codec.seal(total)
