"""The client-canary audit's maths (fedray/audit/client_canary.py), without Ray: the GDP
conversion against dp-accounting, the scores on a Gaussian mechanism simulated here in
numpy (so μ is known), and the controls: the estimate tracks the noise it is shown."""

import math

import numpy as np
import pytest
from dp_accounting import dp_event, pld

from fedray.audit.client_canary import (
    CanaryClients,
    CanaryScores,
    audit_scores,
    client_canary_audit,
    gaussian_fit,
    gdp_epsilon,
)

DELTA = 1e-5


def _pld_epsilon(sigma: float, rounds: int) -> float:
    accountant = pld.PLDAccountant(value_discretization_interval=1e-4)
    accountant.compose(dp_event.GaussianDpEvent(sigma), rounds)
    return accountant.get_epsilon(DELTA)


@pytest.mark.parametrize("sigma, rounds", [(12.8, 10), (3.66, 10), (2.0, 10), (5.2, 20)])
def test_gdp_epsilon_is_the_composed_gaussian_mechanism_of_dp_accounting(sigma, rounds):
    # T Gaussian mechanisms at noise σ (sensitivity 1) are exactly √T/σ-GDP
    ours = gdp_epsilon(math.sqrt(rounds) / sigma, DELTA)
    assert ours == pytest.approx(_pld_epsilon(sigma, rounds), rel=5e-3)


def test_gdp_epsilon_is_zero_without_signal_and_finite_or_infinite_without_overflow():
    assert gdp_epsilon(0.0, DELTA) == 0.0 and gdp_epsilon(-1.0, DELTA) == 0.0
    assert gdp_epsilon(1e-6, DELTA) == 0.0  # δ(0) ≈ 0.4·μ is already below δ
    assert 1000 < gdp_epsilon(60.0, DELTA) < math.inf
    assert gdp_epsilon(1e4, DELTA) == math.inf


def _canaries(count=400, dimension=2000, out_sign=0.0):
    return CanaryClients(count=count, first=4, dimension=dimension, norm=1.0, seed=7,
                         out_sign=out_sign)


def test_canary_updates_are_unit_directions_fresh_each_round_and_out_as_the_relation_says():
    add_remove, replace = _canaries(), _canaries(out_sign=-1.0)
    first, second = add_remove.direction(3, 1), add_remove.direction(3, 2)
    assert np.linalg.norm(first) == pytest.approx(1.0) and abs(first @ second) < 0.2
    assert np.array_equal(add_remove.direction(3, 1), first)  # the auditor redraws it
    assert np.array_equal(add_remove.update(3, 1, included=True), first)
    assert not np.any(add_remove.update(3, 1, included=False))
    assert np.array_equal(replace.update(3, 1, included=False), -first)
    included = add_remove.included()
    assert 150 < included.sum() < 250 and np.array_equal(included, _canaries().included())
    with pytest.raises(ValueError, match="out_sign"):
        _canaries(out_sign=0.5)


def _simulated_run(canaries, *, sigma, rounds, seed=0, noise_scale=1.0):
    """Central DP in numpy: the released change is the in-canaries' updates plus
    N(0, σ²) per coordinate (clip 1, weight 1); ``noise_scale`` breaks it."""
    rng = np.random.default_rng(seed)
    included = canaries.included()
    scores = CanaryScores(canaries)
    for round_ in range(1, rounds + 1):
        directions = canaries.directions(round_)
        change = directions[included].sum(axis=0)
        change += noise_scale * sigma * rng.standard_normal(canaries.dimension)
        scores.observe_release(round_, change)
    return scores.scores(), included


def test_the_scores_of_a_gaussian_mechanism_give_its_mu():
    canaries, sigma, rounds = _canaries(), 3.0, 10
    scores, included = _simulated_run(canaries, sigma=sigma, rounds=rounds)
    fit = gaussian_fit(scores["released"][included], scores["released"][~included],
                       delta=DELTA, confidence=0.95)
    truth = math.sqrt(rounds) / sigma  # 1.054; the fit's standard error is ~0.1
    assert abs(fit["mu"] - truth) < 0.3
    assert fit["mu_lower"] < truth < fit["mu"] + 0.3
    assert fit["epsilon_lower"] <= gdp_epsilon(truth, DELTA)


def test_controls_the_estimate_rises_when_the_noise_is_removed_and_stays_below_when_kept():
    canaries, sigma, rounds = _canaries(), 3.0, 10
    claimed = gdp_epsilon(math.sqrt(rounds) / sigma, DELTA)  # 4.6: the exact ε
    scores, included = _simulated_run(canaries, sigma=sigma, rounds=rounds)
    kept = audit_scores(scores["released"], included, delta=DELTA, confidence=0.95,
                        claimed=claimed)
    assert kept["gaussian_fit"]["verdict"] == "not refuted"
    assert kept["gaussian_fit"]["epsilon_lower"] <= claimed and kept["tightness"] > 0.5
    scores, included = _simulated_run(canaries, sigma=sigma, rounds=rounds, noise_scale=0.01)
    broken = audit_scores(scores["released"], included, delta=DELTA, confidence=0.95,
                          claimed=claimed)
    assert broken["gaussian_fit"]["verdict"] == "violated"
    assert broken["gaussian_fit"]["epsilon_lower"] > 3 * claimed
    assert broken["one_run"]["correct"] == broken["one_run"]["guesses"]  # every guess right


def test_the_deciding_view_is_each_upload_only_where_the_epsilon_is_about_it():
    canaries = _canaries(count=40, dimension=100)
    rng = np.random.default_rng(1)
    scores = {"released": rng.standard_normal(40), "uploads": rng.standard_normal(40),
              "rounds": 3, "uploads_seen": 120}
    local = client_canary_audit(canaries.included(), scores, claimed=4.0, delta=DELTA,
                                confidence=0.95, per_upload=True)
    central = client_canary_audit(canaries.included(), scores, claimed=4.0, delta=DELTA,
                                  confidence=0.95, per_upload=False)
    assert local["deciding_view"] == "each canary's own upload"
    assert central["deciding_view"] == "released model changes"
    assert "each canary's own upload" not in central  # the trusted server's view
    assert local["epsilon_empirical"] == local["each canary's own upload"]["gaussian_fit"][
        "epsilon"]
