"""The orchestrator: sampling, the round loop, timeouts and evaluation.

It holds object references and scalar metrics only. Hospital updates go from the
hospital actors straight to the aggregator actor, and the aggregator's new global
vector goes straight to the next round's training: the driver passes references and
never waits on a round trip it does not need (it reads each round's report while
the next round trains). Each hospital's diagnostics (loss, ε, timings) come to the
driver on a separate reference and never pass through the aggregator.
"""

from __future__ import annotations

import dataclasses
import hashlib
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Optional

import numpy as np
import pandas as pd
import ray
from tqdm.auto import tqdm

from fedray.availability import Profile, draw_profile, late, local_steps, offline
from fedray.checkpoint import write_checkpoint
from fedray.config import ConfigError, SimulationConfig, first_line
from fedray.evaluation import EvalStats
from fedray.models import build_model, initial_parameters, num_trainable
from fedray.pipeline import RoundBroadcast
from fedray.outputs.metrics import GLOBAL
from fedray.outputs.record import RunRecord, build_summary
from fedray.planning import aggregation_weights, plan
from fedray.privacy import RUN, PrivacyLedger, PrivacyPlan, make_randomness
from fedray.runtime.actors import actor_count, assign_hospitals, make_actors
from fedray.runtime.pool import POOL
from fedray.strategies import build_strategy


RESTART_WAIT_S = 120.0  # how long a failed hospital worker may take to come back


@dataclass
class PendingRound:
    """References of a round whose results the driver has not read yet."""

    round_: int
    report: Optional[ray.ObjectRef]  # the aggregator's; None: the round was skipped
    hospital_reports: list[ray.ObjectRef]
    evaluations: Optional[list[ray.ObjectRef]]


class RunLedger:
    """The run's own accountant (central, distributed DP).

    central releases a noised sum every round, so each round is charged when it is
    dispatched. distributed releases only sums with enough noise shares, so a round is
    charged when the aggregator reports it released; until then it counts as possibly
    spent, and a round is started only if every round in flight could be afforded."""

    def __init__(self, privacy: PrivacyPlan) -> None:
        self.ledger: PrivacyLedger = privacy.ledger(RUN)
        self.charge_on_dispatch = privacy.releases_every_round
        self.in_flight = 0

    def can_start_round(self) -> bool:
        return self.ledger.can_afford(1 + self.in_flight)

    def dispatched(self) -> bool:
        """Records a dispatched round; True when that already charged it."""
        if self.charge_on_dispatch:
            self.ledger.record(1)
            return True
        self.in_flight += 1
        return False

    def settled(self, released: bool) -> bool:
        """Settles a round the aggregator reported on; True when it was charged."""
        if self.charge_on_dispatch:
            return False
        self.in_flight -= 1
        if released:
            self.ledger.record(1)
        return released


@dataclass
class Run:
    """The driver's side of one run: the handles, and the state that moves from round
    to round (the broadcast's reference, the round still being read, the sampling
    stream, the run's ledger). ``round`` advances it by one round."""

    config: SimulationConfig
    privacy: PrivacyPlan
    record: RunRecord
    actors: list[Any]
    aggregator: Any
    owner: dict[int, Any]
    sizes: list[int]
    global_ref: ray.ObjectRef
    sampling: Any
    bar: Any
    run_ledger: Optional[RunLedger] = None
    requested: Optional[SimulationConfig] = None  # the config as given (checkpoints keep it)
    availability: Optional[tuple[Profile, Any]] = None  # profile and per-round coin stream
    reconfigure: list[Any] = field(default_factory=list)  # per worker: configure it again
    # hospital -> reference of the states of its last round that arrived (restores a
    # restarted worker's hospitals as they were before the round it lost)
    states: dict[int, ray.ObjectRef] = field(default_factory=dict)
    pending: Optional[PendingRound] = None
    late_reports: list[tuple[int, ray.ObjectRef]] = field(default_factory=list)

    def round(self, round_: int) -> bool:
        """Dispatches one round; False when the run's budget stops the run first."""
        config, privacy, record = self.config, self.privacy, self.record
        start = time.perf_counter()
        if not self._can_start():
            record.stopped_early = (f"stopped before round {round_}: the run's privacy "
                                    f"budget ε={privacy.budget} would be exceeded")
            self.bar.write(record.stopped_early)
            return False
        record.rounds_run = round_
        if self.run_ledger is not None and self.run_ledger.dispatched():
            record.add_run_epsilon(round_, self.run_ledger.ledger.epsilon)
        participants = self._participants()
        offline_now, late_now = self._unavailable(round_, participants)
        participants = np.array([i for i in participants if int(i) not in offline_now],
                                dtype=int)
        weights = (
            {int(i): privacy.uniform_weight for i in participants}
            if privacy.uniform_weight is not None
            else aggregation_weights(participants, self.sizes + [sum(self.sizes)])
        )
        victim = None
        if config.faults.kill_actor_round == round_:
            # By its handle, as the round starts (so its round's work is lost, whatever
            # the timing); Ray restarts it.
            victim = self.actors[config.faults.kill_actor % len(self.actors)]
            ray.kill(victim, no_restart=False)
        training = _dispatch_training(self.global_ref, weights, self.owner, late_now, round_)
        self.collect()  # read the last round while this one trains
        self.global_ref, report, reports, late, failed = _aggregate_in_time(
            config, privacy, training, self.global_ref, self.aggregator, weights, round_,
            self.states)
        for batch in failed:
            self._recover(round_, batch)
        if config.faults.kill_actor_round == round_ and victim not in [b.actor for b in failed]:
            self._restore_worker(victim)  # it trained nobody this round: nothing is lost
        due = round_ % config.eval_every == 0 or round_ == config.num_rounds
        evaluations = ([a.evaluate.remote(self.global_ref, round_) for a in self.actors]
                       if due else None)
        self.pending = PendingRound(round_, report, reports, evaluations)
        self.late_reports.extend((round_, ref) for ref in late)
        record.log.add(round_, "global", "round", "participants", len(participants))
        record.log.add(round_, "global", "round", "seconds", time.perf_counter() - start)
        return True

    def _recover(self, round_: int, batch: "Batch") -> None:
        """A worker died in this round: its hospitals lose the round (reported), Ray has
        restarted it empty, and it is configured again with its hospitals' states from
        their last round that arrived (the states they had before this one)."""
        names = [self.record.names[i] for i in batch.hospitals]
        self.record.lost.append({"round": round_, "hospitals": names, "error": batch.error})
        for name in names:
            self.record.log.add(round_, name, "round", "lost", 1)
        self.bar.write(f"round {round_}: a hospital worker failed ({batch.error}); "
                       f"{len(names)} hospitals lose the round, the worker is restarted")
        self._restore_worker(batch.actor)

    def _restore_worker(self, actor: Any) -> None:
        """Configures a restarted worker again and gives each of its hospitals the state
        of its own last round that arrived (hospitals that never trained keep the
        configured, initial state)."""
        worker = self.actors.index(actor)
        deadline = time.monotonic() + RESTART_WAIT_S
        while True:  # a call to a worker Ray is still restarting is refused: try again
            try:
                ray.get(self.reconfigure[worker]())
                break
            except ray.exceptions.ActorUnavailableError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)
        hosted = {i for i, owner in self.owner.items() if owner is actor}
        ray.get(actor.load_state_dict.remote(own_newest_states(self.states, hosted, ray.get)))

    def _unavailable(self, round_: int, invited: np.ndarray) -> tuple[set[int], set[int]]:
        """This round's offline hospitals and the late ones among the rest; logged."""
        if self.availability is None:
            return set(), set()
        profile, stream = self.availability
        offline_now = offline(profile, invited, stream.generator())
        late_now = late(profile, {int(i) for i in invited} - offline_now,
                        self.config.round_timeout_s)
        log = self.record.log
        log.add(round_, GLOBAL, "round", "offline", len(offline_now))
        log.add(round_, GLOBAL, "round", "late", len(late_now))
        for i in sorted(offline_now):
            log.add(round_, self.record.names[i], "round", "offline", 1)
        for i in sorted(late_now):
            log.add(round_, self.record.names[i], "round", "late", 1)
        self.record.offline_total += len(offline_now)
        self.record.late_total += len(late_now)
        return offline_now, late_now

    def collect(self) -> None:
        if self.pending is not None:
            _collect(self.pending, self.record, self.run_ledger, self.bar)
            self.pending = None

    def _can_start(self) -> bool:
        if self.run_ledger is None:
            return True
        if not self.run_ledger.can_start_round():
            self.collect()  # settle the round in flight: it may have been withheld
        return self.run_ledger.can_start_round()

    def _participants(self) -> np.ndarray:
        """Who is asked to take part: the pooled trainer alone, or whom the privacy
        mode samples (distributed: everyone, each with its own coin; central: a
        Poisson sample the trusted server keeps hidden)."""
        if self.config.strategy.name == "pooled":
            return np.array([len(self.sizes)])
        return self.privacy.mechanism.sample(len(self.sizes), self.config.fraction_per_round,
                                             self.sampling.generator())

    def snapshot(self, round_: int) -> dict[str, Any]:
        """The run's whole state after ``round_`` (fedray/checkpoint.py): read once the
        round is collected, so every worker's state is the one after that round (calls to
        an actor run in order) and nothing is in flight."""
        self.collect()
        self._read_late_reports()  # references cannot outlive the run
        hospitals: dict[int, Any] = {}
        for part in ray.get([a.state_dict.remote() for a in self.actors]):
            hospitals.update(part)
        return {"round": round_, "config": self.requested, "record": self.record,
                "broadcast": ray.get(self.global_ref), "hospitals": hospitals,
                "aggregator": ray.get(self.aggregator.state_dict.remote()),
                "sampling": self.sampling.state_dict(), "run_ledger": self.run_ledger,
                "availability": (None if self.availability is None
                                 else self.availability[1].state_dict())}

    def _read_late_reports(self) -> None:
        """The reports of batches that missed their round's timeout, once they are in
        (those of a worker that died are skipped)."""
        for round_, ref in self.late_reports:
            for reports in _arrived([ref]):
                self.record.add_reports(round_, reports, self.bar, late=True)
        self.late_reports = []

    def restore(self, state: dict[str, Any]) -> None:
        """Puts a snapshot's state back into freshly configured workers and this run."""
        hospitals = ray.put(state["hospitals"])
        ray.get([a.load_state_dict.remote(hospitals) for a in self.actors]
                + [self.aggregator.load_state_dict.remote(state["aggregator"])])
        self.states = {i: hospitals for i in state["hospitals"]}  # what a restart restores
        self.global_ref = ray.put(state["broadcast"])
        self.sampling.load_state_dict(state["sampling"])
        self.run_ledger = state["run_ledger"]
        if self.availability is not None:
            self.availability[1].load_state_dict(state["availability"])

    def finish(self) -> np.ndarray:
        """Reads what is still in flight and the end-of-run statistics; the final model."""
        self.collect()
        final_vector = ray.get(self.global_ref).global_vector
        self._read_late_reports()  # their diagnostics (a budget running out)
        if self.config.strategy.name == "local":
            self.record.local_cross = _cross_evaluate(self.actors)
        if self.privacy.mechanism.per_hospital:  # ε from the ledgers, late batches too
            for part in ray.get([a.epsilon_spent.remote() for a in self.actors]):
                self.record.epsilon.update({i: e for i, e in part.items() if e is not None})
        return final_vector


@dataclass(frozen=True)
class Prepared:
    """A planned run: everything decided before Ray is needed."""

    config: SimulationConfig  # as planned (derived values filled in)
    federation: Any
    privacy: PrivacyPlan
    initial: np.ndarray
    num_trainable: int
    requested: SimulationConfig  # as given: what a checkpoint keeps, to plan again


def prepare(config: SimulationConfig) -> Prepared:
    """Plans the run (hospitals, privacy, packing) and its round-0 model. Raises
    ConfigError for what the data cannot give (e.g. more hospitals than records)."""
    planned, federation, privacy = plan(config)
    initial = initial_parameters(planned.model, num_features=federation.num_features,
                                 num_classes=federation.num_classes, seed=planned.seed)
    return Prepared(planned, federation, privacy, initial,
                    federation_trainable(planned, federation), requested=config)


@dataclass(frozen=True)
class Finished:
    """What a run leaves once its last round is read."""

    summary: dict[str, Any]
    metrics: pd.DataFrame
    global_vector: np.ndarray


def run_rounds(prepared: Prepared, cluster: dict[str, float], wall_start: float,
               resume: Optional[dict[str, Any]] = None) -> Finished:
    """Configures the workers and runs every round (from the round after ``resume``'s,
    a checkpoint of this run); Ray must be up."""
    config, federation, privacy = prepared.config, prepared.federation, prepared.privacy
    sizes = federation.train_sizes
    trainer_names = ["pooled"] if config.strategy.name == "pooled" else []
    record = (resume["record"] if resume is not None else
              RunRecord(names=[h.name for h in federation.hospitals] + trainer_names,
                        self_sampling=privacy.self_sampling))
    record.num_parameters = int(prepared.initial.shape[0])
    if config.ray.num_gpus_per_actor > 0 and cluster.get("GPU", 0) == 0:
        raise ConfigError("ray.num_gpus_per_actor", config.ray.num_gpus_per_actor,
                          "the Ray cluster has no GPU; use 0")
    assignment = assign_hospitals(sizes, actor_count(config, cluster, len(sizes)))
    actors, aggregator, placed, reconfigure = make_actors(config, federation, assignment,
                                                          privacy)
    owner = {i: a for a, indices in zip(actors, assignment) for i in indices}
    if config.strategy.name == "pooled":  # one trainer on the union, on actor 0
        owner[len(sizes)] = actors[0]
    devices = [device for device, _ in placed]
    record.warm_workers = POOL.reused
    record.nodes = _hospitals_by_node(placed, assignment, record.names)
    startup_seconds = time.perf_counter() - wall_start
    strategy = build_strategy(config.strategy)
    server_state = strategy.init_server_state(prepared.initial, prepared.num_trainable)
    bar = tqdm(total=config.num_rounds, desc="rounds", unit="round",
               disable=not config.progress, leave=False)
    availability = None
    if config.availability.enabled:
        steps = local_steps(sizes, epochs=config.local_epochs, steps=config.local_steps,
                            batch_size=config.batch_size)
        profile = draw_profile(config.availability, steps,
                               np.random.default_rng(np.random.SeedSequence([config.seed,
                                                                             0xA7A1])))
        availability = (profile, make_randomness(
            secure=False, seed=np.random.SeedSequence([config.seed, 0x0FF1])))
        record.availability = {
            "online_probability": dict(zip(record.names, profile.online.tolist())),
            "speed_factor": dict(zip(record.names, profile.speed.tolist())),
            "round_seconds": dict(zip(record.names, profile.round_seconds.tolist())),
        }
    run = Run(
        config=config, privacy=privacy, record=record, actors=actors,
        aggregator=aggregator, owner=owner, sizes=sizes, bar=bar,
        # one copy in the object store, read by every actor
        global_ref=ray.put(RoundBroadcast(prepared.initial, strategy.broadcast(server_state))),
        sampling=make_randomness(secure=privacy.secure_rng,
                                 seed=np.random.SeedSequence([config.seed, 0x5A3])),
        run_ledger=(RunLedger(privacy) if privacy.enabled
                    and not privacy.mechanism.per_hospital else None),
        requested=prepared.requested, availability=availability, reconfigure=reconfigure,
    )
    first = 1
    if resume is not None:
        run.restore(resume)
        first = resume["round"] + 1
        bar.update(resume["round"])
    loop_start = time.perf_counter()
    for round_ in range(first, config.num_rounds + 1):
        if not run.round(round_):
            break
        bar.update(1)
        if config.checkpoint_every and round_ % config.checkpoint_every == 0:
            write_checkpoint(Path(config.output_dir), round_, run.snapshot(round_))
    final_vector = run.finish()
    loop_seconds = time.perf_counter() - loop_start
    bar.close()
    summary = build_summary(config, federation, privacy, record, devices=devices,
                            startup_seconds=startup_seconds, loop_seconds=loop_seconds,
                            wall_seconds=time.perf_counter() - wall_start,
                            num_actors=len(assignment))
    # The final model's fingerprint: a resumed run and an uninterrupted one compare equal.
    summary["model_sha256"] = hashlib.sha256(
        np.ascontiguousarray(final_vector).tobytes()).hexdigest()
    summary["resumed_from_round"] = None if resume is None else resume["round"]
    if config.audit.enabled:
        summary["audit"] = _audit(config, prepared, record, summary, final_vector, aggregator,
                                  run.run_ledger)
    return Finished(summary, record.log.frame(), final_vector)


def _audit(config: SimulationConfig, prepared: Prepared, record: RunRecord,
           summary: dict[str, Any], final_vector: np.ndarray, aggregator: Any,
           run_ledger: Optional[RunLedger]) -> dict[str, Any]:
    """audit.*: the attacks of fedray/audit/, beside the ε of the party they target
    (the target hospital's own ledger, or the run's). Under central and distributed DP
    a canary changes one hospital's data, a replacement: the ε that covers it is the
    run's at σ/2 (twice the sensitivity), reported beside the add/remove one."""
    from fedray.audit.run import run_audit

    start = time.perf_counter()
    target = config.audit.target
    epsilon = (record.epsilon.get(target) if prepared.privacy.mechanism.per_hospital
               else summary.get("epsilon"))
    view = ray.get(aggregator.inversion_view.remote()) if config.audit.inversion else None
    covering = None
    if run_ledger is not None and epsilon is not None:
        ledger = run_ledger.ledger
        covering = dataclasses.replace(ledger, noise_multiplier=ledger.noise_multiplier / 2,
                                       budget=None).epsilon
    audit = run_audit(config, prepared.federation, prepared.initial, final_vector,
                      inversion_view=view, epsilon=epsilon, delta=summary.get("delta"),
                      epsilon_covering=covering)
    audit["seconds"] = time.perf_counter() - start
    return audit


def _cross_evaluate(actors: list[Any]) -> dict[int, dict[int, EvalStats]]:
    """strategy=local: every hospital's own model on every hospital's test split."""
    models: dict[int, np.ndarray] = {}
    for part in ray.get([a.local_models.remote() for a in actors]):
        models.update(part)
    models_ref = ray.put(models)
    cross: dict[int, dict[int, EvalStats]] = {m: {} for m in models}
    for part in ray.get([a.evaluate_models.remote(models_ref) for a in actors]):
        for m, stats in part.items():
            cross[m].update(stats)
    return cross


def _hospitals_by_node(placed: list[tuple[str, str]], assignment: list[list[int]],
                       names: list[str]) -> dict[str, list[str]]:
    """Which Ray node hosted which hospitals (node ids as Ray names them)."""
    nodes: dict[str, list[str]] = {}
    for (_, node), indices in zip(placed, assignment):
        nodes.setdefault(node, []).extend(names[i] for i in indices)
    return nodes


def federation_trainable(config: SimulationConfig, federation: Any) -> int:
    return num_trainable(build_model(config.model, num_features=federation.num_features,
                                     num_classes=federation.num_classes))



def own_newest_states(latest: dict[int, Any], hosted: set[int],
                      read: Callable[[Any], dict[int, Any]]) -> dict[int, Any]:
    """Each hosted hospital's state from its own newest save. ``latest`` maps a hospital
    to the saved batch of its last round that arrived; a batch holds several hospitals'
    states, and an older batch's copy of a hospital must never win over its newer one.
    ``read`` fetches a batch (once each)."""
    fetched: dict[int, dict[int, Any]] = {}
    states = {}
    for i in hosted & set(latest):
        batch = latest[i]
        if id(batch) not in fetched:
            fetched[id(batch)] = read(batch)
        states[i] = fetched[id(batch)][i]
    return states


@dataclass
class Batch:
    """One worker's share of a round: its references and who is in it."""

    actor: Any
    reports: ray.ObjectRef
    states: ray.ObjectRef  # its hospitals' states after the round
    hospitals: list[int]  # trained this round
    expected: int  # updates it can bring (its hospitals less the late ones)
    error: Optional[str] = None


def _dispatch_training(
    global_ref: ray.ObjectRef, weights: dict[int, float], owner: dict[int, Any],
    late: set[int], round_: int,
) -> dict[ray.ObjectRef, Batch]:
    """One train call per actor that hosts participants (its updates, reports and the
    trained hospitals' states after the round); returns each update batch's Batch."""
    by_actor: dict[Any, dict[int, float]] = {}
    for i, w in weights.items():
        by_actor.setdefault(owner[i], {})[i] = w
    training = {}
    for actor, part in by_actor.items():
        late_here = frozenset(i for i in part if i in late)
        updates, reports, states = actor.train.options(num_returns=3).remote(
            global_ref, part, late_here, round_)
        training[updates] = Batch(actor, reports, states, list(part),
                                  len(part) - len(late_here))
    return training


def _aggregate_in_time(
    config: SimulationConfig, privacy: PrivacyPlan, training: dict[ray.ObjectRef, Batch],
    global_ref: ray.ObjectRef, aggregator: Any, weights: dict[int, float], round_: int,
    states: dict[int, ray.ObjectRef],
) -> tuple[ray.ObjectRef, Optional[ray.ObjectRef], list[ray.ObjectRef],
           list[ray.ObjectRef], list[Batch]]:
    """Hands whatever arrived before the timeout to the aggregator; returns the refs of
    the next broadcast, of the aggregation report (None: round skipped, fewer than
    ``min_clients`` arrived, global unchanged), of the arrived hospitals' reports and
    of the late hospitals' reports, and the batches whose worker failed (their
    hospitals lose the round). Arrived batches' states become the hospitals' latest.
    Central DP never skips: the server releases a noised sum whoever arrived."""
    # A batch still running at the timeout is left to finish and ignored: cancelling
    # a running task of a synchronous actor would interrupt its hospitals mid-step.
    ready: list[ray.ObjectRef] = []
    missed: list[ray.ObjectRef] = []
    # With simulated stragglers (availability.seconds_per_step) the timeout is simulated
    # time, already applied per hospital: waiting on the wall clock too would drop slow
    # batches at random and break reproducibility.
    wall_timeout = None if config.availability.seconds_per_step > 0 else config.round_timeout_s
    if training:
        ready, missed = ray.wait(list(training), num_returns=len(training),
                                 timeout=wall_timeout)
    failed = []
    for ref in ready:  # a worker that died: its reports (small) hold the error
        try:
            ray.get(training[ref].reports)
        except ray.exceptions.RayError as err:
            training[ref].error = f"{type(err).__name__}: {first_line(err, default='')[:200]}"
            failed.append(training[ref])
    ready = [ref for ref in ready if training[ref].error is None]
    for ref in ready:
        for i in training[ref].hospitals:
            states[i] = training[ref].states
    late = [training[ref].reports for ref in missed]
    reports = [training[ref].reports for ref in ready]
    arrived = sum(training[ref].expected for ref in ready)
    if arrived < config.min_clients and not privacy.releases_every_round:
        return global_ref, None, reports, late, failed
    new_global, report = aggregator.aggregate.options(num_returns=2).remote(
        ready, global_ref, weights, round_)
    return new_global, report, reports, late, failed


def _collect(pending: PendingRound, record: RunRecord, run_ledger: Optional[RunLedger],
             bar: Any) -> None:
    report = ray.get(pending.report) if pending.report is not None else None
    record.add_aggregate(pending.round_, report, bar)
    if run_ledger is not None and run_ledger.settled(report is not None and report.released):
        record.add_run_epsilon(pending.round_, run_ledger.ledger.epsilon)
    record.add_reports(pending.round_,
                       [r for part in _arrived(pending.hospital_reports) for r in part], bar)
    if pending.evaluations is not None:
        merged: dict[int, EvalStats] = {}
        personal: dict[int, EvalStats] = {}
        for part in _arrived(pending.evaluations):
            for i, (stats, personalized) in part.items():
                merged[i] = stats
                if personalized is not None:
                    personal[i] = personalized
        record.add_eval(pending.round_, merged, bar, personal)


def _arrived(refs: list[ray.ObjectRef]) -> list[Any]:
    """The values of these references, less those whose worker died before answering
    (a restarted worker's hospitals have no report or evaluation for that round)."""
    values = []
    for ref in refs:
        try:
            values.append(ray.get(ref))
        except ray.exceptions.RayError:  # died, or ran on its restarted (empty) self
            continue
    return values
