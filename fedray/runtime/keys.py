"""The key authority and the decryptor: the two Ray roles that make or use the secret.

The key authority makes a run's CKKS key set and registration secret and hands the
secret material to the hospital workers and the decryptor, sealed to each recipient
(fedray/crypto/sealing.py: a box only that recipient opens and only the authority
makes), so nothing secret ever sits readable in Ray's object store, which every
process of the node maps. No call of the authority returns secret material: the
driver and the aggregator get the key-free context only.

Who may ask what (docs/encryption.md, "Threat model"):
- ``start_run`` and ``provision`` of the authority, and ``close_round`` of the
  decryptor, need the run controller's token, which the driver's worker pool makes when
  it starts the two roles (they keep only its digest). The aggregator never sees it.
- The decryptor's run settings (run number, the least contributions a released sum
  needs) and keys arrive only in a box from the authority (``install_run``); a box of
  an earlier run is refused.
- So the aggregator's handle to the decryptor can submit a round (``decrypt``) and
  nothing else that matters: the sum it asks for must cover exactly the hospitals the
  driver saw arrive (``close_round``), every one of them registered by its hospital.

Both roles are kept warm between runs (fedray/runtime/pool.py); each run gets fresh keys.
"""

from __future__ import annotations

import dataclasses
import hashlib
import hmac
import pickle
import secrets
from dataclasses import dataclass
from typing import Any

import ray

from fedray.checkpoint import loads_plain
from fedray.config import EncryptionConfig
from fedray.crypto import make_codec
from fedray.crypto.ckks import KeySet, new_key_set
from fedray.crypto.release import (
    REGISTRATION_KEY_BYTES,
    Registration,
    VerifiedDecryption,
    hospital_key,
)
from fedray.crypto.sealing import SealingKey
from fedray.crypto.threshold import holder_keygen, joint_public_key
from fedray.crypto.threshold_codec import ThresholdCodec

TOKEN_BYTES = 32
DECRYPTOR_PURPOSE = "fedray decryptor run"


def hospital_purpose(run: int) -> str:
    """What a box of hospital keys is for: this run's hospital workers only."""
    return f"fedray hospital keys|run {run}"


def token_digest(token: bytes) -> bytes:
    return hashlib.sha256(b"fedray-controller|" + token).digest()


def _check(token: Any, digest: bytes, what: str) -> None:
    if type(token) is not bytes or not hmac.compare_digest(token_digest(token), digest):
        raise PermissionError(f"{what} takes orders from the run's controller only")


@dataclass(frozen=True)
class RunKeys:
    """What the driver learns of a run's keys: nothing secret."""

    run: int
    public_context: bytes
    fingerprint: str
    authority: bytes  # the authority's public sealing key: boxes from it are genuine


@dataclass(frozen=True)
class HospitalKeys:
    """What a hospital worker opens from the authority's box: the secret context (to
    encrypt), each hosted hospital's registration key, and where to register."""

    secret_context: bytes  # the secret context, or (threshold) the joint public key
    fingerprint: str
    registration_keys: dict[int, bytes]
    decryptors: list[Any]  # actor handles, every key holder (not in the box: no secret)


class KeyAuthority:
    """Kept warm between runs like the workers (fedray/runtime/pool.py): each run starts
    with :meth:`start_run`, which makes fresh keys and forgets the last run's."""

    def __init__(self, controller: bytes) -> None:
        """``controller``: the digest of the token the driver's pool holds."""
        self._controller = controller
        self._sealing = SealingKey()
        self._run = 0

    def public_key(self) -> bytes:
        """Its public sealing key: recipients accept boxes made with its private half."""
        return self._sealing.public

    def start_run(self, token: bytes, params: Any, *, encryption: dict[str, Any],
                  num_hospitals: int, min_shares: int, decryptors: list[Any]) -> RunKeys:
        """A fresh key set and registration secret for a run, installed, sealed, in the
        run's decryptors with their settings (``min_shares``: the fewest contributions a
        released sum may have); returns the key-free context (what the aggregator gets).
        With one decryptor it gets the whole secret context (``params``: CKKS
        parameters); with k (``params``: threshold parameters) each key holder makes its
        own share, and the authority, which never sees a share, joins their public
        shares into the joint public key the hospitals encrypt with."""
        _check(token, self._controller, "the key authority")
        self._run += 1
        self._master = secrets.token_bytes(REGISTRATION_KEY_BYTES)
        settings = {"encryption": encryption, "num_hospitals": num_hospitals,
                    "min_shares": min_shares}
        recipients = ray.get([d.sealing_key.remote() for d in decryptors])
        if len(decryptors) == 1:
            keys = new_key_set(params)
            self._worker_context, public = keys.secret_context, keys.public_context
            self._fingerprint = keys.fingerprint
            ray.get(decryptors[0].install_run.remote(seal_decryptor_run(
                self._sealing, recipients[0], run=self._run, keys=keys, master=self._master,
                settings=settings)))
        else:
            seed = secrets.token_bytes(32)
            self._fingerprint = hashlib.sha256(b"fedray-threshold|" + seed).hexdigest()[:32]
            shares = ray.get([d.install_run.remote(seal_holder_run(
                self._sealing, recipient, run=self._run, holder=i, common_seed=seed,
                fingerprint=self._fingerprint, master=self._master, settings=settings))
                for i, (d, recipient) in enumerate(zip(decryptors, recipients))])
            self._worker_context = joint_public_key(params, shares, common_seed=seed)
            public = b""  # the aggregator adds ciphertexts with no key at all
        # worker (actor id) -> the hospitals it hosts: fixed by the run's first provision
        self._federation: dict[str, tuple[int, ...]] | None = None
        self._decryptors = list(decryptors)
        return RunKeys(self._run, public, self._fingerprint, self._sealing.public)

    def provision(self, token: bytes, workers: list[tuple[Any, list[int]]]) -> None:
        """Installs the keys, sealed, in each (hospital worker, hospitals it hosts), and
        waits until they are in. Returns nothing: the secret travels from this actor to
        those, never to the caller. The first call fixes the run's workers; later calls
        may only provision one of those workers again with the same hospitals (after Ray
        restarted it)."""
        _check(token, self._controller, "the key authority")
        asked = {worker._actor_id.hex(): tuple(hospitals) for worker, hospitals in workers}
        federation = self._federation
        if federation is None:
            self._federation = asked
        elif any(federation.get(w) != h for w, h in asked.items()):
            raise PermissionError("the key authority provisions the run's own workers only, "
                                  "as it first did")
        recipients = ray.get([worker.sealing_key.remote() for worker, _ in workers])
        ray.get([worker.install_keys.remote(
                     seal_hospital_keys(self._sealing, recipient, run=self._run,
                                        context=self._worker_context,
                                        fingerprint=self._fingerprint, master=self._master,
                                        hospitals=hospitals),
                     self._decryptors)
                 for (worker, hospitals), recipient in zip(workers, recipients)])


def seal_hospital_keys(sealing: SealingKey, recipient: bytes, *, run: int, context: bytes,
                       fingerprint: str, master: bytes, hospitals: list[int]) -> bytes:
    """A hospital worker's keys for ``run``, sealed by the authority to ``recipient``:
    the context it encrypts with (the secret context, or the joint public key) and each
    hosted hospital's registration key."""
    secret = pickle.dumps({"run": run, "secret_context": context, "fingerprint": fingerprint,
                           "registration_keys": {i: hospital_key(master, i) for i in hospitals}})
    return sealing.seal(recipient, secret, purpose=hospital_purpose(run))


def seal_holder_run(sealing: SealingKey, recipient: bytes, *, run: int, holder: int,
                    common_seed: bytes, fingerprint: str, master: bytes,
                    settings: dict[str, Any]) -> bytes:
    """A key holder's set-up for ``run`` (threshold CKKS): which holder it is, the
    common seed of the joint key, the registration secret and the run's settings. No
    share: the holder makes its own."""
    secret = pickle.dumps({"run": run, "holder": holder, "common_seed": common_seed,
                           "fingerprint": fingerprint, "registration_master": master,
                           **settings})
    return sealing.seal(recipient, secret, purpose=DECRYPTOR_PURPOSE)


def seal_decryptor_run(sealing: SealingKey, recipient: bytes, *, run: int, keys: KeySet,
                       master: bytes, settings: dict[str, Any]) -> bytes:
    """The decryptor's keys and settings for ``run``, sealed by the authority."""
    secret = pickle.dumps({"run": run, "secret_context": keys.secret_context,
                           "fingerprint": keys.fingerprint, "registration_master": master,
                           **settings})
    return sealing.seal(recipient, secret, purpose=DECRYPTOR_PURPOSE)


def open_hospital_keys(sealing: SealingKey, authority: bytes, box: bytes, *, run: int,
                       hospitals: set[int], decryptors: list[Any]) -> HospitalKeys:
    """A hospital worker's side of :meth:`KeyAuthority.provision`: the box must come
    from the run's authority, for this run, with keys for exactly these hospitals."""
    opened = loads_plain(sealing.open(authority, box, purpose=hospital_purpose(run)))
    if opened["run"] != run or set(opened["registration_keys"]) != hospitals:
        raise PermissionError("keys for another run or other hospitals")
    return HospitalKeys(opened["secret_context"], opened["fingerprint"],
                        opened["registration_keys"], list(decryptors or []))


class Decryptor:
    """Kept warm between runs; each run's keys and settings arrive once, sealed by the
    key authority (:meth:`install_run`), and replace the last run's."""

    def __init__(self, controller: bytes, authority: bytes) -> None:
        """``controller``: the digest of the driver's token; ``authority``: the key
        authority's public sealing key (both from the pool that starts the roles)."""
        self._controller, self._authority = controller, authority
        self._sealing = SealingKey()
        self._run = 0
        self._verified: VerifiedDecryption | None = None

    def sealing_key(self) -> bytes:
        return self._sealing.public

    def install_run(self, box: bytes) -> bytes | None:
        """A run's keys and settings from the authority's box; an older run's box (a
        replay) is refused. A key holder (threshold CKKS) makes its own share here and
        returns its public share; the share never leaves this process."""
        opened = loads_plain(self._sealing.open(self._authority, box,
                                                purpose=DECRYPTOR_PURPOSE))
        if opened["run"] <= self._run:
            raise PermissionError(f"the keys of run {opened['run']} came after run {self._run}")
        encryption = EncryptionConfig(**opened["encryption"])
        public_share = None
        codec: Any
        if "common_seed" in opened:
            params = encryption.threshold_parameters
            share, public_share = holder_keygen(params, common_seed=opened["common_seed"],
                                                holder_index=opened["holder"])
            codec = ThresholdCodec(params, opened["fingerprint"], share=share)
        else:
            codec = make_codec((opened["secret_context"], opened["fingerprint"]), encryption,
                               opened["num_hospitals"])
        self._verified = VerifiedDecryption(
            codec=codec, master_key=opened["registration_master"],
            min_shares=opened["min_shares"], rounding_bits=encryption.decrypt_rounding_bits)
        self._run = opened["run"]
        return public_share

    def register(self, registrations: list[Registration]) -> list[int]:
        return self._ready().register(registrations)

    def close_round(self, token: bytes, round_: int, batches: list[ray.ObjectRef]) -> None:
        """The driver's word on the round: the update batches that arrived in time (their
        references; read here, from the object store). The sum the aggregator may have
        decrypted is the sum of exactly these, less what fails their registration."""
        _check(token, self._controller, "closing a round")
        verified = self._ready()
        verified.close_round(round_, [u for batch in ray.get(list(batches)) for u in batch])

    def decrypt(self, round_: int, contributors: list[int], claimed: Any) -> Any:
        """``contributors``: the hospitals the aggregator summed into ``claimed``. The
        rounded sum, or (a key holder) its partial decryption of it."""
        return self._ready().decrypt(round_, contributors, claimed)

    def wrapped(self, token: bytes) -> dict[int, int]:
        """Distributed DP's wrap-around counts per decrypted round, for the driver only
        (its token): a diagnostic of the field's size, never sent to the aggregator."""
        _check(token, self._controller, "reading the wrap-around counts")
        return dict(self._verified.wrapped) if self._verified is not None else {}

    def _ready(self) -> VerifiedDecryption:
        if self._verified is None:
            raise PermissionError("the key authority has not provisioned the decryptor")
        return self._verified


def encryption_settings(encryption: EncryptionConfig) -> dict[str, Any]:
    """The encryption config as plain data (it travels in the decryptor's box)."""
    return dataclasses.asdict(encryption)


def new_controller_token() -> bytes:
    return secrets.token_bytes(TOKEN_BYTES)
