"""Every strategy end to end on a real local Ray: under CKKS encryption, under DP-SGD
(the local objective must survive Opacus), and the two reference runs."""

import numpy as np
import pytest

from fedray import ModelConfig, PartitionConfig, simulate
from fedray.config import EncryptionConfig, PrivacyConfig, StrategyConfig, TrainingConfig
from fedray.models import initial_parameters
from tests.conftest import synthetic_config

pytestmark = pytest.mark.integration


def _config(strategy, **overrides):
    base = dict(
        num_records=600, partition=PartitionConfig(name="dirichlet", alpha=0.5),
        model=ModelConfig(name="mlp", hidden=8), num_clients=3, num_rounds=2, lr=0.1,
        strategy=strategy,
    )
    return synthetic_config(**{**base, **overrides})


@pytest.mark.parametrize("name", ["fedavg", "fedprox", "scaffold", "fedadam", "fedyogi",
                                  "fedadagrad", "fedbn"])
def test_every_strategy_runs_under_ckks(ray_local, name):
    extra = {"model": ModelConfig(name="mlp", hidden=8, batchnorm=True)} if name == "fedbn" \
        else {}
    result = simulate(_config(StrategyConfig(name=name, server_lr=0.5),
                              encryption=EncryptionConfig(name="ckks", preset="n4096"), **extra))
    s = result.summary
    assert s["rounds_completed"] == 2 and not s["rejected_updates"]
    assert np.all(np.isfinite(result.global_vector)) and 0.0 < s["accuracy"] <= 1.0


def test_scaffold_control_variates_survive_encryption(ray_local):
    # the control variates ride the ciphertexts too: a lost or garbled Δc would change
    # the correction every hospital applies, and the encrypted run would drift away
    strategy = StrategyConfig(name="scaffold")
    plain = simulate(_config(strategy, num_rounds=3))
    encrypted = simulate(_config(strategy, num_rounds=3,
                                 encryption=EncryptionConfig(name="ckks", preset="n4096")))
    assert np.max(np.abs(encrypted.global_vector - plain.global_vector)) < 1e-4
    fedavg = simulate(_config(StrategyConfig(name="fedavg"), num_rounds=3))
    assert np.max(np.abs(fedavg.global_vector - plain.global_vector)) > 1e-3  # c mattered


def test_dpsgd_keeps_the_strategy_local_objective(ray_local):
    # same seed, same DP noise draws: if Opacus's path ignored FedProx's proximal term,
    # both runs would produce the same model
    dpsgd = PrivacyConfig(name="dpsgd", noise_multiplier=1.0)
    fedavg = simulate(_config(StrategyConfig(name="fedavg"), privacy=dpsgd, local_steps=5))
    fedprox = simulate(_config(StrategyConfig(name="fedprox", mu=5.0), privacy=dpsgd,
                               local_steps=5))
    assert not np.allclose(fedavg.global_vector, fedprox.global_vector, atol=1e-6)
    # the pull towards the global model shrinks the update
    start = initial_parameters(ModelConfig(name="mlp", hidden=8), num_features=13,
                               num_classes=2, seed=0)
    assert (np.linalg.norm(fedprox.global_vector - start)
            < np.linalg.norm(fedavg.global_vector - start))


def test_reference_runs_local_and_pooled(ray_local):
    local = simulate(_config(StrategyConfig(name="local"), optimizer="adam", lr=0.01))
    cross = local.summary["local_cross_accuracy"]
    assert set(cross) == set(local.summary["per_client_accuracy"])
    for name, tests in cross.items():
        assert tests[name] == local.summary["per_client_accuracy"][name]  # own test
        assert len(tests) == 3
    pooled = simulate(_config(StrategyConfig(name="pooled"), optimizer="adam", lr=0.01))
    losses = pooled.metrics.query("split == 'train' and metric == 'loss'")
    assert set(losses["client"]) == {"pooled"}  # one trainer on the union
    assert pooled.summary["rounds_completed"] == 2


def test_fedbn_under_local_dp_never_moves_batchnorm_on_the_server(ray_local):
    # the noise lands on every coordinate of the sum; the BatchNorm positions of the
    # global model must stay the initial ones, so no hospital ever starts from noise
    model = ModelConfig(name="mlp", hidden=8, batchnorm=True)
    result = simulate(_config(StrategyConfig(name="fedbn"), model=model,
                              privacy=PrivacyConfig(name="local", noise_multiplier=1.0)))
    from fedray.models import build_model
    from fedray.strategies import FedBN

    kept = FedBN().local_positions(build_model(model, num_features=13, num_classes=2))
    initial = initial_parameters(model, num_features=13, num_classes=2, seed=0)
    assert np.array_equal(result.global_vector[kept], initial[kept])
    assert not np.allclose(result.global_vector[~kept], initial[~kept])


@pytest.mark.parametrize("strategy, privacy", [
    ("fedprox", PrivacyConfig(name="local", epsilon=8.0)),
    ("scaffold", PrivacyConfig(name="none")),
])
def test_hospitals_trained_together_give_the_runs_model(ray_local, strategy, privacy):
    """training.batched: the workers' stacked path against their per-hospital loop, in
    a real run (uneven hospitals, 2 rounds): FedProx's pull under local DP's noise on
    the same deltas; SCAFFOLD's correction from each hospital's own control variate,
    updated between the rounds (every strategy's local steps: tests/test_batched.py)."""
    shape = dict(num_records=300, num_clients=3, num_rounds=2, model=ModelConfig(name="mlp"),
                 partition=PartitionConfig(name="dirichlet", alpha=1.0),
                 strategy=StrategyConfig(name=strategy, mu=0.1), privacy=privacy)
    alone = simulate(synthetic_config(training=TrainingConfig(batched="false"), **shape))
    together = simulate(synthetic_config(training=TrainingConfig(batched="true"), **shape))
    assert together.summary["training"]["batched"] is True
    assert alone.summary["training"]["not_batched_because"] == "training.batched=false"
    assert np.abs(together.global_vector - alone.global_vector).max() <= 1e-5
