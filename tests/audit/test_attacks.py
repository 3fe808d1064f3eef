"""The audit's maths, apart from any run: each attack on a case whose answer is known."""

import math

import numpy as np
import pytest
import torch

from fedray.audit import (
    attack_summary,
    epsilon_lower_bound,
    invert_first_layer,
    make_canaries,
    one_run_p_value,
    score_reconstruction,
)
from fedray.audit.canary import audit_guesses
from fedray.config import ModelConfig
from fedray.models import build_model, flatten
from fedray.strategies import FedAvg
from fedray.training import LocalTraining, train_local


def _update(records: int, hidden=8, features=13):
    torch.manual_seed(0)
    model = build_model(ModelConfig(name="mlp", hidden=hidden), num_features=features,
                        num_classes=2)
    x = torch.randn(records, features, generator=torch.Generator().manual_seed(1))
    y = torch.randint(0, 2, (records,), generator=torch.Generator().manual_seed(2))
    start = flatten(model)
    train_local(model, x, y, settings=LocalTraining(steps=1, batch_size=records, lr=0.1),
                generator=torch.Generator().manual_seed(0), strategy=FedAvg())
    return flatten(model) - start, x.numpy()


def test_the_analytic_attack_recovers_a_single_record_exactly():
    delta, records = _update(records=1)
    candidates = invert_first_layer(delta * 0.37, inputs=13, outputs=8)  # any weight scale
    scored = score_reconstruction(candidates, records)
    assert scored["records_recovered"] == 1 and scored["best_relative_error"] < 1e-4


def test_a_batch_update_gives_mixtures_and_noise_gives_nothing():
    delta, records = _update(records=16)
    mixed = score_reconstruction(invert_first_layer(delta, inputs=13, outputs=8), records)
    assert mixed["records_recovered"] == 0
    single, record = _update(records=1)
    noised = single + np.random.default_rng(0).normal(0, 0.05, single.shape)  # local DP's step
    scored = score_reconstruction(invert_first_layer(noised, inputs=13, outputs=8), record)
    assert scored["records_recovered"] == 0 and scored["best_relative_error"] > 0.1


def test_membership_scores_separate_when_members_score_higher():
    members = np.r_[np.ones(50, bool), np.zeros(50, bool)]
    assert attack_summary(members, members * 1.0) == {"auc": 1.0, "advantage": 1.0}
    noise = np.random.default_rng(0).random(100)
    assert abs(attack_summary(members, noise)["auc"] - 0.5) < 0.15


def test_with_delta_zero_the_bound_has_its_closed_form():
    # all r guesses right: p-value q^r, q = e^ε/(1+e^ε); the bound solves q^r = 0.05
    r = 20
    bound = epsilon_lower_bound(canaries=40, guesses=r, correct=r, delta=0.0)
    q = 0.05 ** (1 / r)
    assert bound == pytest.approx(math.log(q / (1 - q)), abs=1e-5)
    assert epsilon_lower_bound(canaries=40, guesses=r, correct=r // 2, delta=0.0) == 0.0
    assert epsilon_lower_bound(canaries=40, guesses=r, correct=r, delta=1e-5) <= bound


def test_the_p_value_grows_with_epsilon_and_delta():
    values = [one_run_p_value(canaries=400, guesses=200, correct=140, epsilon=e, delta=1e-5)
              for e in (0.0, 0.5, 1.0, 2.0)]
    assert values == sorted(values) and values[0] < 1e-3
    assert (one_run_p_value(canaries=400, guesses=200, correct=140, epsilon=0.5, delta=1e-3)
            > values[1])


@pytest.mark.parametrize("epsilon", [0.5, 2.0])
def test_the_bound_stays_below_a_known_mechanisms_epsilon(epsilon):
    # Randomised response on each canary's membership is exactly ε-DP; the best guess is
    # right with probability e^ε/(1+e^ε). At 95% confidence the bound exceeds ε (the
    # p-value at the true ε is ≤ 0.05) in at most ~5% of runs.
    rng = np.random.default_rng(7)
    p_right, m = 1 / (1 + math.exp(-epsilon)), 400

    def one_run():
        included = rng.random(m) < 0.5
        response = np.where(rng.random(m) < p_right, included, ~included)
        return audit_guesses(response + rng.random(m) * 1e-3, included, m // 4)

    runs = [one_run() for _ in range(1000)]
    above = np.mean([one_run_p_value(canaries=m, epsilon=epsilon, delta=0.0, **g) <= 0.05
                     for g in runs])
    assert above <= 0.07  # 5.3% measured over 2000 runs at ε = 2
    bounds = [epsilon_lower_bound(canaries=m, delta=0.0, **g) for g in runs[:40]]
    assert np.max(bounds) < 1.5 * epsilon and np.median(bounds) > 0.3 * epsilon  # power


def test_canaries_are_the_same_for_the_hospital_and_the_auditor():
    x = np.random.default_rng(0).normal(size=(50, 5)).astype(np.float32)
    a = make_canaries(x, num_classes=2, count=40, seed=3)
    b = make_canaries(x.copy(), num_classes=2, count=40, seed=3)
    assert all(np.array_equal(u, v) for u, v in zip(a, b))
    assert a[0].dtype == np.float32 and 5 < a[2].sum() < 35


def test_optimisation_based_inversion_recovers_a_single_record():
    from fedray.audit.dlg import dlg_invert

    delta, records = _update(records=1, hidden=32)
    torch.manual_seed(0)
    start = flatten(build_model(ModelConfig(name="mlp", hidden=32), num_features=13,
                                num_classes=2))
    attacker = build_model(ModelConfig(name="mlp", hidden=32), num_features=13, num_classes=2)
    candidates = dlg_invert(attacker, start, delta * 0.37, num_records=1, num_features=13,
                            iterations=300)
    scored = score_reconstruction(candidates, records)
    assert scored["best_relative_error"] < 0.01  # scale-free: the weight does not matter


def test_the_ceiling_is_the_bound_of_a_perfect_audit_and_says_when_it_cannot_tell():
    from fedray.audit.canary import epsilon_ceiling, verdict

    # 200 canaries, 100 guesses, δ = 1e-5, 95%: even a perfect score shows ε ≥ 3.49 only,
    # below the 3.99 an ε = 4 run claims: such an audit can never register a violation
    small = epsilon_ceiling(canaries=200, guesses=100, delta=1e-5)
    assert small == pytest.approx(3.49, abs=0.01)
    assert small == epsilon_lower_bound(canaries=200, guesses=100, correct=100, delta=1e-5)
    assert verdict(lower_bound=0.26, ceiling=small, claimed=3.99) == "inconclusive at this size"
    # ten times the canaries lift the ceiling above the claim: now it can fail
    large = epsilon_ceiling(canaries=2000, guesses=1000, delta=1e-5)
    assert large > 3.99
    assert verdict(lower_bound=0.26, ceiling=large, claimed=3.99) == "not refuted"
    assert verdict(lower_bound=5.0, ceiling=large, claimed=3.99) == "violated"
    assert verdict(lower_bound=0.0, ceiling=large, claimed=None) == "no ε claimed"


def test_a_model_user_who_saw_every_round_finds_what_the_final_model_forgot():
    from fedray.audit.membership import every_round_membership, membership_attacks

    rng = np.random.default_rng(0)
    members = np.arange(400) < 200
    initial = np.ones(400)
    # round 2 memorised the members (their loss dropped), round 3 forgot them again
    rounds = [initial - 0.1 * rng.random(400) for _ in range(3)]
    rounds[1] = rounds[1] - 0.5 * members
    final = membership_attacks(members, rounds[-1], initial)["calibrated"]["auc"]
    seen = every_round_membership(members, initial, rounds)
    assert abs(final - 0.5) < 0.1  # the last model alone shows nothing
    assert seen["best_round"] == 2 and seen["best_round_auc"] > 0.99
    assert seen["largest_drop"]["auc"] > 0.99 and seen["rounds"] == 3
