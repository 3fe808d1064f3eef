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
θ[c_k] by −lr·C/B. In a run, canary k's coordinate c_{k,t} is drawn afresh every round t
(``PlantedCanaries``: the records' own gradients drift some coordinates steadily, and a
fixed coordinate would add that drift up round after round). The adversary, who sees
the global model after every round, scores canary k by how far its coordinates moved
*down*:

    score_k = −Σ_t (θ_t[c_{k,t}] − θ_{t−1}[c_{k,t}])

so in-canaries score high (about steps·q·lr·C/B each, times the aggregation weight of the
hospital in the global model), out-canaries around zero. The scores go to
fedray/audit/client_canary.py's ``audit_scores`` (Gaussian fit and one-run bound) like
any canary scores.

Pure numpy at import; torch is imported only inside the functions that touch
per-sample gradients.

The data records' gradients move every coordinate too, by about s·B·C/√P per round (s
steps of batch B in P parameters), and under aggregation the other hospitals' noise
joins the target's: both make the audit's scores wider than the mechanism's own
noise alone would, so its estimate sits below the accountant's ε (measured in
docs/results/client_canary_audit.csv).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from fedray.audit.client_canary import RunningScores
from fedray.messages import Update

if TYPE_CHECKING:
    import torch
    from torch import nn

GRADIENT_CANARY_SEED = 0xD12AC  # "Dirac": the stream of coordinates and coins
COORDINATES, JOINING = 1, 2  # sub-streams: each round's coordinates; who joins each step
MAGNITUDE_OVER_CLIP = 10.0  # a Dirac row's size before clipping, in units of the clip C
DEFAULT_MOST = 1000  # audit.gradient_canaries=null plants this many when the model allows


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


def canary_count(requested: int | None, num_parameters: int) -> int:
    """How many canaries a run plants: ``requested``, or (None) as many as the model has
    trainable parameters, at most ``DEFAULT_MOST``, rounded down to a multiple of 4 (the
    one-run bound guesses a quarter in and a quarter out)."""
    if requested is not None:
        return requested
    return min(DEFAULT_MOST, num_parameters) // 4 * 4


@dataclass(frozen=True)
class PlantedCanaries:
    """The canaries one hospital's DP-SGD carries through a run (``hospital``: its index).

    Each round every canary gets a fresh coordinate (distinct within the round): the data
    records' own gradients push some coordinates steadily one way round after round, and
    a canary that kept its coordinate would add that drift up coherently, drowning its
    own small push in any model that is not huge. Drawn afresh, the drift adds up like
    noise (√rounds), the canary's push linearly (rounds). The coins (``included``) are
    the run's; the stream that decides, step by step, which in-canaries join a batch
    restarts every round from (seed, round), so a resumed run draws as an unbroken one
    and no generator state needs keeping."""

    hospital: int
    included: np.ndarray  # bool, one per canary: the auditor's secret coins
    num_parameters: int
    magnitude: float
    seed: int

    @property
    def count(self) -> int:
        return len(self.included)

    def of_round(self, round_: int) -> GradientCanaries:
        """The canaries as they are in round ``round_``: their coordinates that round."""
        rng = np.random.default_rng(
            np.random.SeedSequence([self.seed, GRADIENT_CANARY_SEED, COORDINATES, round_]))
        coordinates = rng.choice(self.num_parameters, size=self.count, replace=False)
        return GradientCanaries(coordinates=coordinates.astype(np.int64),
                                included=self.included, magnitude=self.magnitude)

    def generator(self, round_: int) -> torch.Generator:
        """Round ``round_``'s stream of who joins each step (a CPU generator)."""
        import torch

        draws = np.random.SeedSequence([self.seed, GRADIENT_CANARY_SEED, JOINING, round_])
        return torch.Generator().manual_seed(int(draws.generate_state(1, np.uint64)[0] >> 1))


def plant_gradient_canaries(*, hospital: int, count: int, num_parameters: int, seed: int,
                            clip: float) -> PlantedCanaries:
    """``count`` canaries for ``hospital``, each in with probability 1/2, of magnitude
    10·``clip``, on the first ``num_parameters`` flat positions (fedray.models.
    num_trainable: the parameters, not the float buffers). Deterministic in ``seed``:
    the workers and the auditor draw the same ones."""
    one_round = make_gradient_canaries(count=count, num_parameters=num_parameters, seed=seed,
                                       clip=clip)
    return PlantedCanaries(hospital=hospital, included=one_round.included,
                           num_parameters=num_parameters, magnitude=one_round.magnitude,
                           seed=seed)


def score_rounds(rounds: Sequence[GradientCanaries], global_models: Sequence[np.ndarray]
                 ) -> np.ndarray:
    """Each canary's score from the global models the adversary saw, in order (the one
    before the first round, then one after each of ``rounds``, the canaries as they were
    in that round): the total movement of its coordinate against the gradient,
    −Σ_t (θ_t[c_{k,t}] − θ_{t−1}[c_{k,t}]). High: in."""
    if len(global_models) != len(rounds) + 1:
        raise ValueError(f"{len(rounds)} rounds need {len(rounds) + 1} global models (the "
                         f"one before them too), not {len(global_models)}")
    if not rounds:
        raise ValueError("scoring needs at least one round")
    scores = np.zeros(rounds[0].count)
    for canaries, before, after in zip(rounds, global_models, global_models[1:]):
        c = canaries.coordinates
        scores -= (np.asarray(after, dtype=np.float64)[c]
                   - np.asarray(before, dtype=np.float64)[c])
    return scores


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


class GradientCanaryScores(RunningScores):
    """The adversary's running scores at the aggregator (audit.gradient_canary): for every
    canary, its coordinates' total move against the gradient in each released change of
    the global model and, where the aggregator reads the carrying hospital's upload in
    the clear, in that upload (the hospital's model change, whose ε DP-SGD's is)."""

    def __init__(self, planted: PlantedCanaries) -> None:
        super().__init__(planted.count)
        self.planted = planted

    def observe_uploads(self, round_: int, updates: list[Update]) -> None:
        """Scores the carrying hospital's upload, if the aggregator can read it."""
        for update in updates:
            if update.hospital == self.planted.hospital and isinstance(update.payload,
                                                                       np.ndarray):
                coordinates = self.planted.of_round(round_).coordinates
                self.uploads -= np.asarray(update.payload, dtype=np.float64)[coordinates]
                self.uploads_seen += 1

    def observe_release(self, round_: int, change: np.ndarray) -> None:
        self.released -= change[self.planted.of_round(round_).coordinates]
        self.rounds += 1
