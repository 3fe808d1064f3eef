"""Ray's shared-memory object store is mapped by every worker process of a node, the
aggregator's included. With the default preset (n8192) a secret context is far above
Ray's inline-argument limit, so a key passed as a plain argument would sit there while
its call runs, and any process of the node could copy it and decrypt a hospital's update
offline. Keys travel sealed (fedray/crypto/sealing.py). A watcher process (standing for
the aggregator: it maps the same store) scans every shared mapping it has, over and over,
while the run's keys are delivered and a round is trained, keeps every SEAL object that
loads as a secret key, and tries each on a hospital's real ciphertext: none decrypts it.
The positive control puts one unsealed secret context into the store, as the delivery
did before sealing, and the same watcher finds it."""

from __future__ import annotations

import contextlib
import hashlib
import os
import tempfile
import threading
import time

import numpy as np
import pytest
import ray

from fedray import ModelConfig
from fedray.config import EncryptionConfig
from fedray.crypto import CKKSCodec
from fedray.crypto.ckks import PRESETS, new_key_set
from fedray.orchestrator import prepare
from fedray.pipeline import RoundBroadcast
from fedray.runtime.workers import Hosting, assign_hospitals, make_actors
from tests.conftest import synthetic_config

pytestmark = pytest.mark.integration

MAGIC = b"\x5e\xa1\x10\x04"  # a SEAL 4 object's header


def _shared_segments():
    """The bytes of every shared mapping of this process that hold data (the object
    store's untouched gigabytes are holes of a tmpfs file, skipped)."""
    with open("/proc/self/maps") as maps:
        lines = maps.read().splitlines()
    for line in lines:
        fields = line.split()
        if not fields[1].startswith("r") or fields[1][3] != "s":  # shared, readable
            continue
        start, end = (int(x, 16) for x in fields[0].split("-"))
        try:
            fd = os.open(f"/proc/self/map_files/{fields[0]}", os.O_RDONLY)
        except OSError:
            continue
        try:
            offset = int(fields[2], 16)
            position, stop = offset, offset + (end - start)
            while position < stop:
                try:
                    data = os.lseek(fd, position, os.SEEK_DATA)
                except OSError:  # no data after position
                    break
                if data >= stop:
                    break
                hole = min(os.lseek(fd, data, os.SEEK_HOLE), stop)
                yield os.pread(fd, hole - data, data)
                position = hole
        finally:
            os.close(fd)


@ray.remote(num_cpus=0, max_concurrency=3)
class Watcher:
    """Any process of the node: it keeps every SEAL object in shared memory that loads
    as a secret key of these parameters, for as long as it watches."""

    def __init__(self, coeff_mod_bit_sizes: list[int], poly_modulus_degree: int) -> None:
        import tenseal.sealapi as seal

        self.seal = seal
        parms = seal.EncryptionParameters(seal.SCHEME_TYPE.CKKS)
        parms.set_poly_modulus_degree(poly_modulus_degree)
        parms.set_coeff_modulus(seal.CoeffModulus.Create(poly_modulus_degree,
                                                         coeff_mod_bit_sizes))
        self.context = seal.SEALContext(parms, True, seal.SEC_LEVEL_TYPE.TC128)
        self.folder = tempfile.mkdtemp()
        self.keys: dict[bytes, object] = {}
        self.seen: set[bytes] = set()
        self.passes = 0
        self.stopping = threading.Event()

    def _load(self, cls, blob: bytes):
        path = os.path.join(self.folder, f"blob-{threading.get_ident()}")
        with open(path, "wb") as f:
            f.write(blob)
        obj = cls()
        obj.load(self.context, path)
        return obj

    def scan_once(self) -> None:
        for chunk in _shared_segments():
            at = chunk.find(MAGIC)
            while at >= 0:
                size = int.from_bytes(chunk[at + 8:at + 16], "little")
                if 1024 < size < (8 << 20) and at + size <= len(chunk):
                    blob = chunk[at:at + size]
                    digest = hashlib.sha256(blob).digest()
                    if digest not in self.seen:
                        self.seen.add(digest)
                        with contextlib.suppress(Exception):  # not a secret key
                            self.keys[digest] = self._load(self.seal.SecretKey, blob)
                at = chunk.find(MAGIC, at + 1)
        self.passes += 1

    def watch(self) -> int:
        """Scans until told to stop, and at least twice (a threaded actor's calls have no
        order: ``stop`` may run first)."""
        while not (self.stopping.is_set() and self.passes >= 2):
            self.scan_once()
            time.sleep(0.01)
        return self.passes

    def watching(self) -> int:
        """Returns once the watch has made its first pass (the scan is running)."""
        while self.passes < 1:
            time.sleep(0.01)
        return self.passes

    def stop(self) -> None:
        self.stopping.set()

    def decrypting(self, target: bytes) -> int:
        """How many of the keys it kept decrypt ``target`` (a TenSEAL ciphertext) to
        sane values."""
        cipher = self._load(self.seal.Ciphertext, target[target.index(MAGIC):])
        encoder, found = self.seal.CKKSEncoder(self.context), 0
        for key in self.keys.values():
            plain = self.seal.Plaintext()
            self.seal.Decryptor(self.context, key).decrypt(cipher, plain)
            found += bool(np.all(np.abs(np.asarray(encoder.decode_double(plain))) < 1e3))
        return found


def _watcher(params):
    """A watcher already scanning, and its watch's reference."""
    watcher = Watcher.remote(list(params.coeff_mod_bit_sizes), params.poly_modulus_degree)
    watching = watcher.watch.remote()
    ray.get(watcher.watching.remote(), timeout=120)
    return watcher, watching


def test_no_process_of_the_node_finds_a_secret_key_in_shared_memory(ray_local):
    params = PRESETS["n8192"]
    watcher, watching = _watcher(params)  # from before the keys exist until the round is in
    config = synthetic_config(num_records=400, model=ModelConfig(name="logreg"),
                              num_clients=4, min_clients=3, num_rounds=1,
                              encryption=EncryptionConfig(name="ckks"))
    assert config.encryption.preset == "n8192"
    prepared = prepare(config)
    assignment = assign_hospitals(prepared.federation.train_sizes, 2)
    actors = make_actors(prepared.config, prepared.federation, Hosting(assignment),
                         prepared.privacy)
    broadcast = ray.put(RoundBroadcast(prepared.initial, {}))
    batches = [w.train.options(num_returns=3).remote(
                   broadcast, dict.fromkeys(idx, 0.25), frozenset(), 1)[0]
               for w, idx in zip(actors.workers, assignment)]
    target = next(u for batch in batches for u in ray.get(batch) if u.hospital == 0)
    assert ray.get(watcher.decrypting.remote(target.payload.ciphertexts[0])) == 0
    # positive control, same watcher: a secret context passed as a call's argument,
    # unsealed, as the delivery did before sealing
    leaked = new_key_set(params)
    known = CKKSCodec(leaked.secret_context, leaked.fingerprint).encode([0.5] * 8)

    @ray.remote(num_cpus=0)
    def install(context: bytes) -> int:  # a key-delivery call, unsealed
        time.sleep(0.5)
        return len(context)

    ray.get(install.remote(leaked.secret_context))
    ray.get(watcher.stop.remote())
    assert ray.get(watching) >= 2  # it scanned all along
    assert ray.get(watcher.decrypting.remote(known.ciphertexts[0])) >= 1
