"""Neighbouring relations: which two worlds an ε says an adversary cannot tell apart.

An ε means nothing without its relation. fedray's modes use three:

``replace_one``  a hospital's data D replaced by any D′ (same hospital, same size).
                 The adversary sees who takes part and how much each holds, so this
                 is what "protects anything about its data" needs under local DP. A
                 clipped update moves by up to 2C between D and D′.
``add_remove``   one unit (a hospital for central DP, a record for DP-SGD) added or
                 removed, while the adversary cannot see which units were sampled.
                 Opacus's accountants are written for this relation (sensitivity C).
``zero_out``     a hospital's real contribution replaced by a zero one, everything
                 else equal: every hospital visibly sends every round (distributed
                 DP with self-sampling), only what it sent is hidden. For the
                 Poisson-subsampled Gaussian its privacy loss is add/remove's
                 (dp-accounting's ``REPLACE_SPECIAL``), at sensitivity C.

Opacus accounts a Gaussian mechanism by its noise multiplier σ = std / C. fedray keeps
that meaning for ``privacy.noise_multiplier``; a relation with sensitivity k·C is
accounted as Opacus's mechanism at σ / k, which is exact for q = 1 (the Gaussian's
privacy loss depends on std / sensitivity only).
"""

from __future__ import annotations

from enum import Enum


class Adjacency(str, Enum):
    REPLACE_ONE = "replace_one"
    ADD_REMOVE = "add_remove"
    ZERO_OUT = "zero_out"

    @property
    def sensitivity(self) -> float:
        """How far one unit can move the clipped quantity, in units of the clip C."""
        return 2.0 if self is Adjacency.REPLACE_ONE else 1.0

    def accounted_multiplier(self, noise_multiplier: float, sample_rate: float) -> float:
        """The σ Opacus's add/remove accountant must be given for this relation."""
        if self is Adjacency.REPLACE_ONE and sample_rate != 1.0:
            # Subsampling amplification under replace-one is not add/remove's: no
            # fedray mode needs it (local DP's participation is visible, q = 1).
            raise ValueError("replace-one adjacency is accounted only without subsampling")
        return noise_multiplier / self.sensitivity


DESCRIPTIONS = {
    Adjacency.REPLACE_ONE: "one hospital's data replaced by any other of the same size; "
                           "participation and sizes are public",
    Adjacency.ADD_REMOVE: "one unit added or removed; who was sampled stays hidden",
    Adjacency.ZERO_OUT: "one hospital's contribution replaced by zero; every hospital "
                        "visibly sends every round",
}
