"""Threshold CKKS: k key holders, each with an additive share of a secret key nobody holds.

Protocol (k-out-of-k; Mouchet, Troncoso-Pastoriza, Bossuat and Hubaux, "Multiparty
Homomorphic Encryption from Ring-Learning-with-Errors", PETS 2021(4), the RLWE form of
Asharov et al., EUROCRYPT 2012). All polynomials live mod each RNS prime q_j, in SEAL's
NTT form.

1. Setup. The parties agree on a public seed; ``common_polynomial`` expands it (SHAKE-256)
   into a uniform polynomial a. Holder i draws its ternary share s_i with SEAL's own
   KeyGenerator and publishes b_i = -a·s_i - e_i (e_i SEAL's key noise, σ = 3.2). The joint
   public key is (Σ b_i, a): an ordinary SEAL public key for s = Σ s_i, which no process
   ever forms.
2. Hospitals encrypt with SEAL's Encryptor under the joint key; they hold no secret.
3. The aggregator adds ciphertexts (c_0, c_1) with a key-free context.
4. Each holder returns the partial decryption d_i = c_1·s_i + E_i, E_i a fresh smudging
   noise; ``combine`` computes c_0 + Σ d_i = Δ·m + e_ct + Σ E_i and decodes it.

Smudging noise. E_i is a rounded Gaussian with σ_E = 2^λ_s · B, B a high-probability
bound on ||e_ct||_2, the ciphertext noise of a sum of up to ``max_summands`` fresh
ciphertexts (noise model in ``ThresholdParameters``). The total variation between
N(0, σ_E²·I) and its shift by e_ct is below ||e_ct||_2 / (σ_E·√(2π)) < 2^-λ_s, so one
honest holder's E_i alone hides e_ct: the superpolynomial "smudging" of Asharov et al.
(smudging lemma: statistical distance B/B') that Mouchet et al. instantiate with a
Gaussian in their collective key-switching. Default λ_s = 40. Li, Micciancio, Schultz and
Sorrell (CRYPTO 2022) prove that Gaussian flooding of 2^(s/2)·√t·E, up to a small
constant (8 in their analysis), suffices for s bits of IND-CPA-D security over t
decryptions: 2^40·E covers s = 40 for t up to 2^34 decryptions.
It costs precision, not correctness: the decrypted values carry a Gaussian error of
``error_std``, which the presets keep below 2^-20 by a wide modulus (n8192: three 60-bit
data primes, Δ = 2^100). fedray's single-key preset (one 60-bit prime, Δ = 2^40) leaves
no room for it: σ_E ≈ 2^57 would swamp Δ.

CKKS and IND-CPA-D (Li and Micciancio, EUROCRYPT 2021): a raw CKKS decryption Δ·m + e_ct
reveals e_ct, which is linear in the secret key; a few decryptions recover the key. Here
only c_0 + Σ d_i is ever seen, with e_ct flooded by Σ E_i (statistical distance < 2^-λ_s
per decryption, adding up over decryptions), so released sums carry no usable information
about e_ct or s. Not flooded to 2^-λ_s: the encoder's double-precision rounding of Δ·x
(~2^-53 of each coefficient, ~2^42 at Δ = 2^100 and |x| ≈ 1, against σ_E ≈ 2^57). It
depends on the hospitals' inputs only, not on the key, and carries sub-ulp information
about them.

Defended (semi-honest parties): hospitals and aggregator hold no key; any k-1 holders
together (with the aggregator) learn nothing from their shares, the public shares and
the partial decryptions of honestly formed sums beyond the sums themselves, since the
missing s_j stays an RLWE secret. Not defended: all k holders colluding can form s and
decrypt every hospital's upload; a holder who partially decrypts a chosen c_1 (e.g. a
large constant) leaks s_i within a few queries, so holders must decrypt only sums they can
check (recompute from the hospitals' ciphertexts); a holder publishing b_i after seeing
the others' (rogue key) can own the joint key, so public shares need commit-then-reveal;
a wrong partial decryption corrupts the sum undetected; one absent holder blocks every
decryption (no t-out-of-k here).

Raw access: tenseal.sealapi binds SEAL's save/load to file paths only, compressed (zstd)
by default. Coefficients are read with ``dyn_array()[i]`` (about 0.25 µs each) and
written by building SEAL's uncompressed serialisation (compr_mode none), which SEAL loads
and validates. Products and NTTs run in SEAL (Evaluator.multiply_plain,
transform_to_ntt_inplace); numpy adds mod q; the one key-level product SEAL refuses
(a·s_i at the special prime) uses Python integers.
"""

from __future__ import annotations

import hashlib
import math
import os
import shutil
import struct
import tempfile
import threading
import weakref
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from itertools import count
from typing import Any

import numpy as np

from fedray.crypto.ckks import MAX_MODULUS_BITS_128

KEY_NOISE_STD = 3.2  # SEAL's standard deviation for key and encryption noise
TAIL = 8.0  # high-probability bounds: ||x||_2 <= σ(√N + 8) fails with prob. <= e^-32
MIN_PRECISION_BITS = 20  # decrypted values' error std at most 2^-20
MIN_VALUE_BITS = 3  # sums up to 2^3 in absolute value must fit


@dataclass(frozen=True)
class ThresholdParameters:
    """CKKS ring and modulus, scale, key holders and smudging, validated on creation.

    The last modulus is SEAL's special prime: public-key encryption runs at the key level
    and divides by it, so a fresh ciphertext's noise is dominated by the rounding term
    τ_1·s (variance N·k/18 per coefficient, s having k ternary summands)."""

    poly_modulus_degree: int
    coeff_mod_bit_sizes: tuple[int, ...]
    scale_bits: int
    key_holders: int = 3
    smudging_bits: int = 40
    max_summands: int = 1024

    def __post_init__(self) -> None:
        problem = check_threshold_parameters(self)
        if problem is not None:
            raise ValueError(problem)

    @property
    def slots(self) -> int:
        return self.poly_modulus_degree // 2

    @property
    def data_bits(self) -> int:
        return sum(self.coeff_mod_bit_sizes[:-1])

    @property
    def ciphertext_noise_std(self) -> float:
        """Per-coefficient std of the noise of a sum of ``max_summands`` fresh ciphertexts:
        rounding at the special prime (τ_0 + τ_1·s), the encoder's rounding, and the key
        level noise v·e + e_0 + e_1·s divided by the special prime."""
        n, k = self.poly_modulus_degree, self.key_holders
        special = 2.0 ** self.coeff_mod_bit_sizes[-1]
        key_level = (n * 4 * k / 3 + 1) * KEY_NOISE_STD ** 2 / special ** 2
        fresh = n * k / 18 + 1 / 12 + 1 / 12 + key_level
        return math.sqrt(self.max_summands * fresh)

    @property
    def ciphertext_noise_bound(self) -> float:
        """High-probability bound B on ||e_ct||_2 (central-limit heuristic)."""
        return self.ciphertext_noise_std * (math.sqrt(self.poly_modulus_degree) + TAIL)

    @property
    def smudging_std(self) -> float:
        """σ_E = 2^λ_s · B: each holder's flooding noise per coefficient."""
        return 2.0 ** self.smudging_bits * self.ciphertext_noise_bound

    @property
    def error_std(self) -> float:
        """Std of a decrypted value's error: k holders' noise through the decoder
        (real part of Σ_j E_j ζ^j, N/2 terms of variance σ²) over the scale."""
        coeff_var = self.key_holders * self.smudging_std ** 2 + self.ciphertext_noise_std ** 2
        return math.sqrt(coeff_var * self.poly_modulus_degree / 2) / 2.0 ** self.scale_bits

    @property
    def value_bound(self) -> float:
        """Largest |sum| a slot may hold: Δ·|m| plus the flooding must stay below q/4."""
        return 2.0 ** (self.data_bits - 2 - self.scale_bits)


def check_threshold_parameters(params: ThresholdParameters) -> str | None:
    """None if the parameters are 128-bit secure, decrypt correctly and keep 2^-20 of
    precision under the smudging noise; else what is wrong."""
    n, bits = params.poly_modulus_degree, params.coeff_mod_bit_sizes
    if n not in MAX_MODULUS_BITS_128:
        return f"poly_modulus_degree {n} must be one of {sorted(MAX_MODULUS_BITS_128)}"
    if len(bits) < 2:
        return "needs at least two coefficient moduli (data primes and the special prime)"
    if sum(bits) > MAX_MODULUS_BITS_128[n]:
        return (f"coefficient moduli of {sum(bits)} bits exceed the {MAX_MODULUS_BITS_128[n]} "
                f"bits allowed at N={n} for 128-bit security")
    if params.key_holders < 2:
        return f"key_holders={params.key_holders}: a threshold key needs at least 2 holders"
    if params.smudging_bits < 0 or params.max_summands < 1:
        return (f"smudging_bits={params.smudging_bits} and max_summands="
                f"{params.max_summands} must be >= 0 and >= 1")
    flood_bits = math.log2(TAIL * math.sqrt(params.key_holders) * params.smudging_std)
    if params.value_bound < 2 ** MIN_VALUE_BITS or flood_bits > params.data_bits - 3:
        return (f"scale 2^{params.scale_bits} and 2^{flood_bits:.0f} of smudging leave "
                f"|sum| < {params.value_bound:g} in {params.data_bits} data bits; "
                f"need {2 ** MIN_VALUE_BITS}")
    if params.error_std > 2.0 ** -MIN_PRECISION_BITS:
        return (f"smudging of 2^{params.smudging_bits} over the noise bound leaves a "
                f"decryption error std of 2^{math.log2(params.error_std):.1f} at scale "
                f"2^{params.scale_bits}; need <= 2^-{MIN_PRECISION_BITS}: raise scale_bits "
                f"or the data primes, or lower smudging_bits or max_summands")
    return None


# n8192: 3 x 60-bit data primes and a 38-bit special prime (218 bits, the 128-bit limit);
# n4096 is for tests: (44, 44 | 21), 109 bits, sums of up to 16 ciphertexts.
PRESETS = {
    "n8192": ThresholdParameters(8192, (60, 60, 60, 38), scale_bits=100),
    "n4096": ThresholdParameters(4096, (44, 44, 21), scale_bits=80, max_summands=16),
}


@dataclass(frozen=True, repr=False)
class SecretShare:
    """One holder's s_i as SEAL serialises a SecretKey. Never leaves its holder."""

    holder_index: int
    secret_key: bytes

    def __repr__(self) -> str:
        return (f"SecretShare(holder_index={self.holder_index}, "
                f"secret_key=<{len(self.secret_key)} bytes>)")


class _Seal:
    """SEAL objects for one parameter set, and raw reads and writes of their polynomials."""

    def __init__(self, params: ThresholdParameters) -> None:
        import tenseal.sealapi as seal

        self.seal = seal
        n = params.poly_modulus_degree
        parms = seal.EncryptionParameters(seal.SCHEME_TYPE.CKKS)
        parms.set_poly_modulus_degree(n)
        parms.set_coeff_modulus(seal.CoeffModulus.Create(n, list(params.coeff_mod_bit_sizes)))
        self.context = seal.SEALContext(parms, True, seal.SEC_LEVEL_TYPE.TC128)
        if not self.context.parameters_set():
            raise ValueError(f"SEAL refuses {params}: {self.context.parameters_error_message()}")
        self.n, self.scale = n, 2.0 ** params.scale_bits
        key, data = self.context.key_context_data(), self.context.first_context_data()
        self.key_q = np.array([m.value() for m in key.parms().coeff_modulus()], dtype=np.uint64)
        self.data_q = np.array([m.value() for m in data.parms().coeff_modulus()], dtype=np.uint64)
        self.key_id, self.data_id = self.context.key_parms_id(), self.context.first_parms_id()
        self.encoder = seal.CKKSEncoder(self.context)
        self.evaluator = seal.Evaluator(self.context)
        shm = "/dev/shm" if os.access("/dev/shm", os.W_OK) else None
        self._dir = tempfile.mkdtemp(prefix="fedray-threshold-", dir=shm)
        weakref.finalize(self, shutil.rmtree, self._dir, True)
        self._names = count()
        self._lock = threading.Lock()
        probe = seal.Ciphertext(self.context)
        self.version = self.save(probe)[3:5]  # SEAL major, minor from a header

    def _path(self) -> str:
        with self._lock:
            return os.path.join(self._dir, f"{os.getpid()}-{next(self._names)}")

    def save(self, obj: Any) -> bytes:
        """SEAL's own (zstd-compressed) serialisation."""
        path = self._path()
        try:
            obj.save(path)
            with open(path, "rb") as f:
                return f.read()
        finally:
            os.remove(path)

    def load(self, cls: Any, data: bytes) -> Any:
        """Loads and validates (SEAL checks parameters and every coefficient < q_j)."""
        path = self._path()
        try:
            with open(path, "wb") as f:
                f.write(data)
            obj = cls()
            obj.load(self.context, path)
            return obj
        finally:
            os.remove(path)

    @staticmethod
    def read(obj: Any, start: int, stop: int) -> np.ndarray:
        """Coefficients start..stop of a Ciphertext or Plaintext, as stored (RNS, poly-major)."""
        array = obj.dyn_array()
        return np.fromiter(map(array.__getitem__, range(start, stop)), dtype=np.uint64,
                           count=stop - start)

    def _header(self, body: bytes) -> bytes:  # SEALHeader: magic, size, version, compr none
        return struct.pack("<HB2sBHQ", 0xA15E, 16, self.version, 0, 0, 16 + len(body)) + body

    def _array(self, values: np.ndarray) -> bytes:
        flat = np.ascontiguousarray(values, dtype="<u8").ravel()
        return self._header(struct.pack("<Q", flat.size) + flat.tobytes())

    def ciphertext_bytes(self, parms_id: Any, polys: np.ndarray, *, ntt: bool = True,
                         scale: float = 1.0) -> bytes:
        size, moduli, n = polys.shape
        meta = struct.pack("<4QBQQQdQ", *parms_id, ntt, size, n, moduli, scale, 1)
        return self._header(meta + self._array(polys))

    def plaintext_bytes(self, parms_id: Any, coeffs: np.ndarray, *, scale: float) -> bytes:
        return self._header(struct.pack("<4QQd", *parms_id, coeffs.size, scale)
                            + self._array(coeffs))


@lru_cache(maxsize=8)
def _seal(params: ThresholdParameters) -> _Seal:
    return _Seal(params)


def _mulmod(x: np.ndarray, y: np.ndarray, q: np.ndarray) -> np.ndarray:
    """Pointwise x·y mod q per RNS row, in Python integers (SEAL refuses key-level work)."""
    product = x.astype(object) * y.astype(object) % q.astype(object)[:, None]
    return product.astype(np.uint64)


# Messages between parties: magic, kind, holder, parts, 16-byte tag, raw uint64 array.
_MESSAGE = struct.Struct("<4sBHI16s")
_PUBLIC_SHARE, _PARTIAL = 1, 2


def _pack(kind: int, holder: int, tag: bytes, array: np.ndarray) -> bytes:
    parts = array.shape[0] if kind == _PARTIAL else 1
    return (_MESSAGE.pack(b"FRTH", kind, holder, parts, tag)
            + np.ascontiguousarray(array, dtype="<u8").tobytes())


def _unpack(data: bytes, kind: int, shape: tuple[int, int]) -> tuple[int, bytes, np.ndarray]:
    if len(data) < _MESSAGE.size or (len(data) - _MESSAGE.size) % 8:
        raise ValueError(f"a threshold message of {len(data)} bytes is truncated")
    magic, got, holder, parts, tag = _MESSAGE.unpack_from(data)
    body = np.frombuffer(data, dtype="<u8", offset=_MESSAGE.size)
    if magic != b"FRTH" or got != kind or body.size != parts * shape[0] * shape[1]:
        raise ValueError("not a well-formed threshold message of this kind and parameter set")
    return holder, tag, body.reshape((parts, *shape) if kind == _PARTIAL else shape)


def _tag(*parts: bytes) -> bytes:
    digest = hashlib.sha256()
    for part in parts:
        digest.update(struct.pack("<Q", len(part)) + part)
    return digest.digest()[:16]


def common_polynomial(params: ThresholdParameters, common_seed: bytes) -> np.ndarray:
    """The public uniform polynomial a (key level, NTT form; uniform in either domain),
    expanded from the agreed seed with SHAKE-256 and rejection sampling."""
    if len(common_seed) < 16:
        raise ValueError(f"common_seed has {len(common_seed)} bytes; use at least 16")
    seal = _seal(params)
    rows = []
    for j, q in enumerate(int(v) for v in seal.key_q):
        mask, accepted, attempt = (1 << q.bit_length()) - 1, np.empty(0, np.uint64), 0
        while accepted.size < seal.n:
            label = b"fedray-threshold-a" + struct.pack("<III", seal.n, j, attempt)
            stream = hashlib.shake_256(label + common_seed).digest(16 * seal.n)
            words = np.frombuffer(stream, dtype="<u8") & np.uint64(mask)
            accepted = np.concatenate([accepted, words[words < np.uint64(q)]])
            attempt += 1
        rows.append(accepted[:seal.n])
    return np.stack(rows)


def holder_keygen(params: ThresholdParameters, *, common_seed: bytes,
                  holder_index: int) -> tuple[SecretShare, bytes]:
    """Holder i's step: a fresh SEAL secret key s_i (its share) and its public share
    b_i = -a·s_i - e_i. SEAL's own public key (-a'·s_i - e_i, a') supplies e_i, so
    b_i = p_0 + (a' - a)·s_i: fresh noise from SEAL's sampler, no Gaussian of our own."""
    if not 0 <= holder_index < params.key_holders:
        raise ValueError(f"holder_index={holder_index} must be in [0, {params.key_holders})")
    seal = _seal(params)
    generator = seal.seal.KeyGenerator(seal.context)
    secret = generator.secret_key()
    public = seal.seal.PublicKey()
    generator.create_public_key(public)
    rows, n = seal.key_q.size, seal.n
    s = seal.read(secret.data(), 0, rows * n).reshape(rows, n)
    p = seal.read(public.data(), 0, 2 * rows * n).reshape(2, rows, n)
    q = seal.key_q[:, None]
    a = common_polynomial(params, common_seed)
    b = (p[0] + _mulmod((p[1] + q - a) % q, s, seal.key_q)) % q
    share = SecretShare(holder_index, seal.save(secret))
    return share, _pack(_PUBLIC_SHARE, holder_index, _tag(common_seed), b)


def joint_public_key(params: ThresholdParameters, public_shares: Sequence[bytes], *,
                     common_seed: bytes) -> bytes:
    """(Σ b_i, a) as a SEAL PublicKey (serialised): needs every holder's share, once."""
    seal = _seal(params)
    shape = (seal.key_q.size, seal.n)
    unpacked = [_unpack(share, _PUBLIC_SHARE, shape) for share in public_shares]
    holders = sorted(holder for holder, _, _ in unpacked)
    if holders != list(range(params.key_holders)):
        raise ValueError(f"public shares from holders {holders}; need each of "
                         f"0..{params.key_holders - 1} exactly once")
    if any(tag != _tag(common_seed) for _, tag, _ in unpacked):
        raise ValueError("a public share was made from another common seed")
    q = seal.key_q[:, None]
    total = np.zeros(shape, dtype=np.uint64)
    for _, _, b in unpacked:
        total = (total + b) % q
    a = common_polynomial(params, common_seed)
    raw = seal.ciphertext_bytes(seal.key_id, np.stack([total, a]))
    return seal.save(seal.load(seal.seal.PublicKey, raw))


def encrypt(params: ThresholdParameters, joint_public: bytes,
            values: np.ndarray) -> tuple[bytes, ...]:
    """A hospital's step: one ciphertext per ``slots`` values, under the joint key."""
    seal = _seal(params)
    flat = np.asarray(values, dtype=np.float64).ravel()
    if not np.all(np.isfinite(flat)) or np.any(np.abs(flat) >= params.value_bound):
        raise ValueError(f"values must be finite and below {params.value_bound:g} in magnitude")
    encryptor = seal.seal.Encryptor(seal.context, seal.load(seal.seal.PublicKey, joint_public))
    out = []
    for start in range(0, max(flat.size, 1), params.slots):
        plain, cipher = seal.seal.Plaintext(), seal.seal.Ciphertext()
        seal.encoder.encode(flat[start:start + params.slots].tolist(), seal.scale, plain)
        encryptor.encrypt(plain, cipher)
        out.append(seal.save(cipher))
    return tuple(out)


def _load_ciphertext(seal: _Seal, data: bytes) -> Any:
    cipher = seal.load(seal.seal.Ciphertext, data)
    if cipher.size() != 2 or list(cipher.parms_id()) != list(seal.data_id):
        raise ValueError("not a fresh-level, size-2 CKKS ciphertext of these parameters")
    return cipher


def add(params: ThresholdParameters,
        ciphertexts: Sequence[Sequence[bytes]]) -> tuple[bytes, ...]:
    """The aggregator's step, key-free: the part-wise sum of encrypted vectors."""
    if not ciphertexts or len({len(c) for c in ciphertexts}) != 1:
        raise ValueError("needs at least one encrypted vector, all with the same number of parts")
    if len(ciphertexts) > params.max_summands:
        raise ValueError(f"{len(ciphertexts)} summands exceed max_summands={params.max_summands}, "
                         f"which the smudging noise is sized for")
    seal = _seal(params)
    totals = [_load_ciphertext(seal, part) for part in ciphertexts[0]]
    for vector in ciphertexts[1:]:
        for total, part in zip(totals, vector):
            seal.evaluator.add_inplace(total, _load_ciphertext(seal, part))
    return tuple(seal.save(total) for total in totals)


def _smudging_noise(rng: np.random.Generator, std: float, n: int) -> np.ndarray:
    """Rounded Gaussian integers of std ``std``, exact in every bit: float64 holds the
    high part (|x| < 2^53), uniform integers fill the w low bits it cannot."""
    w = max(0, math.ceil(math.log2(std)) + 5 - 52)
    high = np.rint(rng.normal(0.0, std / 2.0 ** w, n)).astype(np.int64) << w
    return high + (rng.integers(0, 1 << w, n, dtype=np.int64) - (1 << w >> 1) if w else 0)


def partial_decrypt(params: ThresholdParameters, share: SecretShare, ciphertext: Sequence[bytes],
                    rng: np.random.Generator, *, smudging_std: float | None = None) -> bytes:
    """Holder i's step: d_i = c_1·s_i + E_i for every part (``rng`` draws E_i; seed it
    from OS entropy: np.random.default_rng() does). ``smudging_std`` overrides σ_E,
    for measurements only."""
    seal = _seal(params)
    std = params.smudging_std if smudging_std is None else smudging_std
    rows, n = seal.data_q.size, seal.n
    key = seal.load(seal.seal.SecretKey, share.secret_key)  # data() points into it: keep it
    secret = seal.read(key.data(), 0, rows * n)
    s_data = seal.load(seal.seal.Plaintext, seal.plaintext_bytes(seal.data_id, secret, scale=1.0))
    q = seal.data_q.astype(np.int64)[:, None]
    partials = []
    for part in ciphertext:
        cipher = _load_ciphertext(seal, part)
        product = seal.seal.Ciphertext()
        seal.evaluator.multiply_plain(cipher, s_data, product)  # (c_0·s_i, c_1·s_i)
        if std > 0:  # (0, E_i) in coefficient form, to NTT form, added: (c_0·s_i, d_i)
            noise = np.zeros((2, rows, n), dtype=np.uint64)
            noise[1] = (_smudging_noise(rng, std, n)[None, :] % q).astype(np.uint64)
            flood = seal.load(seal.seal.Ciphertext, seal.ciphertext_bytes(
                seal.data_id, noise, ntt=False, scale=cipher.scale))
            seal.evaluator.transform_to_ntt_inplace(flood)
            seal.evaluator.add_inplace(product, flood)
        partials.append(seal.read(product, rows * n, 2 * rows * n).reshape(rows, n))
    return _pack(_PARTIAL, share.holder_index, _tag(*ciphertext), np.stack(partials))


def _decrypted_polynomials(params: ThresholdParameters, ciphertext: Sequence[bytes],
                           partials: Sequence[np.ndarray]) -> list[tuple[np.ndarray, float]]:
    """Per part, c_0 + Σ d_i (NTT form) and its scale; no checks (see combine)."""
    seal = _seal(params)
    rows, n = seal.data_q.size, seal.n
    q = seal.data_q[:, None]
    out = []
    for index, part in enumerate(ciphertext):
        cipher = _load_ciphertext(seal, part)
        m = seal.read(cipher, 0, rows * n).reshape(rows, n)
        for d in partials:
            m = (m + d[index]) % q
        out.append((m, cipher.scale))
    return out


def _combine_partials(params: ThresholdParameters, ciphertext: Sequence[bytes],
                      partials: Sequence[np.ndarray]) -> np.ndarray:
    """The decoded c_0 + Σ d_i of every part, whichever partials are given."""
    seal = _seal(params)
    values = []
    for m, scale in _decrypted_polynomials(params, ciphertext, partials):
        plain = seal.load(seal.seal.Plaintext, seal.plaintext_bytes(seal.data_id, m, scale=scale))
        values.append(np.asarray(seal.encoder.decode_double(plain), dtype=np.float64))
    return np.concatenate(values)


def combine(params: ThresholdParameters, ciphertext: Sequence[bytes], partials: Sequence[bytes],
            *, size: int | None = None) -> np.ndarray:
    """The decrypted sum from every holder's partial decryption of this very ciphertext."""
    seal = _seal(params)
    shape = (seal.data_q.size, seal.n)
    unpacked = [_unpack(p, _PARTIAL, shape) for p in partials]
    holders = sorted(holder for holder, _, _ in unpacked)
    if holders != list(range(params.key_holders)):
        raise ValueError(f"partial decryptions from holders {holders}; all "
                         f"{params.key_holders} are needed, each once")
    tag = _tag(*ciphertext)
    if any(t != tag or d.shape[0] != len(ciphertext) for _, t, d in unpacked):
        raise ValueError("a partial decryption belongs to another ciphertext")
    values = _combine_partials(params, ciphertext, [d for _, _, d in unpacked])
    return values if size is None else values[:size]
