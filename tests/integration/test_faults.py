"""A hospital worker killed mid-round (faults.kill_actor_round): its hospitals lose that
round, Ray restarts the worker, the run configures it again with its hospitals' states
as they were, and the run completes with the loss in summary.json."""

import numpy as np
import pytest
from opacus.accountants import RDPAccountant

from fedray import ModelConfig, simulate
from fedray.config import FaultsConfig, PrivacyConfig, RayConfig
from tests.conftest import synthetic_config

pytestmark = pytest.mark.integration


def test_a_killed_worker_costs_its_hospitals_one_round_and_keeps_their_state(ray_local):
    result = simulate(synthetic_config(
        model=ModelConfig(name="mlp", hidden=8), num_clients=6, num_rounds=4, lr=0.1,
        ray=RayConfig(num_actors=2),
        privacy=PrivacyConfig(name="local", noise_multiplier=2.0, epsilon=None),
        faults=FaultsConfig(kill_actor_round=2, kill_actor=1)))
    s, m = result.summary, result.metrics
    [loss] = s["lost_to_failures"]
    lost = set(loss["hospitals"])
    assert loss["round"] == 2 and len(lost) == 3 and "Actor" in loss["error"]
    assert s["rounds_completed"] == 4  # the others carried every round
    accepted = m.query("client == 'global' and metric == 'accepted'")["value"].tolist()
    assert accepted == [6, 3, 6, 6]
    trained = m.query("split == 'train' and metric == 'loss'").groupby("client")["round"]
    for name, rounds in trained:
        assert sorted(rounds) == ([1, 3, 4] if name in lost else [1, 2, 3, 4])
    # Ledgers came back as they were after round 1 (not reset, not charged twice): the
    # lost hospitals spent 3 rounds' ε, the others 4 (Opacus at σ/2: replace-one).
    def opacus_epsilon(rounds):
        accountant = RDPAccountant()
        accountant.history = [(2.0 / 2, 1.0, rounds)]
        return accountant.get_epsilon(1e-5)

    spent = s["privacy"]["per_client_epsilon"]
    for name, value in spent.items():
        assert value == pytest.approx(opacus_epsilon(3 if name in lost else 4), rel=1e-6)
    assert np.isfinite(result.global_vector).all()


def test_with_partial_participation_each_hospital_gets_its_own_newest_state(ray_local):
    # Half the hospitals a round: a restarted worker's hospitals trained in different
    # rounds, and each must come back with the state of its own last round, so its
    # ledger counts exactly the rounds it trained.
    result = simulate(synthetic_config(
        num_records=800, model=ModelConfig(name="mlp", hidden=8), num_clients=8,
        num_rounds=6, fraction_per_round=0.5, lr=0.1,
        ray=RayConfig(num_actors=2), seed=3,
        privacy=PrivacyConfig(name="local", noise_multiplier=2.0, epsilon=None),
        faults=FaultsConfig(kill_actor_round=4, kill_actor=0)))
    s, m = result.summary, result.metrics
    assert [loss["round"] for loss in s["lost_to_failures"]] == [4]
    trained = m.query("split == 'train' and metric == 'loss'").groupby("client")["round"].count()

    def opacus_epsilon(rounds):
        accountant = RDPAccountant()
        accountant.history = [(1.0, 1.0, rounds)]
        return accountant.get_epsilon(1e-5)

    for name, value in s["privacy"]["per_client_epsilon"].items():
        assert value == pytest.approx(opacus_epsilon(int(trained[name])), rel=1e-6), name
