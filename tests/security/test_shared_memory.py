"""Ray's shared-memory object store is mapped by every worker process of a node, the
aggregator's included. With the default preset (n8192) a secret context is far above
Ray's inline-argument limit, so a key passed as a plain argument would sit there, and
the aggregator could read it and decrypt one hospital's update offline. Keys travel
sealed (fedray/crypto/sealing.py): code running in the aggregator's process scans every
shared mapping it has and finds no secret key that decrypts a hospital's ciphertext.
The positive control puts one unsealed secret context into the store, as the delivery
did before sealing, and the same scan finds it."""

import pytest
import ray

from fedray import ModelConfig
from fedray.config import EncryptionConfig
from fedray.crypto import CKKSCodec
from fedray.crypto.ckks import PRESETS, new_key_set
from fedray.orchestrator import prepare
from fedray.pipeline import RoundBroadcast
from fedray.runtime.workers import assign_hospitals, make_actors
from tests.conftest import synthetic_config

pytestmark = pytest.mark.integration


def _scan(self, target: bytes, coeff_mod_bit_sizes: list[int], poly_modulus_degree: int
          ) -> dict:
    """Runs inside the aggregator's process (``__ray_call__``): every SEAL object in the
    shared memory it maps that loads as a secret key is tried on ``target`` (one TenSEAL
    ciphertext); returns how many candidates it tried and how many decrypt it sanely."""
    import os
    import tempfile

    import numpy as np
    import tenseal.sealapi as seal

    parms = seal.EncryptionParameters(seal.SCHEME_TYPE.CKKS)
    parms.set_poly_modulus_degree(poly_modulus_degree)
    parms.set_coeff_modulus(seal.CoeffModulus.Create(poly_modulus_degree, coeff_mod_bit_sizes))
    context = seal.SEALContext(parms, True, seal.SEC_LEVEL_TYPE.TC128)
    folder = tempfile.mkdtemp()

    def load(cls, blob):
        path = os.path.join(folder, "blob")
        with open(path, "wb") as f:
            f.write(blob)
        obj = cls()
        obj.load(context, path)
        return obj

    magic = b"\x5e\xa1\x10\x04"  # a SEAL 4 object's header
    cipher = load(seal.Ciphertext, target[target.index(magic):])
    encoder = seal.CKKSEncoder(context)
    tried = found = 0
    def segments(fields):
        """The mapping's bytes that hold data: holes of a tmpfs file (the object store's
        untouched gigabytes) are skipped with SEEK_DATA/SEEK_HOLE."""
        start, end = (int(x, 16) for x in fields[0].split("-"))
        offset = int(fields[2], 16)
        try:
            fd = os.open(f"/proc/self/map_files/{fields[0]}", os.O_RDONLY)
        except OSError:  # no access to the file behind it: read the mapping whole
            with open("/proc/self/mem", "rb", 0) as mem:
                mem.seek(start)
                yield mem.read(end - start)
            return
        try:
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

    with open("/proc/self/maps") as maps:
        lines = maps.read().splitlines()
    for line in lines:
        fields = line.split()
        if not fields[1].startswith("r") or fields[1][3] != "s":  # shared, readable
            continue
        for chunk in segments(fields):
            at = chunk.find(magic)
            while at >= 0:
                size = int.from_bytes(chunk[at + 8:at + 16], "little")
                if 1024 < size < (8 << 20):
                    try:
                        key = load(seal.SecretKey, chunk[at:at + size])
                    except Exception:  # not a secret key
                        key = None
                    if key is not None:
                        tried += 1
                        plain = seal.Plaintext()
                        seal.Decryptor(context, key).decrypt(cipher, plain)
                        values = np.asarray(encoder.decode_double(plain))
                        found += bool(np.all(np.abs(values) < 1e3))
                at = chunk.find(magic, at + 1)
    return {"tried": tried, "found": found}


@pytest.fixture(scope="module")
def default_preset_round(ray_local):
    """One encrypted round with the default preset; hospital 0's ciphertext as the
    aggregator received it."""
    config = synthetic_config(num_records=400, model=ModelConfig(name="logreg"),
                              num_clients=4, min_clients=3, num_rounds=1,
                              encryption=EncryptionConfig(name="ckks"))
    assert config.encryption.preset == "n8192"
    prepared = prepare(config)
    assignment = assign_hospitals(prepared.federation.train_sizes, 2)
    actors = make_actors(prepared.config, prepared.federation, assignment, prepared.privacy)
    broadcast = ray.put(RoundBroadcast(prepared.initial, {}))
    batches = [w.train.options(num_returns=3).remote(
                   broadcast, dict.fromkeys(idx, 0.25), frozenset(), 1)[0]
               for w, idx in zip(actors.workers, assignment)]
    ray.wait(batches, num_returns=len(batches))
    update = next(u for batch in batches for u in ray.get(batch) if u.hospital == 0)
    return actors.aggregator, update.payload.ciphertexts[0]


def test_the_aggregator_finds_no_secret_key_in_shared_memory(default_preset_round):
    aggregator, target = default_preset_round
    params = PRESETS["n8192"]
    seen = ray.get(aggregator.__ray_call__.remote(
        _scan, target, list(params.coeff_mod_bit_sizes), params.poly_modulus_degree))
    assert seen["found"] == 0, seen
    # positive control: a secret context passed unsealed, as before sealing
    leaked = new_key_set(params)
    known = CKKSCodec(leaked.secret_context, leaked.fingerprint).encode([0.5] * 8)
    holder = ray.put(leaked.secret_context)
    seen = ray.get(aggregator.__ray_call__.remote(
        _scan, known.ciphertexts[0], list(params.coeff_mod_bit_sizes),
        params.poly_modulus_degree))
    assert seen["found"] >= 1, seen
    del holder
