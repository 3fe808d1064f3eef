"""Threshold CKKS with real SEAL objects (n4096 test preset, 3 holders, 3 hospitals): the
joint key decrypts only with every holder's partial decryption, and the noise is what the
parameters say it is."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from fedray.crypto import threshold as th

PARAMS = th.PRESETS["n4096"]
SEED = bytes(range(32))
SIZE = 5000  # three parts of 2048 slots


@pytest.fixture(scope="module")
def federation():
    """Keys made the protocol's way; ciphertexts of three hospitals and their sum."""
    keys = [th.holder_keygen(PARAMS, common_seed=SEED, holder_index=i)
            for i in range(PARAMS.key_holders)]
    shares = [share for share, _ in keys]
    joint = th.joint_public_key(PARAMS, [public for _, public in keys], common_seed=SEED)
    rng = np.random.default_rng(0)
    vectors = [rng.normal(0, 1, SIZE) for _ in range(3)]
    total = th.add(PARAMS, [th.encrypt(PARAMS, joint, v) for v in vectors])
    return shares, joint, np.sum(vectors, axis=0), total, vectors


def _partials(shares, total, **kwargs):
    return [th.partial_decrypt(PARAMS, share, total, np.random.default_rng(), **kwargs)
            for share in shares]


def _arrays(partials):
    seal = th._seal(PARAMS)
    return [th._unpack(p, th._PARTIAL, (seal.data_q.size, seal.n))[2] for p in partials]


def _key_rows(share):
    seal = th._seal(PARAMS)
    key = seal.load(seal.seal.SecretKey, share.secret_key)
    return seal.read(key.data(), 0, seal.key_q.size * seal.n).reshape(seal.key_q.size, seal.n)


def _seal_decrypt(key_rows, part):
    """SEAL's own Decryptor and decoder with a key given by its NTT rows (key level)."""
    seal = th._seal(PARAMS)
    key = seal.load(seal.seal.SecretKey, seal.plaintext_bytes(seal.key_id, key_rows, scale=1.0))
    plain = seal.seal.Plaintext()
    seal.seal.Decryptor(seal.context, key).decrypt(seal.load(seal.seal.Ciphertext, part), plain)
    return np.asarray(seal.encoder.decode_double(plain))


def _coefficients(m):
    """A data-level NTT polynomial in the coefficient domain, centred, as Python ints (CRT)."""
    seal = th._seal(PARAMS)
    rows = np.zeros((2, *m.shape), dtype=np.uint64)
    rows[:] = m  # both: SEAL refuses a "transparent" (c_1 = 0) ciphertext
    cipher = seal.load(seal.seal.Ciphertext, seal.ciphertext_bytes(seal.data_id, rows))
    seal.evaluator.transform_from_ntt_inplace(cipher)
    residues = seal.read(cipher, 0, m.size).reshape(m.shape).astype(object)
    moduli = [int(q) for q in seal.data_q]
    big_q = int(np.prod(np.array(moduli, dtype=object)))
    value = sum(residues[j] * (big_q // q) * pow(big_q // q, -1, q) for j, q in enumerate(moduli))
    value = value % big_q
    return np.where(value > big_q // 2, value - big_q, value)


def _encoded_sum(vectors):
    """Σ_h encode(x_h) (NTT): the sum the ciphertexts hold before any encryption noise.
    At Δ = 2^80 the encoder's double-precision rounding (~2^-53 of each coefficient,
    here ~2^22) differs between encode(Σ x_h) and Σ encode(x_h); it depends on the inputs
    only, not on the key, so it is not part of the ciphertext noise e_ct."""
    seal = th._seal(PARAMS)
    total = np.zeros((seal.data_q.size, seal.n), dtype=np.uint64)
    for values in vectors:
        plain = seal.seal.Plaintext()
        seal.encoder.encode(values[:PARAMS.slots].tolist(), seal.scale, plain)
        encoded = seal.read(plain, 0, total.size).reshape(total.shape)
        total = (total + encoded) % seal.data_q[:, None]
    return total


def test_presets_are_valid_and_precise():
    for params in th.PRESETS.values():
        assert th.check_threshold_parameters(params) is None
        assert params.error_std <= 2.0 ** -20 and params.value_bound >= 8
    assert th.PRESETS["n8192"].error_std < 1e-10


@pytest.mark.parametrize("changes, problem", [
    (dict(key_holders=1), "key_holders=1"),
    (dict(coeff_mod_bit_sizes=(60, 60)), "exceed the 109 bits"),
    (dict(smudging_bits=60), "decryption error std"),
    (dict(scale_bits=86), "leave |sum| <"),
])
def test_insecure_or_imprecise_parameters_are_refused(changes, problem):
    with pytest.raises(ValueError, match=problem.replace("|", r"\|")):
        dataclasses.replace(PARAMS, **changes)


def test_sum_of_three_hospitals_decrypts_to_the_plain_sum(federation):
    shares, _, expected, total, _ = federation
    decrypted = th.combine(PARAMS, total, _partials(shares, total), size=SIZE)
    error = np.abs(decrypted - expected)
    print(f"\nthreshold n4096: max abs error {error.max():.2e}, max relative "
          f"{error.max() / np.abs(expected).max():.2e} (predicted std {PARAMS.error_std:.1e})")
    assert error.max() <= 1e-5 * np.abs(expected).max()


def test_k_minus_one_partials_do_not_decrypt(federation):
    shares, _, expected, total, _ = federation
    partials = _partials(shares, total)
    with pytest.raises(ValueError, match="all 3 are needed"):
        th.combine(PARAMS, total, partials[:-1])
    arrays = _arrays(partials)
    for missing in range(PARAMS.key_holders):
        some = [a for i, a in enumerate(arrays) if i != missing]
        garbage = th._combine_partials(PARAMS, total, some)[:SIZE] - expected
        assert np.median(np.abs(garbage)) > 100 * np.abs(expected).max()
        assert abs(np.corrcoef(garbage + expected, expected)[0, 1]) < 0.1
    control = th._combine_partials(PARAMS, total, arrays)[:SIZE] - expected  # all k
    assert np.abs(control).max() <= 1e-5 * np.abs(expected).max()


def test_one_share_alone_decrypts_garbage_with_seals_decryptor(federation):
    shares, _, expected, total, _ = federation
    for share in shares:
        garbage = _seal_decrypt(_key_rows(share), total[0]) - expected[:PARAMS.slots]
        assert np.median(np.abs(garbage)) > 100 * np.abs(expected).max()


def test_shares_differ_and_none_is_the_joint_key(federation):
    shares, _, expected, total, _ = federation
    q = th._seal(PARAMS).key_q[:, None]
    rows = [_key_rows(share) for share in shares]
    joint = np.zeros_like(rows[0])
    for r in rows:
        joint = (joint + r) % q  # formed here, for checking only: no party does this
    for i, r in enumerate(rows):
        assert not np.array_equal(r, joint)
        assert all(not np.array_equal(r, other) for other in rows[i + 1:])
    # positive control: the joint public key is a key for Σ s_i
    decrypted = _seal_decrypt(joint, total[0])
    assert np.abs(decrypted - expected[:PARAMS.slots]).max() < 1e-5


def test_ciphertext_noise_and_smudging_are_as_sized(federation):
    shares, _, _, total, vectors = federation
    exact = _coefficients(_encoded_sum(vectors))
    (bare, _), = th._decrypted_polynomials(PARAMS, total[:1], _arrays(_partials(
        shares, total[:1], smudging_std=0.0)))
    (flooded, _), = th._decrypted_polynomials(PARAMS, total[:1], _arrays(_partials(
        shares, total[:1])))
    noise = (_coefficients(bare) - exact).astype(float)
    predicted = PARAMS.ciphertext_noise_std * np.sqrt(3 / PARAMS.max_summands)
    print(f"\nciphertext noise std {noise.std():.1f} (model {predicted:.1f}), "
          f"||e||_2 {np.linalg.norm(noise):.0f} <= bound {PARAMS.ciphertext_noise_bound:.0f}")
    assert 0.8 < noise.std() / predicted < 1.25
    assert np.linalg.norm(noise) < PARAMS.ciphertext_noise_bound
    flood = (_coefficients(flooded) - exact).astype(float)
    assert 0.95 < flood.std() / (np.sqrt(PARAMS.key_holders) * PARAMS.smudging_std) < 1.05
    assert abs(flood.mean()) < 0.1 * flood.std()


def test_combine_checks_its_partials(federation):
    shares, joint, _, total, _ = federation
    partials = _partials(shares, total)
    with pytest.raises(ValueError, match="each once"):
        th.combine(PARAMS, total, [partials[0], partials[0], partials[1]])
    other = th.encrypt(PARAMS, joint, np.zeros(SIZE))
    with pytest.raises(ValueError, match="another ciphertext"):
        th.combine(PARAMS, other, partials)
    with pytest.raises(ValueError, match="another common seed"):
        keys = [th.holder_keygen(PARAMS, common_seed=SEED, holder_index=i) for i in range(3)]
        th.joint_public_key(PARAMS, [p for _, p in keys], common_seed=bytes(32))
    assert "secret_key=<" in repr(shares[0])
