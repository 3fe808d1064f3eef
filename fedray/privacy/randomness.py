"""Where DP noise and sampling coins come from.

By default every draw comes from a stream seeded by the run's ``seed``: runs are
reproducible, and the guarantee then assumes the seed is secret (whoever knows it can
regenerate the noise and subtract it). ``privacy.secure_rng=true`` draws from a
cryptographically secure stream instead: each draw gets a ChaCha20 keystream under 256
fresh bits from ``os.urandom``, used once and dropped (fedray/privacy/csprng.py), so no
state exists from which the noise could be recomputed, and Gaussian noise is the Opacus
secure-mode construction (four draws summed, halved), robust to the floating-point
attacks on a single Gaussian sample (Holohan et al., 2021). torch has no maintained
cryptographic generator (torchcsprng stopped at torch 1.x), so DP-SGD's secure mode is
Opacus's ``secure_mode`` with a torch generator freshly seeded from the OS each round:
its noise is statistical (MT19937 / Philox), with an OS seed, not cryptographic.
"""

from __future__ import annotations

import os
from typing import Any, Protocol, cast

import numpy as np

from fedray.privacy.csprng import ChaChaStream


class Randomness(Protocol):
    secure: bool

    def generator(self) -> Any:
        """The generator for the next draw: a ``numpy.random.Generator`` (seeded), or a
        ChaCha20 stream with the same ``random``/``normal``/``choice`` calls (secure)."""

    def torch_seed(self) -> int | None:
        """A fresh seed for a torch generator (secure), or None (keep the seeded one)."""

    def state_dict(self) -> dict | None: ...

    def load_state_dict(self, state: dict | None) -> None: ...


class SeededRandomness:
    """One reproducible stream."""

    secure = False

    def __init__(self, seed: np.random.SeedSequence) -> None:
        self._generator = np.random.default_rng(seed)

    def generator(self) -> np.random.Generator:
        return self._generator

    def torch_seed(self) -> int | None:
        return None

    def state_dict(self) -> dict | None:
        # a dict at run time; numpy's stubs say Mapping
        return cast(dict, self._generator.bit_generator.state)

    def load_state_dict(self, state: dict | None) -> None:
        if state is not None:
            self._generator.bit_generator.state = state


class SystemRandomness:
    """A new ChaCha20 stream under a fresh OS key for every draw (fedray/privacy/csprng.py);
    nothing to save or regenerate."""

    secure = True

    def generator(self) -> Any:
        return ChaChaStream()

    def torch_seed(self) -> int | None:
        return int.from_bytes(os.urandom(8), "little") >> 1  # torch seeds are < 2^63

    def state_dict(self) -> dict | None:
        return None  # nothing to save: that is the point

    def load_state_dict(self, state: dict | None) -> None:
        pass


def make_randomness(*, secure: bool, seed: np.random.SeedSequence) -> Randomness:
    return SystemRandomness() if secure else SeededRandomness(seed)

