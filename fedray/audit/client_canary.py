"""Client-level canary audit in one run (Andrew et al., ICLR 2024, "One-shot empirical
privacy estimation for federated learning"), for client-level DP (local, central,
distributed).

m canary clients join the federation. Canary k is *in* with probability 1/2 (a seeded
coin the auditor keeps). In round t an in-canary's update is ``norm · c_{k,t}``, a unit
direction drawn afresh each round from the canary's own seed (fresh directions keep the
m canaries from adding up coherently over the rounds in a small model); an out-canary
sends what the mode's neighbouring relation puts in its place: nothing (a zero update:
add/remove, zero-out) or the opposite direction (replace-one, local DP). No training is
needed, so thousands are cheap.

The adversary who sees every released round scores canary k by Σ_t cos(c_{k,t}, Δ_t)
over the rounds it sees (Δ_t: the released change of the global model, or canary k's
own upload where that is what the mechanism releases). With Gaussian noise and the
canary in every round, that sum is the Neyman–Pearson statistic, and the in- and
out-scores are two Gaussians whose separation μ = (mean_in − mean_out) / sd is exactly
the mechanism's Gaussian-DP μ (Dong, Roth and Su 2022): √T / σ' for T rounds at noise σ'
per unit of sensitivity. The estimate is the ε of μ-GDP at the run's δ, with a one-sided
lower confidence bound from the standard error of μ; it rests on the Gaussian fit (the
paper's assumption) and is an estimate, not a proof. The same scores also give the
one-run bound of fedray/audit/canary.py (no assumption, but loose and capped by its
ceiling).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy.optimize import brentq
from scipy.stats import norm

from fedray.audit.canary import audit_guesses, epsilon_ceiling, epsilon_lower_bound, verdict
from fedray.messages import Update

CLIENT_CANARY_SEED = 0xC11E
COIN_STREAM = 0  # the in/out coins; canary k's round-t direction: [seed, tag, k + 1, t]


@dataclass(frozen=True)
class CanaryClients:
    """The canaries of a run: ``count`` of them, numbered ``first`` .. first+count−1
    among the run's clients, each update of L2 norm ``norm`` (the clip C) in
    ``dimension`` coordinates; an out-canary sends ``-1`` times (replace-one) or ``0``
    times (add/remove, zero-out) the in-update."""

    count: int
    first: int
    dimension: int
    norm: float
    seed: int
    out_sign: float = 0.0

    def __post_init__(self) -> None:
        if self.out_sign not in (0.0, -1.0):
            raise ValueError(f"out_sign={self.out_sign}: must be 0 (absent) or -1 (opposite)")

    @property
    def indices(self) -> range:
        return range(self.first, self.first + self.count)

    def included(self) -> np.ndarray:
        """Which canaries are in (a fair coin each); the auditor's secret."""
        rng = np.random.default_rng(np.random.SeedSequence(
            [self.seed, CLIENT_CANARY_SEED, COIN_STREAM]))
        return rng.random(self.count) < 0.5

    def direction(self, canary: int, round_: int) -> np.ndarray:
        """Canary ``canary``'s (0-based) unit direction in round ``round_``."""
        rng = np.random.default_rng(np.random.SeedSequence(
            [self.seed, CLIENT_CANARY_SEED, canary + 1, round_]))
        vector = rng.standard_normal(self.dimension)
        return vector / np.linalg.norm(vector)

    def directions(self, round_: int) -> np.ndarray:
        """Every canary's direction in round ``round_``, one row each."""
        return np.stack([self.direction(k, round_) for k in range(self.count)])

    def update(self, canary: int, round_: int, *, included: bool) -> np.ndarray:
        """What canary ``canary`` sends in round ``round_`` before the privacy steps."""
        sign = 1.0 if included else self.out_sign
        return sign * self.norm * self.direction(canary, round_)


def cosines(directions: np.ndarray, change: np.ndarray) -> np.ndarray:
    """cos(c_k, change) for each unit row c_k (0 where the change is zero)."""
    length = float(np.linalg.norm(change))
    return directions @ change / length if length > 0 else np.zeros(len(directions))


def gdp_delta(mu: float, epsilon: float) -> float:
    """δ(ε) of μ-Gaussian DP (Dong, Roth and Su 2022, Corollary 2.13)."""
    return float(norm.cdf(-epsilon / mu + mu / 2)
                 - math.exp(epsilon + norm.logcdf(-epsilon / mu - mu / 2)))


def gdp_epsilon(mu: float, delta: float) -> float:
    """The ε at which μ-GDP meets δ (0 when μ ≤ 0 or already below δ at ε = 0)."""
    if mu <= 0 or gdp_delta(mu, 0.0) <= delta:
        return 0.0
    high = 1.0
    while gdp_delta(mu, high) > delta:
        high *= 2
        if high > 1e4:
            return math.inf
    return float(brentq(lambda e: gdp_delta(mu, e) - delta, 0.0, high, xtol=1e-9))


def gaussian_fit(in_scores: np.ndarray, out_scores: np.ndarray, *, delta: float,
                 confidence: float) -> dict[str, float]:
    """μ from the two score samples (pooled standard deviation), its one-sided lower
    confidence bound (the standard error of a standardised mean difference), and
    the ε of each at ``delta``."""
    n_in, n_out = len(in_scores), len(out_scores)
    pooled = math.sqrt(((n_in - 1) * np.var(in_scores, ddof=1)
                        + (n_out - 1) * np.var(out_scores, ddof=1)) / (n_in + n_out - 2))
    gap = float(np.mean(in_scores) - np.mean(out_scores))
    mu = gap / pooled if pooled > 0 else (math.inf if gap > 0 else 0.0)
    error = math.sqrt((n_in + n_out) / (n_in * n_out) + mu ** 2 / (2 * (n_in + n_out)))
    mu_lower = mu - float(norm.ppf(confidence)) * error
    return {"mu": mu, "mu_lower": mu_lower, "epsilon": gdp_epsilon(mu, delta),
            "epsilon_lower": gdp_epsilon(mu_lower, delta)}


def audit_scores(scores: np.ndarray, included: np.ndarray, *, delta: float,
                 confidence: float, claimed: float | None) -> dict[str, Any]:
    """Both estimates from the canaries' scores, each with its verdict on ``claimed``:
    the Gaussian fit (its lower bound decides; no ceiling short of the canaries'
    precision) and the one-run bound with its ceiling."""
    fit = gaussian_fit(scores[included], scores[~included], delta=delta,
                       confidence=confidence)
    guesses = audit_guesses(scores, included, len(scores) // 4)
    lower = epsilon_lower_bound(canaries=len(scores), delta=delta, confidence=confidence,
                                **guesses)
    ceiling = epsilon_ceiling(canaries=len(scores), guesses=guesses["guesses"], delta=delta,
                              confidence=confidence)
    return {
        "gaussian_fit": {**fit, "verdict": verdict(lower_bound=fit["epsilon_lower"],
                                                   ceiling=math.inf, claimed=claimed)},
        "one_run": {**guesses, "epsilon_lower_bound": lower, "epsilon_ceiling": ceiling,
                    "verdict": verdict(lower_bound=lower, ceiling=ceiling, claimed=claimed)},
        "tightness": (fit["epsilon"] / claimed if claimed and math.isfinite(fit["epsilon"])
                      else None),
    }


class NoCanaryScores:
    """No client-canary audit: the aggregator scores nothing."""

    def observe_uploads(self, round_: int, updates: list[Update]) -> None:
        """Nothing to score."""

    def observe_release(self, round_: int, change: np.ndarray) -> None:
        """Nothing to score."""

    def scores(self) -> dict[str, Any] | None:
        return None

    def state_dict(self) -> None:
        return None

    def load_state_dict(self, state: None) -> None:
        """Nothing to restore."""


class RunningScores:
    """The adversary's running sums at the aggregator, one per canary: over the released
    changes of the global model and over the uploads it reads in the clear. Subclasses
    say how a canary scores (``observe_uploads``, ``observe_release``)."""

    def __init__(self, count: int) -> None:
        self.released = np.zeros(count)
        self.uploads = np.zeros(count)
        self.rounds = 0
        self.uploads_seen = 0

    def scores(self) -> dict[str, Any]:
        return {"released": self.released, "uploads": self.uploads if self.uploads_seen
                else None, "rounds": self.rounds, "uploads_seen": self.uploads_seen}

    def state_dict(self) -> dict[str, Any]:
        """The running sums (a resumed run keeps scoring where it stopped)."""
        return {"released": self.released.copy(), "uploads": self.uploads.copy(),
                "rounds": self.rounds, "uploads_seen": self.uploads_seen}

    def load_state_dict(self, state: dict[str, Any] | None) -> None:
        if state is None:  # a checkpoint of a run without these canaries
            raise ValueError("the checkpoint holds no canary scores to resume")
        self.released, self.uploads = np.array(state["released"]), np.array(state["uploads"])
        self.rounds, self.uploads_seen = int(state["rounds"]), int(state["uploads_seen"])


class CanaryScores(RunningScores):
    """The adversary's running scores at the aggregator: for every canary, the sum over
    released rounds of its cosine with the released change of the global model and,
    where the aggregator sees each upload in the clear, with its own upload."""

    def __init__(self, canaries: CanaryClients) -> None:
        super().__init__(canaries.count)
        self.canaries = canaries
        self._drawn: tuple[int, np.ndarray] | None = None  # (round, its directions)

    def _directions(self, round_: int) -> np.ndarray:
        """The round's directions, drawn once for its uploads and its release."""
        if self._drawn is None or self._drawn[0] != round_:
            self._drawn = (round_, self.canaries.directions(round_))
        return self._drawn[1]

    def observe_uploads(self, round_: int, updates: list[Update]) -> None:
        """Scores each canary's upload the aggregator can read (a ciphertext it cannot)."""
        canaries = self.canaries
        for update in updates:
            k = update.hospital - canaries.first
            if 0 <= k < canaries.count and isinstance(update.payload, np.ndarray):
                self.uploads[k] += float(cosines(self._directions(round_)[k][None],
                                                 update.payload[:canaries.dimension])[0])
                self.uploads_seen += 1

    def observe_release(self, round_: int, change: np.ndarray) -> None:
        self.released += cosines(self._directions(round_), change[:self.canaries.dimension])
        self.rounds += 1


UPLOAD_VIEW = "each canary's own upload"
RELEASE_VIEW = "released model changes"


def client_canary_audit(included: np.ndarray, scores: dict[str, Any], *,
                        claimed: float | None, delta: float | None, confidence: float,
                        per_upload: bool, upload_view: str = UPLOAD_VIEW) -> dict[str, Any]:
    """The audit's result from the adversary's ``scores`` (:class:`CanaryScores`, or
    fedray/audit/gradient_canary.py's) of canaries whose coins are ``included``. The
    view that decides is what the mechanism releases: the own upload (named
    ``upload_view``) when ``per_upload`` (local DP, DP-SGD: their ε is about the upload)
    and the aggregator read it in the clear; the released changes of the global model
    otherwise (then both are shown). Elsewhere a clear upload is the trusted server's
    (central) and not scored."""
    audit_delta = delta if delta is not None else 1e-5
    views = {RELEASE_VIEW: scores["released"]}
    if per_upload and scores.get("uploads") is not None:
        views[upload_view] = scores["uploads"]
    deciding = upload_view if len(views) > 1 else RELEASE_VIEW
    result: dict[str, Any] = {
        "canaries": len(included), "included": int(included.sum()),
        "rounds_seen": scores["rounds"], "delta": audit_delta, "confidence": confidence,
        "epsilon_accountant": claimed, "deciding_view": deciding,
        "estimator": "Gaussian fit of in/out scores (Andrew et al. 2024); one-run bound "
                     "(Steinke et al. 2023) beside it",
    }
    for name, values in views.items():
        result[name] = audit_scores(np.asarray(values), included, delta=audit_delta,
                                    confidence=confidence, claimed=claimed)
    decided = result[deciding]
    result["epsilon_empirical"] = decided["gaussian_fit"]["epsilon"]
    result["epsilon_empirical_lower"] = decided["gaussian_fit"]["epsilon_lower"]
    result["verdict"] = decided["gaussian_fit"]["verdict"]
    return result
