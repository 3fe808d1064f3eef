"""The key authority and the decryptor: the two Ray roles that make or use the secret.

The key authority makes a run's CKKS key set and registration secret, and hands the
secret material to the hospital workers and the decryptor itself, actor to actor
(``provision``): no call of the authority returns it, so the driver never owns a
reference to it. The aggregator gets the key-free context (``start_run`` returns it).
Both roles are kept warm between runs (fedray/runtime/pool.py); ``start_run`` gives
each run fresh keys and forgets the last run's.

The decryptor stands for the hospitals' side of decryption. Hospitals register what
they sent with it directly; it decrypts one verified sum per round
(fedray/crypto/release.py) and refuses everything after a request that breaks the
rules.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from typing import Any

import numpy as np
import ray

from fedray.crypto import make_codec
from fedray.crypto.ckks import CKKSParameters, new_key_set
from fedray.crypto.release import (
    REGISTRATION_KEY_BYTES,
    Registration,
    VerifiedDecryption,
    hospital_key,
)


@dataclass(frozen=True)
class HospitalKeys:
    """What a hospital worker receives from the key authority: the secret context (to
    encrypt), each hosted hospital's registration key, and where to register."""

    secret_context: bytes
    fingerprint: str
    registration_keys: dict[int, bytes]
    decryptor: Any  # actor handle


@dataclass(frozen=True)
class DecryptorKeys:
    secret_context: bytes
    fingerprint: str
    registration_master: bytes


class KeyAuthority:
    """Kept warm between runs like the workers (fedray/runtime/pool.py): each run starts
    with :meth:`start_run`, which makes fresh keys and forgets the last run's."""

    def start_run(self, params: CKKSParameters) -> tuple[bytes, str]:
        """A fresh key set and registration secret for a run; returns the key-free
        context (what the aggregator gets) and the key set's fingerprint."""
        self._keys = new_key_set(params)
        self._master = secrets.token_bytes(REGISTRATION_KEY_BYTES)
        # worker (actor id) -> the hospitals it hosts, and the decryptor the workers
        # register with: both fixed by the run's first provision
        self._federation: dict[str, tuple[int, ...]] | None = None
        self._decryptor: Any | None = None
        return self._keys.public_context, self._keys.fingerprint

    def provision(self, workers: list[tuple[Any, list[int]]],
                  decryptor: Any | None = None) -> None:
        """Installs the keys in each (hospital worker, hospitals it hosts) and in the
        decryptor, and waits until they are in. Returns nothing: the secret travels
        from this actor to those, never to the caller. The first call fixes the run's
        workers and decryptor; later calls may only provision one of those workers again
        with the same hospitals (after Ray restarted it)."""
        asked = {worker._actor_id.hex(): tuple(hospitals) for worker, hospitals in workers}
        federation = self._federation
        first = federation is None
        if federation is None:
            self._federation, self._decryptor = asked, decryptor
        elif decryptor is not None or any(federation.get(w) != h for w, h in asked.items()):
            raise PermissionError("the key authority provisions the run's own workers and "
                                  "decryptor only, as it first did")
        keys = self._keys
        calls = [worker.install_keys.remote(HospitalKeys(
                     keys.secret_context, keys.fingerprint,
                     {i: hospital_key(self._master, i) for i in hospitals}, self._decryptor))
                 for worker, hospitals in workers]
        if first and decryptor is not None:
            calls.append(decryptor.install_keys.remote(
                DecryptorKeys(keys.secret_context, keys.fingerprint, self._master)))
        ray.get(calls)


class Decryptor:
    """Kept warm between runs: :meth:`start_run` forgets the last run's keys and state;
    the run's keys are then installed once, by the key authority."""

    def __init__(self) -> None:
        self._verified: VerifiedDecryption | None = None

    def start_run(self, encryption: Any, num_hospitals: int, min_shares: int) -> None:
        self._encryption, self._num_hospitals = encryption, num_hospitals
        self._min_shares = min_shares
        self._verified = None

    def install_keys(self, keys: DecryptorKeys) -> None:
        if self._verified is not None:  # keys are installed once: nobody swaps them later
            raise PermissionError("the decryptor's keys are installed already")
        codec = make_codec((keys.secret_context, keys.fingerprint), self._encryption,
                           self._num_hospitals)
        self._verified = VerifiedDecryption(
            codec=codec, master_key=keys.registration_master, min_shares=self._min_shares,
            rounding_bits=self._encryption.decrypt_rounding_bits)

    def register(self, registrations: list[Registration]) -> list[int]:
        return self._ready().register(registrations)

    def decrypt(self, round_: int, contributors: list[int], batches: list[ray.ObjectRef],
                claimed: Any) -> np.ndarray:
        """``batches``: references of the hospital workers' update lists the aggregator
        read (the ciphertexts are read from the object store, not sent again);
        ``contributors``: whose updates in them the aggregator summed into ``claimed``."""
        verified = self._ready()
        try:
            wanted = {h for h in contributors if type(h) is int}
            updates: Any = [u for batch in ray.get(list(batches)) for u in batch
                            if getattr(u, "hospital", None) in wanted]
        except Exception:
            updates = None
        return verified.decrypt(round_, updates, claimed)

    def _ready(self) -> VerifiedDecryption:
        if self._verified is None:
            raise PermissionError("the key authority has not provisioned the decryptor")
        return self._verified
