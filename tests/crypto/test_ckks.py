"""Real TenSEAL ciphertexts, small vectors: what the aggregator can and cannot do."""

import numpy as np
import pytest

from fedray.crypto import CKKSCodec, EncryptedVector, PlainCodec
from fedray.crypto.ckks import PRESETS, CKKSParameters, check_parameters, new_key_set, round_to_grid
from fedray.crypto.release import VerifiedDecryption, hospital_key, register_update
from fedray.pipeline import RoundBroadcast, Update, UploadLayout, aggregate
from fedray.strategies import FedAvg


def _key_set(preset="n4096"):
    keys = new_key_set(PRESETS[preset])
    return (CKKSCodec(keys.secret_context, keys.fingerprint),
            CKKSCodec(keys.public_context, keys.fingerprint))


@pytest.fixture(scope="module")
def keys():
    return _key_set()


def test_presets_are_128_bit_secure_and_precise():
    for params in PRESETS.values():
        assert check_parameters(params) is None


@pytest.mark.parametrize(
    "params, problem",
    [
        (CKKSParameters(4096, (60, 60), 40), "exceed the 109 bits"),
        (CKKSParameters(8192, (40, 21), 21), "too coarse"),
        (CKKSParameters(8192, (60,), 40), "at least two"),
        (CKKSParameters(3000, (60, 40), 40), "must be one of"),
    ],
)
def test_unsafe_or_imprecise_parameters_are_refused(params, problem):
    assert problem in check_parameters(params)


def test_sum_of_encrypted_updates_decrypts_to_the_plain_sum(keys):
    hospital, aggregator = keys
    rng = np.random.default_rng(0)
    vectors = [rng.normal(0, 0.1, 5000).astype(np.float32) for _ in range(10)]  # 3 parts
    total = None
    for v in vectors:
        payload = hospital.encode(v)
        assert aggregator.validate(payload, 5000) is None
        total = aggregator.add(total, payload)
    decrypted = hospital.decode(aggregator.seal(total))
    assert np.max(np.abs(decrypted - np.sum(vectors, axis=0))) < 1e-6


def test_aggregator_cannot_decrypt(keys):
    hospital, aggregator = keys
    payload = hospital.encode(np.ones(10, np.float32))
    assert not aggregator.can_decrypt and hospital.can_decrypt
    with pytest.raises(PermissionError):
        aggregator.decode(payload)
    # and TenSEAL itself refuses: the public context holds no secret key
    with pytest.raises(ValueError, match="secret"):
        aggregator._load(payload)[0].decrypt()


def test_wrong_length_is_rejected(keys):
    hospital, aggregator = keys
    assert "the model has 12" in aggregator.validate(hospital.encode(np.ones(10)), 12)


def test_foreign_key_ciphertext_is_rejected(keys):
    _, aggregator = keys
    stranger, _ = _key_set()
    reason = aggregator.validate(stranger.encode(np.ones(10, np.float32)), 10)
    assert reason is not None and "key set" in reason


@pytest.mark.parametrize("damage", ["flip", "truncate"])
def test_corrupted_ciphertext_is_rejected(keys, damage):
    hospital, aggregator = keys
    good = hospital.encode(np.ones(10, np.float32))
    raw = bytearray(good.ciphertexts[0])
    if damage == "flip":
        for i in range(100, 200):
            raw[i] ^= 0xFF
    else:
        raw = raw[: len(raw) // 2]
    bad = EncryptedVector(good.key_fingerprint, 10, (bytes(raw),))
    reason = aggregator.validate(bad, 10)
    assert reason is not None and "does not load" in reason


def test_round_proceeds_with_the_valid_updates(keys):
    hospital, aggregator = keys
    good = [hospital.encode(np.full(8, v, np.float32)) for v in (0.25, 0.75)]
    corrupt = EncryptedVector(good[0].key_fingerprint, 8, (good[0].ciphertexts[0][:500],))
    updates = [Update(0, good[0], 1), Update(1, corrupt, 1), Update(2, good[1], 1)]
    master = b"m" * 32
    decryptor = VerifiedDecryption(codec=hospital, master_key=master, min_shares=2,
                                   rounding_bits=20)
    decryptor.register([register_update(u, hospital_key(master, u.hospital), b"m" * 32)
                        for u in (updates[0], updates[2])])  # what 0 and 2 sent
    decryptor.close_round(1, updates)  # all three arrived; the corrupt one is left out
    result = aggregate(updates, broadcast=RoundBroadcast(np.zeros(8, np.float32)),
                       server_state={}, weights={0: 0.5, 1: 0.5, 2: 0.5},
                       layout=UploadLayout(FedAvg(), (8,), 3), codec=aggregator, round_=1,
                       decode=lambda total, summed: decryptor.decrypt(
                           1, list(summed), aggregator.seal(total)))
    assert result.accepted == (0, 2)
    assert [r.hospital for r in result.rejected] == [1]
    assert np.allclose(result.broadcast.global_vector, 1.0)  # (0.25 + 0.75) / (0.5 + 0.5)


def test_ckks_costs_about_32_bytes_per_value_in_full_ciphertexts(keys):
    hospital, aggregator = keys
    payload = hospital.encode(np.zeros(2048 * 3 + 5, np.float32))  # n4096: 2048 slots
    assert len(payload.ciphertexts) == 4  # as few as possible, all slots used but the last
    assert aggregator.validate(payload, 2048 * 3 + 5) is None
    full = hospital.encode(np.zeros(2048, np.float32))
    assert 28 < full.nbytes / 2048 < 36
    assert PlainCodec().nbytes(np.zeros(2048, np.float32)) / 2048 == 4


def test_rounding_removes_the_ckks_error_but_keeps_the_value():
    values = np.array([0.1234567891, -2.5 + 3e-9, 1e-9])
    rounded = round_to_grid(values, 20)
    assert np.all(np.abs(rounded - values) <= 2.0 ** -21)
    assert np.all(np.abs(rounded / 2.0 ** -20 - np.round(rounded / 2.0 ** -20)) == 0)
