"""What the orchestrator learns about a run, and the summary.json built from it.

Two kinds of input, kept apart as they would be in a deployment: the aggregator's
report of each round (what was released, what was rejected) and the hospitals' own
reports (losses, ε, timings): simulator diagnostics that a real federation would
not publish (docs/privacy.md, "What each output reveals")."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from fedray.config import SimulationConfig, config_to_dict
from fedray.data import FederationPlan
from fedray.evaluation import EvalStats, fairness, pooled
from fedray.outputs.metrics import GLOBAL, MetricsLog
from fedray.pipeline import AggregateResult, HospitalReport
from fedray.privacy import RUN, PrivacyPlan
from fedray.privacy.summary import privacy_summary

SECONDS_KEYS = ("train", "encrypt", "aggregate", "decrypt")


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
    rounds_run: int = 0
    stopped_early: str | None = None
    local_cross: dict[int, dict[int, EvalStats]] | None = None  # strategy=local
    last_personalized: dict[int, EvalStats] = field(default_factory=dict)
    nodes: dict[str, list[str]] = field(default_factory=dict)  # Ray node id -> hospitals
    warm_workers: bool = False  # the run reused workers a previous run had started
    availability: dict[str, Any] | None = None  # per-hospital draws (availability.*)
    offline_total: int = 0  # hospital-rounds lost to dropouts
    late_total: int = 0  # hospital-rounds trained but past the round's timeout
    lost: list[dict[str, Any]] = field(default_factory=list)  # failed workers' rounds
    # central, distributed DP: write nothing that says who or how many took part in a
    # round (train losses, participant and accepted counts, coins, bytes, train seconds)
    hide_sample: bool = False

    # ---- the round loop's entries (the only way a record changes) ----

    def start_round(self, round_: int) -> None:
        self.rounds_run = round_

    def end_round(self, round_: int, *, participants: int, seconds: float) -> None:
        if not self.hide_sample:
            self.log.add(round_, GLOBAL, "round", "participants", participants)
        self.log.add(round_, GLOBAL, "round", "seconds", seconds)

    def stop_early(self, reason: str, bar: Any) -> None:
        self.stopped_early = reason
        bar.write(reason)

    def add_lost(self, round_: int, hospitals: list[int], error: str | None) -> list[str]:
        """A worker died in this round: its hospitals lose it. Returns their names."""
        names = [self.names[i] for i in hospitals]
        self.lost.append({"round": round_, "hospitals": names, "error": error})
        for name in names:
            self.log.add(round_, name, "round", "lost", 1)
        return names

    def add_unavailable(self, round_: int, offline: set[int], late: set[int]) -> None:
        """This round's offline hospitals and the late ones (availability.*); nothing
        when the sample is secret (the invited are the sampled)."""
        if self.hide_sample:
            return
        self.log.add(round_, GLOBAL, "round", "offline", len(offline))
        self.log.add(round_, GLOBAL, "round", "late", len(late))
        for i in sorted(offline):
            self.log.add(round_, self.names[i], "round", "offline", 1)
        for i in sorted(late):
            self.log.add(round_, self.names[i], "round", "late", 1)
        self.offline_total += len(offline)
        self.late_total += len(late)

    def set_placement(self, *, num_parameters: int, warm_workers: bool,
                      nodes: dict[str, list[str]]) -> None:
        self.num_parameters = num_parameters
        self.warm_workers = warm_workers
        self.nodes = nodes

    def set_availability(self, draws: dict[str, list[float]]) -> None:
        """Each hospital's availability draws, by name (online probability, speed, ...)."""
        self.availability = {key: dict(zip(self.names, values)) for key, values in draws.items()}

    def set_local_cross(self, cross: dict[int, dict[int, EvalStats]]) -> None:
        self.local_cross = cross

    def add_final_epsilons(self, epsilons: dict[int, float | None]) -> None:
        """ε from the hospitals' own ledgers at the end (late batches counted)."""
        self.epsilon.update({i: e for i, e in epsilons.items() if e is not None})

    def add_aggregate(self, round_: int, result: AggregateResult | None, bar: Any) -> None:
        """The aggregator's report: what it accepted, rejected and released."""
        if not self.hide_sample:
            self.log.add(round_, GLOBAL, "round", "accepted", 0 if result is None else
                         len(result.accepted))
        if result is None:
            bar.write(f"round {round_}: too few updates arrived in time; model unchanged")
            return
        self.rounds_completed += result.released
        self.updates_accepted += len(result.accepted)
        self.bytes_uploaded += result.bytes_received
        for key in ("aggregate", "decrypt"):
            self.seconds[key] += result.seconds.get(key, 0.0)
        for rejection in result.rejected:
            who = self.names[rejection.hospital] if rejection.hospital >= 0 else "unknown"
            self.rejections.append({"round": round_, "client": who, "reason": rejection.reason})
            bar.write(f"round {round_}: rejected update from {who}: {rejection.reason}")

    def add_reports(self, round_: int, reports: list[HospitalReport], bar: Any,
                    late: bool = False) -> None:
        """The hospitals' own reports (diagnostics), straight from their actors: one
        round's, or (``late``) those of batches that missed the round's timeout."""
        for report in reports:
            name = self.names[report.hospital]
            if not self.hide_sample:
                self.log.add(round_, name, "train", "loss", report.train_loss)
            for key in ("train", "encrypt"):
                self.seconds[key] += report.seconds.get(key, 0.0)
            self.values_clipped += report.values_clipped
            if report.epsilon is not None:
                self.epsilon[report.hospital] = report.epsilon
                self.log.add(round_, name, "privacy", "epsilon", report.epsilon)
            if report.exhausted and report.hospital not in self.exhausted:
                self.exhausted[report.hospital] = round_
                bar.write(f"round {round_}: {name} stops training: its privacy budget would "
                          "be exceeded")
        coins = [r.sampled for r in reports if r.sampled is not None and not r.exhausted]
        if coins and not late and not self.hide_sample:  # how many own coins put data in
            self.log.add(round_, GLOBAL, "round", "sampled", sum(coins))

    def add_run_epsilon(self, round_: int, epsilon: float | None) -> None:
        """The run's ledger's ε after a charge (None: the run keeps no ledger)."""
        if epsilon is None:
            return
        self.epsilon[RUN] = epsilon
        self.log.add(round_, GLOBAL, "privacy", "epsilon", epsilon)

    def add_eval(self, round_: int, stats: dict[int, EvalStats], bar: Any,
                 personalized: dict[int, EvalStats] | None = None) -> None:
        """Test results of the global model, and after each hospital's own fine-tuning
        (``personalize_steps``), with the round's fairness across hospitals."""
        self.last_eval = stats
        for i, hospital_stats in stats.items():
            self.log.add_eval(round_, self.names[i], hospital_stats)
        overall = pooled(list(stats.values()))
        self.log.add_eval(round_, GLOBAL, overall)
        for metric, value in fairness([s.accuracy for s in stats.values()]).items():
            self.log.add(round_, GLOBAL, "test", metric, value)
        if personalized:
            self.last_personalized = personalized
            for i, hospital_stats in personalized.items():
                self.log.add(round_, self.names[i], "personalized", "accuracy",
                             hospital_stats.accuracy)
        bar.set_postfix(acc=f"{overall.accuracy:.3f}")


def _local_cross_summary(record: RunRecord) -> dict[str, Any]:
    """strategy=local: each hospital's model on every test split (FLamby's "Local i")."""
    if record.local_cross is None:
        return {}
    names = record.names
    cross = {names[m]: {names[t]: s.accuracy for t, s in sorted(tests.items())}
             for m, tests in sorted(record.local_cross.items())}
    return {"local_cross_accuracy": cross,
            "local_mean_over_tests": {m: float(np.mean(list(t.values())))
                                      for m, t in cross.items()}}


def build_summary(
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
        **fairness(list(per_client.values())),
        "per_client_accuracy_personalized": (
            {names[i]: s.accuracy for i, s in sorted(record.last_personalized.items())}
            if record.last_personalized else None),
        **_local_cross_summary(record),
        **privacy_summary(privacy, names=record.names, epsilon=record.epsilon,
                          exhausted=record.exhausted, stopped_early=record.stopped_early),
        "rounds_completed": record.rounds_completed,
        "rejected_updates": record.rejections,
        "lost_to_failures": record.lost,
        # (how many uploaded: under central DP the hidden sample's size)
        "bytes_uploaded": None if record.hide_sample else record.bytes_uploaded,
        "encryption": {
            "name": config.encryption.name,
            "preset": config.encryption.preset if config.encryption.enabled else None,
            "packing": config.encryption.packing if config.encryption.enabled else None,
            "packing_range": (config.encryption.packing_range
                              if config.encryption.packing == "quantized" else None),
            "values_clipped": record.values_clipped,
            "bytes_per_parameter": (
                record.bytes_uploaded / (record.updates_accepted * num_parameters)
                if record.updates_accepted else None
            ),
        },
        "num_actors": num_actors,
        "devices": devices,
        "nodes": record.nodes,
        "availability": (None if record.availability is None else
                         {**record.availability, "offline": record.offline_total,
                          "late": record.late_total}),
        "warm_workers": record.warm_workers,
        "startup_seconds": startup_seconds,
        "seconds_per_round": loop_seconds / max(record.rounds_run, 1),
        "wall_seconds": wall_seconds,
        "seconds": ({**record.seconds, "train": None, "encrypt": None} if record.hide_sample
                    else record.seconds),  # (sums over the hospitals that trained)
    }


# ---- checkpoints: a record as plain data (lists, dicts, numbers, arrays) ----

def record_state(record: RunRecord) -> dict[str, Any]:
    state = {f.name: getattr(record, f.name) for f in dataclasses.fields(record)}
    state["log"] = record.log.rows()
    state["last_eval"] = _stats_state(record.last_eval)
    state["last_personalized"] = _stats_state(record.last_personalized)
    state["local_cross"] = (None if record.local_cross is None else
                            {m: _stats_state(s) for m, s in record.local_cross.items()})
    return state


def record_from_state(state: dict[str, Any]) -> RunRecord:
    values = dict(state)
    values["log"] = MetricsLog.from_rows(state["log"])
    values["last_eval"] = _stats_from(state["last_eval"])
    values["last_personalized"] = _stats_from(state["last_personalized"])
    values["local_cross"] = (None if state["local_cross"] is None else
                             {m: _stats_from(s) for m, s in state["local_cross"].items()})
    return RunRecord(**values)


def _stats_state(stats: dict[int, EvalStats]) -> dict[int, dict[str, Any]]:
    return {i: dataclasses.asdict(s) for i, s in stats.items()}


def _stats_from(state: dict[int, dict[str, Any]]) -> dict[int, EvalStats]:
    return {i: EvalStats(**s) for i, s in state.items()}
