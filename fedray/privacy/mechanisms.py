"""The Gaussian mechanism's two steps on a flat update, as pure functions."""

from __future__ import annotations

import numpy as np


def clip_to_norm(vector: np.ndarray, clip: float) -> np.ndarray:
    """Scales ``vector`` down to L2 norm ``clip`` if it is longer (never up).

    The norm is computed and compared in float64, whatever the vector's dtype: a
    float32 vector exactly at the bound in float32 may lie just above it in float64,
    and is then scaled by 1 − 1e-8 or so (one rounding of its dtype)."""
    norm = float(np.linalg.norm(np.asarray(vector, dtype=np.float64)))
    if norm <= clip:
        return vector
    return (vector * (clip / norm)).astype(vector.dtype)


def add_gaussian_noise(vector: np.ndarray, std: float, rng: np.random.Generator, *,
                       secure: bool = False) -> np.ndarray:
    """``vector + N(0, std²)`` per coordinate (float64 noise, cast back).

    ``secure``: the noise is the sum of four N(0, std²) draws halved, as Opacus's
    secure mode does, so no single floating-point Gaussian sample is exposed."""
    if secure:
        noise = rng.normal(0.0, std, size=(4, *vector.shape)).sum(axis=0) / 2.0
    else:
        noise = rng.normal(0.0, std, size=vector.shape)
    return (vector + noise).astype(vector.dtype)
