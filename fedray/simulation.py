"""The orchestrator: sampling, the round loop, timeouts, evaluation and outputs.

It holds the global vector and scalar metrics only. Hospital updates go from the
hospital actors straight to the aggregator actor (the driver passes their refs).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

import numpy as np
import pandas as pd
import ray
from tqdm.auto import tqdm

from fedray.config import ConfigError, SimulationConfig, config_to_dict
from fedray.data import FederationPlan, PartitionError, plan_federation
from fedray.evaluation import EvalStats, pooled
from fedray.models import initial_parameters
from fedray.outputs import GLOBAL, MetricsLog, write_run
from fedray.pipeline import AggregateResult
from fedray.runtime import actor_count, assign_hospitals, make_actors, ray_session, wait_ready

SECONDS_KEYS = ("train", "encrypt", "aggregate", "decrypt")


@dataclass(frozen=True)
class Result:
    summary: dict[str, Any]
    metrics: pd.DataFrame
    global_vector: np.ndarray
    output_dir: Optional[Path]

    @property
    def accuracy(self) -> float:
        return self.summary["accuracy"]

    @property
    def mean_client_accuracy(self) -> float:
        return self.summary["mean_client_accuracy"]


def plan(config: SimulationConfig) -> FederationPlan:
    """Plans (and so validates) the hospitals before Ray starts."""
    try:
        return plan_federation(
            config.dataset, config.partition, num_clients=config.num_clients, seed=config.seed
        )
    except PartitionError as err:
        key = "partition.alpha" if config.partition.name == "dirichlet" else "num_clients"
        value = config.partition.alpha if key == "partition.alpha" else config.num_clients
        raise ConfigError(key, value, str(err)) from None


def sample_participants(
    num_hospitals: int, fraction: float, rng: np.random.Generator
) -> np.ndarray:
    count = max(1, int(round(fraction * num_hospitals)))
    return np.sort(rng.choice(num_hospitals, size=count, replace=False))


def aggregation_weights(participants: np.ndarray, sizes: list[int]) -> dict[int, float]:
    """FedAvg weights: training-set size over the round's total."""
    total = float(sum(sizes[i] for i in participants))
    return {int(i): sizes[i] / total for i in participants}


def simulate(config: SimulationConfig) -> Result:
    """Runs one federated simulation and, if ``config.output_dir`` is set, writes
    metrics.csv, summary.json and accuracy.png there."""
    wall_start = time.perf_counter()
    federation = plan(config)
    if config.min_clients > len(federation.hospitals):
        raise ConfigError("min_clients", config.min_clients,
                          f"must be <= the number of hospitals ({len(federation.hospitals)})")
    sizes = federation.train_sizes
    names = [h.name for h in federation.hospitals]
    global_vector = initial_parameters(
        config.model, num_features=federation.num_features,
        num_classes=federation.num_classes, seed=config.seed,
    )
    log = MetricsLog()
    totals = dict.fromkeys(SECONDS_KEYS, 0.0)
    bytes_uploaded, rounds_completed = 0, 0
    rejections: list[dict[str, Any]] = []
    last_eval: dict[int, EvalStats] = {}

    with ray_session(config.ray) as cluster:
        if config.ray.num_gpus_per_actor > 0 and cluster.get("GPU", 0) == 0:
            raise ConfigError("ray.num_gpus_per_actor", config.ray.num_gpus_per_actor,
                              "the Ray cluster has no GPU; use 0")
        assignment = assign_hospitals(sizes, actor_count(config, cluster, len(sizes)))
        actors, aggregator = make_actors(config, federation, assignment)
        owner = {i: a for a, indices in zip(actors, assignment) for i in indices}
        devices = wait_ready(actors)
        startup_seconds = time.perf_counter() - wall_start
        rng = np.random.default_rng([config.seed, 0x5A3])
        rounds = tqdm(range(1, config.num_rounds + 1), desc="rounds", unit="round",
                      disable=not config.progress, leave=False)
        loop_start = time.perf_counter()
        for round_ in rounds:
            round_start = time.perf_counter()
            participants = sample_participants(len(sizes), config.fraction_per_round, rng)
            weights = aggregation_weights(participants, sizes)
            result = _train_round(config, global_vector, weights, owner, aggregator)
            if result is not None:
                global_vector = result.global_vector
                rounds_completed += 1
                bytes_uploaded += result.bytes_received
                for key in ("aggregate", "decrypt"):
                    totals[key] += result.seconds.get(key, 0.0)
                for hospital, loss, seconds in result.update_stats:
                    log.add(round_, names[hospital], "train", "loss", loss)
                    for key in ("train", "encrypt"):
                        totals[key] += seconds.get(key, 0.0)
                for rejection in result.rejected:
                    who = names[rejection.hospital] if rejection.hospital >= 0 else "unknown"
                    rejections.append({"round": round_, "client": who,
                                       "reason": rejection.reason})
                    rounds.write(f"round {round_}: rejected update from {who}: "
                                 f"{rejection.reason}")
            accepted = 0 if result is None else len(result.accepted)
            log.add(round_, GLOBAL, "round", "participants", len(participants))
            log.add(round_, GLOBAL, "round", "accepted", accepted)
            if round_ % config.eval_every == 0 or round_ == config.num_rounds:
                last_eval = _evaluate(actors, global_vector)
                for i, stats in last_eval.items():
                    log.add_eval(round_, names[i], stats)
                overall = pooled(list(last_eval.values()))
                log.add_eval(round_, GLOBAL, overall)
                rounds.set_postfix(acc=f"{overall.accuracy:.3f}")
            log.add(round_, GLOBAL, "round", "seconds", time.perf_counter() - round_start)
        loop_seconds = time.perf_counter() - loop_start

    overall = pooled(list(last_eval.values()))
    per_client = {names[i]: last_eval[i].accuracy for i in sorted(last_eval)}
    summary = {
        "config": config_to_dict(config),
        "clients": [
            {"name": h.name, "num_train": len(h.train_rows), "num_test": len(h.test_rows)}
            for h in federation.hospitals
        ],
        "accuracy": overall.accuracy,
        "loss": overall.loss,
        "auc": overall.auc,
        "per_client_accuracy": per_client,
        "per_client_auc": {names[i]: last_eval[i].auc for i in sorted(last_eval)},
        "mean_client_accuracy": float(np.mean(list(per_client.values()))),
        "epsilon": None,
        "delta": None,
        "noise_multiplier": None,
        "rounds_completed": rounds_completed,
        "rejected_updates": rejections,
        "bytes_uploaded": bytes_uploaded,
        "num_actors": len(assignment),
        "devices": devices,
        "startup_seconds": startup_seconds,
        "seconds_per_round": loop_seconds / config.num_rounds,
        "wall_seconds": time.perf_counter() - wall_start,
        "seconds": totals,
    }
    metrics = log.frame()
    out = Path(config.output_dir) if config.output_dir else None
    if out is not None:
        write_run(out, metrics=metrics, summary=summary)
    return Result(summary=summary, metrics=metrics, global_vector=global_vector, output_dir=out)


def _train_round(
    config: SimulationConfig, global_vector: np.ndarray, weights: dict[int, float],
    owner: dict[int, Any], aggregator: Any,
) -> Optional[AggregateResult]:
    """One broadcast, local training everywhere, aggregation of whatever arrived in
    time. Returns None (global unchanged) if fewer than ``min_clients`` arrived."""
    global_ref = ray.put(global_vector)  # one copy in the object store, read by all
    by_actor: dict[Any, dict[int, float]] = {}
    for i, w in weights.items():
        by_actor.setdefault(owner[i], {})[i] = w
    pending = {actor.train.remote(global_ref, part): len(part) for actor, part in by_actor.items()}
    # A batch still running at the timeout is left to finish and ignored: cancelling
    # a running task of a synchronous actor would interrupt its hospitals mid-step.
    ready, _late = ray.wait(list(pending), num_returns=len(pending),
                            timeout=config.round_timeout_s)
    if sum(pending[ref] for ref in ready) < config.min_clients:
        return None
    return ray.get(aggregator.aggregate.remote(ready, global_ref))


def _evaluate(actors: list[Any], global_vector: np.ndarray) -> dict[int, EvalStats]:
    global_ref = ray.put(global_vector)
    merged: dict[int, EvalStats] = {}
    for part in ray.get([a.evaluate.remote(global_ref) for a in actors]):
        merged.update(part)
    return merged
