"""Draws from a cryptographically secure stream: ChaCha20's keystream (``cryptography``)
under a fresh 256-bit key from the OS, turned into the uniform, Gaussian and sampling
draws fedray's mechanisms make (``privacy.secure_rng=true``).

numpy's and torch's generators (PCG64, MT19937) are statistical, not cryptographic:
seeding them from the OS hides the seed but not the stream, whose state can be recovered
from enough of its output. ChaCha20 is a stream cipher: its keystream is
indistinguishable from random without the key, which is drawn from ``os.urandom`` and
dropped with the stream. Uniforms take the top 53 bits of each 64-bit word; Gaussians
come from the Box–Muller transform of two uniforms (and the Gaussian mechanism sums four
of them, halved, as Opacus's secure mode does: fedray/privacy/mechanisms.py)."""

from __future__ import annotations

import math
import os

import numpy as np
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms
from scipy.special import gammaln

KEY_BYTES, NONCE_BYTES = 32, 16


class ChaChaStream:
    """The subset of ``numpy.random.Generator`` that fedray's mechanisms call
    (``random``, ``normal``, ``choice``, ``poisson``), drawn from one ChaCha20
    keystream."""

    def __init__(self, key: bytes | None = None, nonce: bytes | None = None) -> None:
        """``key``/``nonce`` fixed only to test the transforms; by default fresh from the OS."""
        cipher = Cipher(algorithms.ChaCha20(key or os.urandom(KEY_BYTES),
                                            nonce or os.urandom(NONCE_BYTES)), mode=None)
        self._keystream = cipher.encryptor()

    def _words(self, count: int) -> np.ndarray:
        return np.frombuffer(self._keystream.update(bytes(8 * count)), dtype="<u8")

    def random(self, size: int | tuple[int, ...] | None = None) -> np.ndarray | float:
        """Uniform in [0, 1), 53 bits each."""
        count = 1 if size is None else int(np.prod(size))
        values = (self._words(count) >> np.uint64(11)).astype(np.float64) * 2.0 ** -53
        return float(values[0]) if size is None else values.reshape(size)

    def normal(self, loc: float = 0.0, scale: float = 1.0,
               size: int | tuple[int, ...] | None = None) -> np.ndarray | float:
        """Gaussian by Box–Muller (1 − u keeps the logarithm finite)."""
        count = 1 if size is None else int(np.prod(size))
        halves = -(-count // 2)
        u1 = 1.0 - np.asarray(self.random(halves))
        u2 = np.asarray(self.random(halves))
        radius = np.sqrt(-2.0 * np.log(u1))
        values = np.concatenate([radius * np.cos(2 * np.pi * u2),
                                 radius * np.sin(2 * np.pi * u2)])[:count]
        values = loc + scale * values
        return float(values[0]) if size is None else values.reshape(size)

    def poisson(self, lam: float, size: int) -> np.ndarray:
        """Poisson(``lam``) integers (distributed DP's Skellam shares): by inversion below
        λ = 10, else Hörmann's transformed rejection (PTRS, 1993), the algorithm numpy's
        own sampler uses, here on this stream's uniforms."""
        if lam < 0:
            raise ValueError(f"lam={lam}: must be >= 0")
        if lam == 0 or size == 0:
            return np.zeros(size, dtype=np.int64)
        return (_poisson_inversion if lam < 10 else _poisson_ptrs)(self, float(lam), size)

    def choice(self, a: int, size: int, replace: bool = False) -> np.ndarray:
        """``size`` distinct integers of ``range(a)``, uniformly (a random permutation's
        first ``size``): what a fixed-size round sample asks."""
        if replace:
            raise ValueError("only sampling without replacement is drawn here")
        return np.argsort(np.asarray(self.random(a)), kind="stable")[:size]


def _poisson_inversion(stream: ChaChaStream, lam: float, size: int) -> np.ndarray:
    """Small λ: the least k whose cumulative probability reaches a uniform."""
    u = np.asarray(stream.random(size))
    k = np.zeros(size, dtype=np.int64)
    term = np.full(size, math.exp(-lam))
    cumulative = term.copy()
    pending = u > cumulative
    while pending.any():
        k[pending] += 1
        term[pending] *= lam / k[pending]
        cumulative[pending] += term[pending]
        pending &= u > cumulative
        if term[pending].size and term[pending].max() < 1e-300:  # float tail: stop there
            break
    return k


def _poisson_ptrs(stream: ChaChaStream, lam: float, size: int) -> np.ndarray:
    """Large λ: Hörmann's PTRS, vectorised, redrawing the rejected."""
    slam, loglam = math.sqrt(lam), math.log(lam)
    b = 0.931 + 2.53 * slam
    a = -0.059 + 0.02483 * b
    invalpha = 1.1239 + 1.1328 / (b - 3.4)
    vr = 0.9277 - 3.6224 / (b - 2)
    out = np.zeros(size, dtype=np.int64)
    todo = np.arange(size)
    while todo.size:
        u = np.asarray(stream.random(todo.size)) - 0.5
        v = np.asarray(stream.random(todo.size))
        us = 0.5 - np.abs(u)
        k = np.floor((2 * a / us + b) * u + lam + 0.43)
        quick = (us >= 0.07) & (v <= vr)
        possible = (k >= 0) & ~((us < 0.013) & (v > us))
        with np.errstate(divide="ignore", invalid="ignore"):
            slow = possible & (np.log(v) + math.log(invalpha) - np.log(a / (us * us) + b)
                               <= -lam + k * loglam - gammaln(np.maximum(k, 0) + 1))
        accepted = quick | slow
        out[todo[accepted]] = k[accepted].astype(np.int64)
        todo = todo[~accepted]
    return out
