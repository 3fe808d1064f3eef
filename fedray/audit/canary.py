"""Canary audit in one training run (Steinke, Nasr and Jagielski, NeurIPS 2023).

m canary records go into one hospital, each independently with probability 1/2. After
the run, the auditor scores every canary with the released model, guesses "in" for
the k highest scores and "out" for the k lowest, and counts v correct of r = 2k
guesses. If training is (ε, δ)-DP for each canary, then the number of correct guesses
is bounded as their (ε, δ) result states: P[V ≥ v] ≤ β + 2mδ·α, with
β = P[Binomial(r, e^ε/(1+e^ε)) ≥ v] and α = max over i = 1..v of
(P[Binomial(r, e^ε/(1+e^ε)) ≥ v − i] − β)/i. The empirical lower bound is the largest ε
that this p-value rejects at the chosen confidence.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from scipy.optimize import brentq
from scipy.stats import binom

CANARY_SEED = 0xCA7A
# canaries: each feature drawn with twice the hospital's own spread (so about 2·√d std
# from its mean in d dimensions), with random labels: easy to memorise, as an audit wants
OUTLIER_SCALE = 2.0


def make_canaries(x_train: np.ndarray, *, num_classes: int, count: int, seed: int
                  ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``count`` canary records (features around the hospital's own distribution, with
    random labels), and which of them are included (a fair coin each). Deterministic in
    ``seed``: the auditor draws the same ones."""
    rng = np.random.default_rng(np.random.SeedSequence([seed, CANARY_SEED]))
    mean, std = x_train.mean(axis=0), x_train.std(axis=0) + 1e-6
    features = mean + OUTLIER_SCALE * std * rng.standard_normal((count, x_train.shape[1]))
    labels = rng.integers(0, num_classes, count)
    included = rng.random(count) < 0.5
    return features.astype(x_train.dtype), labels, included


def one_run_p_value(*, canaries: int, guesses: int, correct: int, epsilon: float,
                    delta: float) -> float:
    """The probability of at least ``correct`` right guesses out of ``guesses`` if the
    training run were (ε, δ)-DP for each of ``canaries`` canaries."""
    q = 1.0 / (1.0 + math.exp(-epsilon))
    beta = float(binom.sf(correct - 1, guesses, q))
    if delta == 0 or correct == 0:
        return beta
    shifts = np.arange(1, correct + 1)
    alpha = float(np.max((binom.sf(correct - shifts - 1, guesses, q) - beta) / shifts))
    return min(beta + 2 * canaries * delta * max(alpha, 0.0), 1.0)


def epsilon_lower_bound(*, canaries: int, guesses: int, correct: int, delta: float,
                        confidence: float = 0.95) -> float:
    """The largest ε the guesses refute with probability ``confidence`` (0 if none)."""
    significance = 1.0 - confidence

    def refuted_by(epsilon: float) -> float:  # > 0: the guesses refute (ε, δ)-DP
        return significance - one_run_p_value(canaries=canaries, guesses=guesses,
                                              correct=correct, epsilon=epsilon, delta=delta)

    if guesses == 0 or refuted_by(0.0) <= 0:
        return 0.0
    high = 1.0
    while refuted_by(high) > 0:
        if high > 1e3:
            return math.inf
        high *= 2
    return float(brentq(refuted_by, 0.0, high, xtol=1e-6))


def epsilon_ceiling(*, canaries: int, guesses: int, delta: float,
                    confidence: float = 0.95) -> float:
    """The largest ε this audit could ever show: its bound when every guess is right. An
    audit whose ceiling is below the ε it checks cannot register a violation of it."""
    return epsilon_lower_bound(canaries=canaries, guesses=guesses, correct=guesses,
                               delta=delta, confidence=confidence)


def verdict(*, lower_bound: float, ceiling: float, claimed: float | None) -> str:
    """What the audit says about the ``claimed`` ε: never that it "holds"."""
    if claimed is None:
        return "no ε claimed"
    if lower_bound > claimed:
        return "violated"
    if ceiling <= claimed:
        return "inconclusive at this size"
    return "not refuted"


def audit_guesses(scores: np.ndarray, included: np.ndarray, guesses_per_side: int
                  ) -> dict[str, Any]:
    """Guess "in" for the top ``guesses_per_side`` scores, "out" for the bottom ones."""
    order = np.argsort(scores, kind="stable")
    out_guess, in_guess = order[:guesses_per_side], order[len(order) - guesses_per_side:]
    correct = int(np.sum(included[in_guess]) + np.sum(~included[out_guess]))
    return {"guesses": 2 * guesses_per_side, "correct": correct}
