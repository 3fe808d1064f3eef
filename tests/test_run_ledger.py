"""The run's ledger charges exactly the rounds that were released."""

import pytest

from fedray.config import EncryptionConfig, ModelConfig, PrivacyConfig, SimulationConfig
from fedray.models import build_model
from fedray.privacy import epsilon_spent, make_privacy_plan


def _ledger(mode, **top):
    """σ = 1 and a budget of exactly two rounds' ε under the mode's own mechanism."""
    if mode == "distributed":
        top["encryption"] = EncryptionConfig(name="ckks")
    model = build_model(ModelConfig(), num_features=13, num_classes=2)

    def plan(epsilon):
        config = SimulationConfig(privacy=PrivacyConfig(name=mode, noise_multiplier=1.0,
                                                        epsilon=epsilon), **top)
        return make_privacy_plan(config, train_sizes=[10, 10, 10, 10], model=model)

    two_rounds = plan(None).run_ledger().ledger.epsilon_after(2)
    return plan(two_rounds).run_ledger()


def test_central_charges_every_round_when_it_is_dispatched():
    run = _ledger("central")
    assert run.can_start_round() and run.dispatched() and run.ledger.steps == 1
    assert not run.settled(released=False)  # released anyway: noise on an empty sum
    assert run.dispatched() and run.ledger.steps == 2
    assert not run.can_start_round()  # the budget holds exactly two releases


def test_distributed_charges_released_rounds_only_and_counts_rounds_in_flight():
    run = _ledger("distributed")
    assert not run.dispatched() and run.ledger.steps == 0  # in flight, not yet charged
    assert run.can_start_round()  # round 1 in flight + round 2: two, affordable
    run.dispatched()
    assert not run.can_start_round()  # three possibly released rounds: over budget
    assert not run.settled(released=False)  # round 1 withheld: costs nothing
    assert run.can_start_round()
    assert run.settled(released=True) and run.ledger.steps == 1
    assert run.ledger.epsilon == pytest.approx(run.ledger.epsilon_after(1))
    # the Skellam mechanism's ε, never below the Gaussian's at the same σ
    assert run.ledger.epsilon >= epsilon_spent(((1.0, 1.0, 1),), delta=1e-5, accountant="rdp")


def test_a_restarted_worker_gets_each_hospitals_own_newest_state():
    from fedray.orchestrator import own_newest_states

    round_2 = {"x": "x after 2", "y": "y after 2"}  # x and y trained in round 2,
    round_3 = {"y": "y after 3"}                    # y alone in round 3
    latest = {"y": "r3", "x": "r2", "z": "r3"}      # (z: not on this worker)
    batches = {"r2": round_2, "r3": {**round_3, "z": "z after 3"}}
    reads = []

    def read(ref):
        reads.append(ref)
        return batches[ref]

    assert own_newest_states(latest, {"x", "y"}, read) == {"x": "x after 2", "y": "y after 3"}
    assert sorted(reads) == ["r2", "r3"]  # each saved batch read once


@pytest.mark.parametrize("mode", ["none", "local", "dpsgd"])
def test_a_run_that_spends_nothing_itself_has_a_null_ledger(mode):
    from fedray.privacy.steps import NoRunLedger

    privacy = (PrivacyConfig() if mode == "none"
               else PrivacyConfig(name=mode, noise_multiplier=1.0))
    config = SimulationConfig(privacy=privacy)
    model = build_model(ModelConfig(), num_features=13, num_classes=2)
    ledger = make_privacy_plan(config, train_sizes=[10, 10, 10, 10], model=model).run_ledger()
    assert isinstance(ledger, NoRunLedger)
    assert ledger.can_start_round() and not ledger.dispatched() and ledger.epsilon is None
