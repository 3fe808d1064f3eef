"""Warm workers: runs in one process reuse Ray and its hospital workers, and a run
inside a sweep gives exactly the model it gives alone."""

import numpy as np
import pytest

from fedray import ModelConfig, PartitionConfig, simulate
from fedray.config import PrivacyConfig, StrategyConfig
from fedray.runtime.pool import POOL
from tests.conftest import synthetic_config

pytestmark = pytest.mark.integration


def _run(**overrides):
    base = dict(
        num_records=600, partition=PartitionConfig(name="dirichlet", alpha=0.5),
        model=ModelConfig(name="mlp", hidden=8),
        num_clients=5, num_rounds=3, lr=0.1,
    )
    return simulate(synthetic_config(**{**base, **overrides}))


def test_a_run_inside_a_sweep_gives_the_model_it_gives_alone(ray_local):
    # Stateful on both sides (SCAFFOLD control variates, DP-SGD ledgers and noise; Adam
    # moments, local-DP ledgers, FedAdam's server moments) and different in all of it.
    alone_config = dict(strategy=StrategyConfig(name="scaffold"),
                        privacy=PrivacyConfig(name="dpsgd", epsilon=8.0), seed=3)
    POOL.discard()
    alone = _run(**alone_config)
    assert not alone.summary["warm_workers"]
    between = _run(strategy=StrategyConfig(name="fedadam"), num_clients=7, seed=4,
                   optimizer="adam",
                   privacy=PrivacyConfig(name="local", epsilon=4.0))
    assert between.summary["warm_workers"]
    in_sweep = _run(**alone_config)
    assert in_sweep.summary["warm_workers"]
    assert np.array_equal(alone.global_vector, in_sweep.global_vector)
    assert alone.summary["epsilon"] == in_sweep.summary["epsilon"]
    assert alone.summary["per_client_accuracy"] == in_sweep.summary["per_client_accuracy"]


def test_summary_names_the_node_of_every_hospital(ray_local):
    import ray

    result = _run(num_rounds=1)
    nodes = result.summary["nodes"]
    assert set(nodes) == {ray.get_runtime_context().get_node_id()}
    assert sorted(h for hosted in nodes.values() for h in hosted) == sorted(
        result.summary["per_client_accuracy"])


def test_a_wider_run_replaces_the_pool_and_a_narrower_one_reuses_it(ray_local):
    from fedray.config import RayConfig

    _run(num_rounds=1, ray=RayConfig(num_actors=2))
    narrower = _run(num_rounds=1, ray=RayConfig(num_actors=1))
    assert narrower.summary["warm_workers"] and narrower.summary["num_actors"] == 1
    half_cpu = _run(num_rounds=1, ray=RayConfig(num_actors=2, num_cpus_per_actor=0.5))
    assert not half_cpu.summary["warm_workers"]  # another shape: new workers


def test_a_run_that_fails_leaves_no_workers_to_the_next(ray_local):
    from fedray import ConfigError
    from fedray.config import RayConfig

    _run(num_rounds=1)
    with pytest.raises(ConfigError, match=r"ray\.num_gpus_per_actor"):
        _run(num_rounds=1, ray=RayConfig(num_gpus_per_actor=0.5))  # this cluster has no GPU
    assert not _run(num_rounds=1).summary["warm_workers"]
