"""Verified decryption: the hospitals' side decrypts one sum per round, and only a sum
it has checked is made of at least ``min_shares`` contributions the hospitals
registered themselves, and of every one that arrived in time (docs/encryption.md,
"Verified decryption").

A hospital registers, directly with the decryptor, the digest of the ciphertext it
sent for a round and the digest of the global model it trained from, signed with its
own registration key (an HMAC key derived from a secret of the key authority; the
aggregator holds none, so it cannot register a contribution of its own, such as a
ciphertext of values it chose). The driver, not the aggregator, closes each round: it
hands the decryptor the update batches that arrived in time (``close_round``), and the
round's contributions are those of them whose ciphertext is the one its hospital
registered; the aggregator cannot leave one out. To decrypt, the aggregator names the
round and the hospitals it summed and sends its sum. The decryptor checks that these
are exactly the round's contributions, at least ``min_shares`` of them, all trained
from one model it has not seen in an earlier decrypted round, sums them itself and
compares that with the aggregator's sum bit for bit (homomorphic addition is exact
modular arithmetic, so an honest sum is identical), then decrypts its own sum, once.
Anything the aggregator sends is data of exact types, read field by field: no method
of an object it made is ever called.
Any refusal, or any error on the way, means the aggregator left the protocol:
nothing more is decrypted in that run (fail closed).
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass
from typing import Any

import numpy as np

from fedray.crypto.ckks import CKKSCodec, EncryptedVector, round_to_grid
from fedray.crypto.lanes import IntegerLanesCodec
from fedray.crypto.packing import PackedVector
from fedray.messages import Update

REGISTRATION_KEY_BYTES = 32
LEAST_CONTRIBUTIONS = 2  # under encryption no decrypted sum is one hospital's update


def decryption_floor(min_clients: int) -> int:
    """The fewest contributions a decrypted sum covers: ``min_clients``, and never fewer
    than two (docs/encryption.md: min_clients=1 is raised to 2 under encryption)."""
    return max(LEAST_CONTRIBUTIONS, min_clients)


class DecryptionRefused(PermissionError):
    """The decryptor refused a request: it decrypts nothing more this run."""


@dataclass(frozen=True)
class Registration:
    """A hospital's word, to the decryptor, on what it sent the aggregator."""

    hospital: int
    round_: int
    digest: bytes  # of the payload (payload_digest)
    model: bytes  # of the broadcast it trained from (model_digest)
    tag: bytes  # HMAC-SHA256 under the hospital's own registration key


def payload_digest(payload: Any) -> bytes | None:
    """SHA-256 over everything the aggregator adds (fingerprint, sizes, every part,
    length-prefixed), or None when ``payload`` is not exactly an EncryptedVector or a
    PackedVector of one (subclasses refused: their methods could say anything)."""
    if type(payload) is PackedVector:
        inner = payload_digest(payload.inner)
        if inner is None or type(payload.size) is not int or type(payload.count) is not int:
            return None
        return hashlib.sha256(b"packed|%d|%d|" % (payload.size, payload.count) + inner).digest()
    if (type(payload) is not EncryptedVector or type(payload.key_fingerprint) is not str
            or type(payload.size) is not int or type(payload.ciphertexts) is not tuple
            or not all(type(part) is bytes for part in payload.ciphertexts)):
        return None
    h = hashlib.sha256(b"ckks|%s|%d|%d" % (payload.key_fingerprint.encode(), payload.size,
                                           len(payload.ciphertexts)))
    for part in payload.ciphertexts:
        h.update(len(part).to_bytes(8, "little"))
        h.update(part)
    return h.digest()


def model_digest(global_vector: np.ndarray, extras: dict[str, np.ndarray]) -> bytes:
    """SHA-256 of a round's broadcast (the global vector and the strategy's vectors)."""
    h = hashlib.sha256(np.ascontiguousarray(global_vector, dtype=np.float64).tobytes())
    for name in sorted(extras):
        h.update(name.encode())
        h.update(np.ascontiguousarray(extras[name], dtype=np.float64).tobytes())
    return h.digest()


def hospital_key(master: bytes, hospital: int) -> bytes:
    """Hospital ``hospital``'s registration key: only it and the decryptor (which holds
    ``master``) can compute it."""
    return hmac.new(master, b"fedray-registration|%d" % hospital, hashlib.sha256).digest()


def _signed(key: bytes, hospital: int, round_: int, digest: bytes, model: bytes) -> bytes:
    message = b"%d|%d|" % (hospital, round_) + digest + model
    return hmac.new(key, message, hashlib.sha256).digest()


def register_update(update: Any, key: bytes, model: bytes) -> Registration:
    """The registration of ``update`` (a pipeline Update) trained from the broadcast
    whose digest is ``model``, signed with ``key``."""
    digest = payload_digest(update.payload)
    assert digest is not None, "a hospital sends an encrypted payload"
    return Registration(update.hospital, update.round_, digest, model,
                        _signed(key, update.hospital, update.round_, digest, model))


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
        self.refused: str | None = None  # why it stopped decrypting, once it has
        # (round, hospital) -> (payload digest, model digest)
        self._registered: dict[tuple[int, int], tuple[bytes, bytes]] = {}
        self._models_released: set[bytes] = set()  # models of the rounds decrypted
        self._closed: dict[int, list[Any]] = {}  # round -> the updates that arrived in time
        # distributed DP: round -> coordinates of the released sum that wrapped around
        # the field (a diagnostic the driver reads; the aggregator never gets it)
        self.wrapped: dict[int, int] = {}

    def close_round(self, round_: int, arrived: list[Any]) -> None:
        """The driver's word: ``arrived`` are the round's updates that came in time."""
        if type(round_) is not int or round_ <= self.last_round or round_ in self._closed:
            raise DecryptionRefused(f"round {round_!r} cannot be closed again")
        self._closed[round_] = list(arrived)

    def register(self, registrations: list[Registration]) -> list[int]:
        """Records the registrations; returns the hospitals whose round was already
        decrypted (a batch that missed its round: nothing to record, nothing wrong).
        A registration that is not signed with its hospital's key, or a second one for a
        hospital and round, is refused."""
        late = []
        for r in registrations:
            expected = _signed(hospital_key(self._master, r.hospital), r.hospital, r.round_,
                               r.digest, r.model)
            if not hmac.compare_digest(expected, r.tag):
                raise DecryptionRefused(f"registration for hospital {r.hospital} in round "
                                        f"{r.round_} is not signed with that hospital's key")
            if r.round_ <= self.last_round:
                late.append(r.hospital)
                continue
            if (r.round_, r.hospital) in self._registered:
                raise DecryptionRefused(f"hospital {r.hospital} registered a second update "
                                        f"for round {r.round_}")
            self._registered[(r.round_, r.hospital)] = (r.digest, r.model)
        return late

    def decrypt(self, round_: Any, contributors: list[Any], claimed: Any) -> np.ndarray:
        """The rounded sum of the round's contributions if ``contributors`` names
        exactly them, they are at least ``min_shares``, trained from one model not
        released before, and ``claimed`` is exactly their sum; else DecryptionRefused,
        now and for every later request."""
        if self.refused is not None:
            raise DecryptionRefused(f"the decryptor stopped decrypting when it refused "
                                    f"{self.refused}")
        updates: list[Any] = []
        try:
            reason, model, updates = self._chosen(round_, contributors)
            if reason is None:
                reason, model = self._refusal(round_, updates)
            mine = None if reason is not None else self._sum(updates)
            # (a claimed object of another type has no digest: None, never equal)
            if reason is None and (mine is None
                                   or payload_digest(claimed) != payload_digest(mine)):
                reason = "the sum sent is not the sum of the contributions it names"
        except Exception as err:  # anything odd the aggregator sent
            reason, mine = f"a malformed request ({type(err).__name__})", None
        if reason is not None:
            self.refused = f"round {round_!r} ({reason})"
            raise DecryptionRefused(f"decryption of round {round_!r} refused: {reason}; "
                                    f"nothing more is decrypted this run")
        self.last_round = round_
        self._models_released.add(model)
        self._registered = {k: v for k, v in self._registered.items() if k[0] > round_}
        self._closed = {r: v for r, v in self._closed.items() if r > round_}
        if isinstance(self.codec, CKKSCodec):
            return round_to_grid(self.codec.decode(mine), self.rounding_bits)
        if isinstance(self.codec, IntegerLanesCodec):  # distributed DP: count the wraps
            released, self.wrapped[round_] = self.codec.decode_counting(mine)
            return released
        return self.codec.decode(mine)  # packed: slots are rounded to integers already

    def _chosen(self, round_: Any, contributors: Any
                ) -> tuple[str | None, bytes, list[Any]]:
        """The round's contributions: the arrived updates whose ciphertext is the one
        their hospital registered for this round; they must be exactly ``contributors``."""
        if type(round_) is not int or round_ <= self.last_round:
            return (f"round {round_!r} is not after the last decrypted round, "
                    f"{self.last_round}"), b"", []
        arrived = self._closed.get(round_)
        if arrived is None:
            return f"round {round_} was not closed by the driver", b"", []
        if type(contributors) is not list or any(type(h) is not int for h in contributors):
            return "contributors must come as a list of hospital indices", b"", []
        chosen = {}
        for u in arrived:
            registered = self._registered.get((round_, u.hospital))
            if (type(u) is Update and registered is not None and type(u.round_) is int
                    and u.round_ == round_ and payload_digest(u.payload) == registered[0]
                    and u.hospital not in chosen
                    and self.codec.validate(u.payload, u.payload.size) is None):
                chosen[u.hospital] = u
        named = set(contributors)
        if len(named) != len(contributors):
            return "a hospital's contribution is counted twice", b"", []
        if named != set(chosen):
            left_out = sorted(set(chosen) - named)
            added = sorted(named - set(chosen))
            return (f"the sum must cover exactly the registered contributions that arrived "
                    f"in time (left out: {left_out}; not registered or not arrived: "
                    f"{added})"), b"", []
        return None, b"", [chosen[h] for h in sorted(chosen)]

    def _refusal(self, round_: Any, updates: list[Any]) -> tuple[str | None, bytes]:
        if type(round_) is not int or round_ <= self.last_round:
            return (f"round {round_!r} is not after the last decrypted round, "
                    f"{self.last_round}"), b""
        if type(updates) is not list or any(type(u) is not Update for u in updates):
            return "contributions must come as a list of updates", b""
        hospitals = [u.hospital for u in updates]
        if any(type(h) is not int for h in hospitals) or len(set(hospitals)) != len(hospitals):
            return "a hospital's contribution is counted twice (or not by its index)", b""
        if len(hospitals) < self.min_shares:
            return (f"{len(hospitals)} contributions, fewer than the {self.min_shares} a "
                    f"released sum needs"), b""
        models = set()
        for u in updates:
            registered = self._registered.get((round_, u.hospital))
            if type(u.round_) is not int or u.round_ != round_ or registered is None:
                return f"hospital {u.hospital} registered no update for round {round_}", b""
            if payload_digest(u.payload) != registered[0]:
                return f"hospital {u.hospital}'s update is not the one it registered", b""
            models.add(registered[1])
        if len(models) != 1:
            return "the contributions were trained from different models", b""
        model = models.pop()
        if model in self._models_released:
            # the same model twice would let two sums of one model difference out
            return "their model was broadcast in an earlier decrypted round", b""
        return None, model

    def _sum(self, updates: list[Any]) -> Any | None:
        """The decryptor's own sum of the checked contributions (None: one does not
        load, which a registered ciphertext from an honest hospital always does)."""
        total = None
        for u in updates:
            if self.codec.validate(u.payload, u.payload.size) is not None:
                return None
            total = self.codec.add(total, u.payload)
        return self.codec.seal(total)
