"""The Gaussian mechanism's two steps on a flat update, as pure functions."""

from __future__ import annotations

import numpy as np


def clip_to_norm(vector: np.ndarray, clip: float) -> np.ndarray:
    """Scales ``vector`` down to L2 norm ``clip`` if it is longer (never up)."""
    norm = float(np.linalg.norm(vector))
    if norm <= clip:
        return vector
    return (vector * (clip / norm)).astype(vector.dtype)


def add_gaussian_noise(vector: np.ndarray, std: float, rng: np.random.Generator) -> np.ndarray:
    """``vector + N(0, std²)`` per coordinate (float64 noise, cast back)."""
    return (vector + rng.normal(0.0, std, size=vector.shape)).astype(vector.dtype)
