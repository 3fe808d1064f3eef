"""The orchestrator: sampling, the round loop, timeouts, evaluation and outputs.

It holds object references and scalar metrics only. Hospital updates go from the
hospital actors straight to the aggregator actor, and the aggregator's new global
vector goes straight to the next round's training: the driver passes references and
never waits on a round trip it does not need (it reads each round's report while
the next round trains).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

import numpy as np
import pandas as pd
import ray
from tqdm.auto import tqdm

from fedray.config import ConfigError, SimulationConfig, config_to_dict
from fedray.crypto import packing_layout
from fedray.data import FederationPlan, PartitionError, plan_federation
from fedray.evaluation import EvalStats, pooled
from fedray.models import build_model, initial_parameters
from fedray.outputs import GLOBAL, MetricsLog, write_run
from fedray.pipeline import AggregateResult
from fedray.privacy import RUN, PrivacyLedger, PrivacyPlan, make_privacy_plan
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


def plan(config: SimulationConfig) -> tuple[FederationPlan, PrivacyPlan]:
    """Plans (and so validates) the hospitals and the privacy noise before Ray starts."""
    try:
        federation = plan_federation(
            config.dataset, config.partition, num_clients=config.num_clients, seed=config.seed
        )
    except PartitionError as err:
        key = "partition.alpha" if config.partition.name == "dirichlet" else "num_clients"
        value = config.partition.alpha if key == "partition.alpha" else config.num_clients
        raise ConfigError(key, value, str(err)) from None
    if config.min_clients > len(federation.hospitals):
        raise ConfigError("min_clients", config.min_clients,
                          f"must be <= the number of hospitals ({len(federation.hospitals)})")
    if config.encryption.enabled and config.encryption.packing == "quantized":
        problem = packing_layout(config.encryption, len(federation.hospitals)).check()
        if problem is not None:
            raise ConfigError("encryption.quantization_bits",
                              config.encryption.quantization_bits, problem)
    model = build_model(config.model, num_features=federation.num_features,
                        num_classes=federation.num_classes)
    return federation, make_privacy_plan(config, train_sizes=federation.train_sizes, model=model)


def sample_participants(
    num_hospitals: int, fraction: float, rng: np.random.Generator, *, poisson: bool = False
) -> np.ndarray:
    """A fixed-size sample, or (central DP) each hospital independently with
    probability ``fraction``: the sampling Opacus's accountant assumes."""
    if poisson:
        return np.flatnonzero(rng.random(num_hospitals) < fraction)
    count = max(1, int(round(fraction * num_hospitals)))
    return np.sort(rng.choice(num_hospitals, size=count, replace=False))


def aggregation_weights(participants: np.ndarray, sizes: list[int]) -> dict[int, float]:
    """FedAvg weights: training-set size over the round's total."""
    total = float(sum(sizes[i] for i in participants))
    return {int(i): sizes[i] / total for i in participants}


@dataclass
class RunRecord:
    """Everything the orchestrator learns about the run, as scalars."""

    names: list[str]
    num_parameters: int = 0
    log: MetricsLog = field(default_factory=MetricsLog)
    epsilon: dict[int, float] = field(default_factory=dict)  # party -> ε spent so far
    exhausted: dict[int, int] = field(default_factory=dict)  # hospital -> first round refused
    seconds: dict[str, float] = field(default_factory=lambda: dict.fromkeys(SECONDS_KEYS, 0.0))
    bytes_uploaded: int = 0
    rounds_completed: int = 0
    updates_accepted: int = 0
    values_clipped: int = 0
    rejections: list[dict[str, Any]] = field(default_factory=list)
    last_eval: dict[int, EvalStats] = field(default_factory=dict)
    empty_rounds: set[int] = field(default_factory=set)  # nobody sampled (Poisson)
    rounds_run: int = 0
    stopped_early: Optional[str] = None

    def add_aggregate(self, round_: int, result: Optional[AggregateResult], bar: Any) -> None:
        self.log.add(round_, GLOBAL, "round", "accepted", 0 if result is None else
                     len(result.accepted))
        if result is None:
            if round_ in self.empty_rounds:
                return
            bar.write(f"round {round_}: too few updates arrived in time; model unchanged")
            return
        self.rounds_completed += bool(result.accepted)  # a round that moved the model
        self.updates_accepted += len(result.accepted)
        self.values_clipped += result.values_clipped
        self.bytes_uploaded += result.bytes_received
        for key in ("aggregate", "decrypt"):
            self.seconds[key] += result.seconds.get(key, 0.0)
        for hospital, loss, seconds, epsilon in result.update_stats:
            self.log.add(round_, self.names[hospital], "train", "loss", loss)
            for key in ("train", "encrypt"):
                self.seconds[key] += seconds.get(key, 0.0)
            if epsilon is not None:
                self.epsilon[hospital] = epsilon
                self.log.add(round_, self.names[hospital], "privacy", "epsilon", epsilon)
        for hospital in result.exhausted:
            if hospital not in self.exhausted:
                self.exhausted[hospital] = round_
                bar.write(f"round {round_}: {self.names[hospital]} stops training: its privacy "
                          "budget would be exceeded")
        for rejection in result.rejected:
            who = self.names[rejection.hospital] if rejection.hospital >= 0 else "unknown"
            self.rejections.append({"round": round_, "client": who, "reason": rejection.reason})
            bar.write(f"round {round_}: rejected update from {who}: {rejection.reason}")

    def add_eval(self, round_: int, stats: dict[int, EvalStats], bar: Any) -> None:
        self.last_eval = stats
        for i, hospital_stats in stats.items():
            self.log.add_eval(round_, self.names[i], hospital_stats)
        overall = pooled(list(stats.values()))
        self.log.add_eval(round_, GLOBAL, overall)
        bar.set_postfix(acc=f"{overall.accuracy:.3f}")


@dataclass
class PendingRound:
    """References of a round whose results the driver has not read yet."""

    round_: int
    report: Optional[ray.ObjectRef]
    evaluations: Optional[list[ray.ObjectRef]]


def simulate(config: SimulationConfig) -> Result:
    """Runs one federated simulation and, if ``config.output_dir`` is set, writes
    metrics.csv, summary.json and accuracy.png there."""
    wall_start = time.perf_counter()
    federation, privacy = plan(config)
    sizes = federation.train_sizes
    record = RunRecord(names=[h.name for h in federation.hospitals])
    initial = initial_parameters(
        config.model, num_features=federation.num_features,
        num_classes=federation.num_classes, seed=config.seed,
    )
    record.num_parameters = int(initial.shape[0])

    with ray_session(config.ray) as cluster:
        if config.ray.num_gpus_per_actor > 0 and cluster.get("GPU", 0) == 0:
            raise ConfigError("ray.num_gpus_per_actor", config.ray.num_gpus_per_actor,
                              "the Ray cluster has no GPU; use 0")
        assignment = assign_hospitals(sizes, actor_count(config, cluster, len(sizes)))
        actors, aggregator = make_actors(config, federation, assignment, privacy)
        owner = {i: a for a, indices in zip(actors, assignment) for i in indices}
        devices = wait_ready(actors)
        startup_seconds = time.perf_counter() - wall_start

        rng = np.random.default_rng([config.seed, 0x5A3])
        bar = tqdm(range(1, config.num_rounds + 1), desc="rounds", unit="round",
                   disable=not config.progress, leave=False)
        global_ref = ray.put(initial)  # one copy in the object store, read by every actor
        run_ledger = _run_ledger(privacy)
        pending: Optional[PendingRound] = None
        loop_start = time.perf_counter()
        for round_ in bar:
            round_start = time.perf_counter()
            record.rounds_run = round_
            if run_ledger is not None:  # central DP: the run itself spends budget
                if not run_ledger.can_afford(1):
                    record.stopped_early = (f"stopped before round {round_}: the run's privacy "
                                            f"budget ε={privacy.budget} would be exceeded")
                    bar.write(record.stopped_early)
                    break
                run_ledger.record(1)
                record.epsilon[RUN] = run_ledger.epsilon
                record.log.add(round_, GLOBAL, "privacy", "epsilon", run_ledger.epsilon)
            participants = sample_participants(
                len(sizes), config.fraction_per_round, rng,
                poisson=privacy.mode in ("central", "distributed"),
            )
            weights = (
                {int(i): privacy.uniform_weight for i in participants}
                if privacy.uniform_weight is not None
                else aggregation_weights(participants, sizes)
            )
            training = _dispatch_training(global_ref, weights, owner)
            if not training:
                record.empty_rounds.add(round_)
            if pending is not None:  # read the last round while this one trains
                _collect(pending, record, bar)
            global_ref, report = (
                _aggregate_in_time(config, training, global_ref, aggregator)
                if training else (global_ref, None)
            )
            due = round_ % config.eval_every == 0 or round_ == config.num_rounds
            evaluations = [a.evaluate.remote(global_ref) for a in actors] if due else None
            pending = PendingRound(round_, report, evaluations)
            record.log.add(round_, GLOBAL, "round", "participants", len(participants))
            record.log.add(round_, GLOBAL, "round", "seconds", time.perf_counter() - round_start)
        if pending is not None:
            _collect(pending, record, bar)
        final_vector = ray.get(global_ref)
        loop_seconds = time.perf_counter() - loop_start
        bar.close()

    summary = _summary(config, federation, privacy, record, devices=devices,
                       startup_seconds=startup_seconds, loop_seconds=loop_seconds,
                       wall_seconds=time.perf_counter() - wall_start,
                       num_actors=len(assignment))
    metrics = record.log.frame()
    out = Path(config.output_dir) if config.output_dir else None
    if out is not None:
        write_run(out, metrics=metrics, summary=summary)
    return Result(summary=summary, metrics=metrics, global_vector=final_vector, output_dir=out)


def _dispatch_training(
    global_ref: ray.ObjectRef, weights: dict[int, float], owner: dict[int, Any]
) -> dict[ray.ObjectRef, int]:
    """One train call per actor that hosts participants; returns ref -> hospital count."""
    by_actor: dict[Any, dict[int, float]] = {}
    for i, w in weights.items():
        by_actor.setdefault(owner[i], {})[i] = w
    return {actor.train.remote(global_ref, part): len(part) for actor, part in by_actor.items()}


def _aggregate_in_time(
    config: SimulationConfig, training: dict[ray.ObjectRef, int], global_ref: ray.ObjectRef,
    aggregator: Any,
) -> tuple[ray.ObjectRef, Optional[ray.ObjectRef]]:
    """Hands whatever arrived before the timeout to the aggregator; returns the refs of
    the next global vector and of the aggregation report (None: round skipped, fewer
    than ``min_clients`` arrived, global unchanged)."""
    # A batch still running at the timeout is left to finish and ignored: cancelling
    # a running task of a synchronous actor would interrupt its hospitals mid-step.
    ready, _late = ray.wait(list(training), num_returns=len(training),
                            timeout=config.round_timeout_s)
    if sum(training[ref] for ref in ready) < config.min_clients:
        return global_ref, None
    new_global, report = aggregator.aggregate.options(num_returns=2).remote(ready, global_ref)
    return new_global, report


def _collect(pending: PendingRound, record: RunRecord, bar: Any) -> None:
    report = ray.get(pending.report) if pending.report is not None else None
    record.add_aggregate(pending.round_, report, bar)
    if pending.evaluations is not None:
        merged: dict[int, EvalStats] = {}
        for part in ray.get(pending.evaluations):
            merged.update(part)
        record.add_eval(pending.round_, merged, bar)


def _run_ledger(privacy: PrivacyPlan) -> Optional[PrivacyLedger]:
    if privacy.mode not in ("central", "distributed"):
        return None
    party = privacy.party(RUN)
    return PrivacyLedger(noise_multiplier=party.noise_multiplier, sample_rate=party.sample_rate,
                         delta=privacy.delta, accountant=privacy.accountant,
                         budget=privacy.budget)


def _privacy_summary(privacy: PrivacyPlan, record: RunRecord) -> dict[str, Any]:
    if not privacy.enabled:
        return {"epsilon": None, "delta": None, "noise_multiplier": None}
    sigmas = {p: plan.noise_multiplier for p, plan in privacy.parties.items()}
    per_hospital = privacy.mode in ("local", "dpsgd")
    return {
        # the largest ε any protected party (hospital, or the run) has spent
        "epsilon": max(record.epsilon.values(), default=0.0),
        "delta": privacy.delta,
        "noise_multiplier": max(sigmas.values()),
        "privacy": {
            "mode": privacy.mode,
            "accountant": privacy.accountant,
            "epsilon_budget": privacy.budget,
            "clip": privacy.clip,
            "protects": "each patient record" if privacy.mode == "dpsgd"
            else "each hospital's whole contribution",
            "per_client_epsilon": (
                {record.names[i]: record.epsilon.get(i, 0.0) for i in range(len(record.names))}
                if per_hospital else None
            ),
            "per_client_noise_multiplier": (
                {record.names[i]: sigmas[i] for i in range(len(record.names))}
                if per_hospital else None
            ),
            "sample_rate": {
                (record.names[p] if p != RUN else "run"): plan.sample_rate
                for p, plan in privacy.parties.items()
            },
            "budget_exhausted": [
                {"client": record.names[i], "round": r} for i, r in sorted(record.exhausted.items())
            ],
            "stopped_early": record.stopped_early,
        },
    }


def _summary(
    config: SimulationConfig, federation: FederationPlan, privacy: PrivacyPlan,
    record: RunRecord, *,
    devices: list[str], startup_seconds: float, loop_seconds: float, wall_seconds: float,
    num_actors: int,
) -> dict[str, Any]:
    names, last = record.names, record.last_eval
    num_parameters = record.num_parameters
    overall = pooled(list(last.values()))
    per_client = {names[i]: last[i].accuracy for i in sorted(last)}
    return {
        "config": config_to_dict(config),
        "clients": [
            {"name": h.name, "num_train": len(h.train_rows), "num_test": len(h.test_rows)}
            for h in federation.hospitals
        ],
        "accuracy": overall.accuracy,
        "loss": overall.loss,
        "auc": overall.auc,
        "per_client_accuracy": per_client,
        "per_client_auc": {names[i]: last[i].auc for i in sorted(last)},
        "mean_client_accuracy": float(np.mean(list(per_client.values()))),
        **_privacy_summary(privacy, record),
        "rounds_completed": record.rounds_completed,
        "rejected_updates": record.rejections,
        "bytes_uploaded": record.bytes_uploaded,
        "encryption": {
            "name": config.encryption.name,
            "preset": config.encryption.preset if config.encryption.enabled else None,
            "packing": config.encryption.packing if config.encryption.enabled else None,
            "values_clipped": record.values_clipped,
            "bytes_per_parameter": (
                record.bytes_uploaded / (record.updates_accepted * num_parameters)
                if record.updates_accepted else None
            ),
        },
        "num_actors": num_actors,
        "devices": devices,
        "startup_seconds": startup_seconds,
        "seconds_per_round": loop_seconds / max(record.rounds_run, 1),
        "wall_seconds": wall_seconds,
        "seconds": record.seconds,
    }
