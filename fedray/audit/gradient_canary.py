"""Record-level DP-SGD audit with white-box "Dirac" gradient canaries (Nasr et al. 2023,
"Tight auditing of differentially private machine learning"; scored in one run as in
Steinke, Nasr and Jagielski 2023, fedray/audit/canary.py).

In one hospital that trains with DP-SGD (fedray/privacy/dpsgd.py), m canary "records"
are added. Canary k is *in* with probability 1/2 (a seeded coin the auditor keeps). An
in-canary joins each DP-SGD step's Poisson batch independently with the hospital's
sample rate q, like any record; its per-sample gradient is a Dirac vector: zero except
at its own flat parameter coordinate c_k, where it is ``magnitude`` (10·C), so Opacus's
per-sample clipping makes it exactly C along c_k (up to Opacus's 1e-6 guard in the
clip factor: C·magnitude/(magnitude + 1e-6)). DPOptimizer then sums it with the data
records' clipped rows, adds N(0, σ²C²) noise and divides by the expected batch size B,
as for any record. An out-canary never joins.

Sign convention: SGD moves θ against the gradient, so a step that a canary joins moves
θ[c_k] by −lr·C/B. The adversary, who sees the global model after every round, scores
canary k by how far its coordinate moved *down*:

    score_k = −Σ_t (θ_t[c_k] − θ_{t−1}[c_k])

so in-canaries score high (about steps·q·lr·C/B each, times the aggregation weight of the
hospital in the global model), out-canaries around zero. The scores go to
fedray/audit/client_canary.py's ``audit_scores`` (Gaussian fit and one-run bound) like
any canary scores.

Pure numpy at import; torch is imported only inside the functions that touch
per-sample gradients.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import torch
    from torch import nn

GRADIENT_CANARY_SEED = 0xD12AC  # "Dirac": the stream of coordinates and coins
MAGNITUDE_OVER_CLIP = 10.0  # a Dirac row's size before clipping, in units of the clip C


@dataclass(frozen=True)
class GradientCanaries:
    """The Dirac canaries of one hospital: canary k writes ``magnitude`` at flat parameter
    position ``coordinates[k]`` (the order of ``model.parameters()``, as
    fedray/models.py's ``flatten`` lays them out) and is in the run iff ``included[k]``."""

    coordinates: np.ndarray  # int64, distinct flat parameter positions, one per canary
    included: np.ndarray  # bool, one per canary: the auditor's secret coins
    magnitude: float  # the Dirac row's value before clipping (well above the clip C)

    def __post_init__(self) -> None:
        if self.coordinates.ndim != 1 or self.included.shape != self.coordinates.shape:
            raise ValueError(f"coordinates {self.coordinates.shape} and included "
                             f"{self.included.shape}: one of each per canary")
        if len(np.unique(self.coordinates)) != len(self.coordinates):
            raise ValueError("gradient canaries need distinct coordinates")
        if not self.magnitude > 0:
            raise ValueError(f"magnitude={self.magnitude}: must be positive")

    @property
    def count(self) -> int:
        """How many canaries (in and out)."""
        return len(self.coordinates)


def make_gradient_canaries(*, count: int, num_parameters: int, seed: int, clip: float
                           ) -> GradientCanaries:
    """``count`` canaries on distinct coordinates among the first ``num_parameters`` flat
    positions (fedray.models.num_trainable: the parameters, not the float buffers), each
    in with probability 1/2, of magnitude 10·``clip``. Deterministic in ``seed``: the
    auditor draws the same ones."""
    if count < 1:
        raise ValueError(f"count={count}: need at least one gradient canary")
    if count > num_parameters:
        raise ValueError(f"count={count} gradient canaries need as many distinct coordinates, "
                         f"but the model has num_parameters={num_parameters}")
    if not clip > 0:
        raise ValueError(f"clip={clip}: must be positive")
    rng = np.random.default_rng(np.random.SeedSequence([seed, GRADIENT_CANARY_SEED]))
    coordinates = rng.choice(num_parameters, size=count, replace=False).astype(np.int64)
    included = rng.random(count) < 0.5
    return GradientCanaries(coordinates=coordinates, included=included,
                            magnitude=MAGNITUDE_OVER_CLIP * clip)


def score_rounds(canaries: GradientCanaries, global_models: Sequence[np.ndarray]
                 ) -> np.ndarray:
    """Each canary's score from the global models the adversary saw, in order (the one
    before the first round, then one after each round): the total movement of its
    coordinate against the gradient, −Σ_t (θ_t[c_k] − θ_{t−1}[c_k]). High: in."""
    if len(global_models) < 1:
        raise ValueError("scoring needs at least the starting global model")
    picked = np.stack([np.asarray(m, dtype=np.float64)[canaries.coordinates]
                       for m in global_models])
    return -np.diff(picked, axis=0).sum(axis=0)


def canaries_joining(canaries: GradientCanaries, *, sample_rate: float,
                     generator: torch.Generator) -> np.ndarray:
    """Which canaries join this DP-SGD step's Poisson batch (their indices, ascending):
    every in-canary independently with probability ``sample_rate``. One uniform is drawn
    from ``generator`` for every canary, in or out, so the stream's use does not depend
    on the secret coins; an out-canary never joins. ``generator`` is a CPU generator."""
    import torch

    uniforms = torch.rand(canaries.count, generator=generator, dtype=torch.float64).numpy()
    return np.flatnonzero(canaries.included & (uniforms < sample_rate))


def append_dirac_gradients(model: nn.Module, canaries: GradientCanaries,
                           joining: np.ndarray) -> None:
    """Appends one per-sample gradient row per joining canary to every trainable
    parameter's ``p.grad_sample`` (Opacus's per-sample gradients, shape
    (batch, *p.shape)), after ``loss.backward()`` and before ``DPOptimizer.pre_step()``:
    row j is zero everywhere except ``magnitude`` at canary ``joining[j]``'s coordinate.
    An empty data batch (``grad_sample`` of length 0, or None) gets the canary rows
    alone; accumulated gradients (a list) get them on their last batch, so Opacus's
    ``accumulated_iterations`` is unchanged. No joining canary: nothing is touched."""
    import torch

    if len(joining) == 0:
        return
    params = list(model.parameters())
    ends = np.cumsum([p.numel() for p in params])
    coordinates = canaries.coordinates[np.asarray(joining, dtype=np.int64)]
    if coordinates.max() >= ends[-1]:
        raise ValueError(f"canary coordinate {int(coordinates.max())} is beyond the model's "
                         f"{int(ends[-1])} parameters")
    owner = np.searchsorted(ends, coordinates, side="right")  # parameter index of each
    for i, p in enumerate(params):
        mine = np.flatnonzero(owner == i)
        if not p.requires_grad:
            if len(mine):
                raise ValueError(f"canary coordinate {int(coordinates[mine[0]])} is in a "
                                 "frozen parameter: DP-SGD never updates it")
            continue
        existing = getattr(p, "grad_sample", None)
        last = existing[-1] if isinstance(existing, list) else existing
        if last is not None and getattr(last, "_processed", False):
            raise RuntimeError("Opacus already clipped these per-sample gradients: add the "
                               "canaries before DPOptimizer.pre_step()")
        like = p if last is None else last
        rows = torch.zeros((len(joining), p.numel()), dtype=like.dtype, device=like.device)
        start = int(ends[i]) - p.numel()
        for j in mine:
            rows[j, int(coordinates[j]) - start] = canaries.magnitude
        rows = rows.view(len(joining), *p.shape)
        if last is None:
            p.grad_sample = rows  # type: ignore[attr-defined]
        elif isinstance(existing, list):
            existing[-1] = torch.cat([last, rows])
        else:
            p.grad_sample = torch.cat([last, rows])  # type: ignore[attr-defined]
