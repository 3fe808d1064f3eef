"""End-to-end runs on a real local Ray instance (one per test session)."""

import json

import numpy as np
import pandas as pd
import pytest
import ray

from fedray import ConfigError, ModelConfig, PartitionConfig, RayConfig, SimulationConfig, simulate
from fedray.pipeline import RoundBroadcast, Update
from fedray.privacy import PrivacyPlan
from fedray.runtime.aggregator_worker import AggregatorWorker
from tests.conftest import synthetic_config

pytestmark = pytest.mark.integration


def _synthetic(**overrides):
    base = dict(
        num_records=600, partition=PartitionConfig(name="dirichlet", alpha=1.0),
        model=ModelConfig(name="mlp", hidden=16),
        num_clients=6, num_rounds=3, lr=0.1,
    )
    return synthetic_config(**{**base, **overrides})


def test_heart_disease_run_writes_the_output_contract(ray_local, tmp_path):
    config = SimulationConfig(num_rounds=3, output_dir=str(tmp_path), progress=False,
                              personalize_steps=5)
    result = simulate(config)
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert [c["name"] for c in summary["clients"]] == [
        "Cleveland", "Hungary", "Switzerland", "VA Long Beach"]
    assert summary["rounds_completed"] == 3
    assert set(summary["per_client_accuracy"]) == {c["name"] for c in summary["clients"]}
    assert summary["mean_client_accuracy"] == pytest.approx(
        np.mean(list(summary["per_client_accuracy"].values())))
    assert summary["accuracy"] > 0.6  # better than the majority class of the pooled test
    assert summary["epsilon"] is None and summary["noise_multiplier"] is None
    assert summary["bytes_uploaded"] == 3 * 4 * 14 * 4  # rounds x hospitals x params x f32
    assert set(summary["seconds"]) == {"train", "encrypt", "aggregate", "decrypt"}
    metrics = pd.read_csv(tmp_path / "metrics.csv")
    assert list(metrics.columns) == ["round", "client", "split", "metric", "value"]
    final = metrics[(metrics["round"] == 3) & (metrics["metric"] == "accuracy")]
    assert set(final["client"]) == {"Cleveland", "Hungary", "Switzerland", "VA Long Beach",
                                    "global"}
    assert (tmp_path / "accuracy.png").stat().st_size > 1000
    assert result.accuracy == summary["accuracy"]
    accuracies = list(summary["per_client_accuracy"].values())
    assert summary["worst_client_accuracy"] == min(accuracies)
    assert summary["client_accuracy_gap"] == pytest.approx(max(accuracies) - min(accuracies))
    assert summary["client_accuracy_std"] == pytest.approx(np.std(accuracies))
    worst = metrics.query("client == 'global' and metric == 'worst_client_accuracy'")
    assert worst["round"].tolist() == [1, 2, 3]
    personalized = summary["per_client_accuracy_personalized"]
    assert set(personalized) == set(summary["per_client_accuracy"])
    assert personalized != summary["per_client_accuracy"]  # 5 own steps change the model
    assert len(metrics.query("split == 'personalized'")) == 3 * 4


def test_same_seed_same_model_whatever_the_actor_layout(ray_local):
    one = simulate(_synthetic(ray=RayConfig(num_actors=1)))
    two = simulate(_synthetic(ray=RayConfig(num_actors=2)))
    assert two.summary["num_actors"] == 2
    assert np.array_equal(one.global_vector, two.global_vector)
    other_seed = simulate(_synthetic(seed=1))
    assert not np.array_equal(one.global_vector, other_seed.global_vector)


def test_many_hospitals_share_few_actors(ray_local):
    result = simulate(_synthetic(num_clients=40, num_rounds=2, fraction_per_round=0.5,
                                 partition=PartitionConfig(name="iid")))
    assert result.summary["num_actors"] <= 2
    participants = result.metrics.query("metric == 'participants'")["value"]
    assert participants.tolist() == [20, 20]
    assert len(result.summary["per_client_accuracy"]) == 40


def test_bad_partition_is_a_config_error_before_training(ray_local):
    with pytest.raises(ConfigError, match="num_clients=400"):
        simulate(_synthetic(num_clients=400, partition=PartitionConfig(name="iid")))


def test_aggregator_actor_rejects_and_reports_bad_updates(ray_local):
    no_privacy = PrivacyPlan(mode="none", clip=1.0, delta=1e-5, accountant="rdp", budget=None,
                             parties={})
    aggregator = ray.remote(num_cpus=0)(AggregatorWorker).remote()
    ray.get(aggregator.configure.remote(SimulationConfig(), no_privacy, 3))
    good = Update(0, np.full(14, 0.5, np.float32))  # payloads arrive weighted
    poisoned = Update(1, np.array([1, np.nan] + [1] * 12, np.float32))
    wrong_shape = Update(2, np.ones(5, np.float32))
    batches = [ray.put([good, poisoned]), ray.put([wrong_shape])]
    broadcast, result = ray.get(aggregator.aggregate.options(num_returns=2).remote(
        batches, RoundBroadcast(np.zeros(14, np.float32)), {0: 0.5, 1: 0.5, 2: 0.5}))
    assert np.allclose(broadcast.global_vector, 1.0)  # only the good update counts
    assert result.broadcast is None and result.server_state is None  # no model in the report
    assert result.accepted == (0,)
    assert {r.hospital for r in result.rejected} == {1, 2}


def test_round_without_enough_updates_in_time_leaves_the_model(ray_local):
    from fedray.models import initial_parameters

    config = _synthetic(num_rounds=2, min_clients=6, round_timeout_s=1e-4)
    result = simulate(config)
    initial = initial_parameters(config.model, num_features=13, num_classes=2, seed=0)
    assert result.summary["rounds_completed"] == 0
    assert np.array_equal(result.global_vector, initial)
    accepted = result.metrics.query("metric == 'accepted'")["value"]
    assert accepted.tolist() == [0, 0]


def test_central_dp_aggregator_refuses_an_update_beyond_the_clip_bound(ray_local):
    from fedray.config import PrivacyConfig
    from fedray.privacy import RUN, PartyPlan

    central = PrivacyPlan(mode="central", clip=1.0, delta=1e-5, accountant="rdp", budget=None,
                          parties={RUN: PartyPlan(1.0, 1.0, 1)}, uniform_weight=0.5)
    config = SimulationConfig(privacy=PrivacyConfig(name="central", noise_multiplier=1.0))
    aggregator = ray.remote(num_cpus=0)(AggregatorWorker).remote()
    ray.get(aggregator.configure.remote(config, central, 2))
    honest = Update(0, np.full(14, 0.5 / np.sqrt(14), np.float32), round_=3)  # 0.5 × C
    forged = Update(1, np.full(14, 1.0, np.float32), round_=3)  # norm 3.7 > 0.5 × C
    _, result = ray.get(aggregator.aggregate.options(num_returns=2).remote(
        [ray.put([honest, forged])], RoundBroadcast(np.zeros(14, np.float32)),
        {0: 0.5, 1: 0.5}, 3))
    assert result.accepted == (0,)
    assert [r.hospital for r in result.rejected] == [1]
    assert "above the clip bound 0.5" in result.rejected[0].reason
