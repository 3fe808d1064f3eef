"""The round loop: sample, dispatch, read the last round while this one trains, hand
the arrivals to the aggregator.

The driver holds object references and scalar metrics only. Hospital updates go from
the hospital actors straight to the aggregator actor, and the aggregator's new global
vector goes straight to the next round's training: the driver passes references and
never waits on a round trip it does not need. Each hospital's diagnostics (loss, ε,
timings) come to the driver on a separate reference and never pass through the
aggregator."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import ray

from fedray.availability import Profile, late, offline
from fedray.config import SimulationConfig
from fedray.evaluation import EvalStats
from fedray.orchestrator.recovery import (
    Actor,
    Batch,
    arrived,
    close_round,
    dispatch_training,
    restore_worker,
)
from fedray.outputs.record import RunRecord
from fedray.privacy import PrivacyPlan
from fedray.privacy.randomness import Randomness
from fedray.privacy.steps import NoRunLedger, RunLedger
from fedray.runtime.workers import KeySide, NoKeySide
from fedray.strategies.traits import StrategyTraits


@dataclass(frozen=True)
class Workers:
    """A run's actors: hospital workers, who hosts which hospital (the pooled trainer
    too), the aggregator, and per worker the call that configures it again."""

    actors: list[Actor]
    owner: dict[int, Actor]
    aggregator: Actor
    reconfigure: list[Callable[[], ray.ObjectRef]]
    key_side: KeySide | NoKeySide = field(default_factory=NoKeySide)

    def hosted_by(self, actor: Actor) -> set[int]:
        return {i for i, owner in self.owner.items() if owner is actor}


@dataclass(frozen=True)
class Availability:
    """Each hospital's drawn availability, and the stream of its per-round coins."""

    profile: Profile
    coins: Randomness


@dataclass
class PendingRound:
    """References of a round whose results the driver has not read yet."""

    round_: int
    report: ray.ObjectRef | None  # the aggregator's; None: the round was skipped
    hospital_reports: list[ray.ObjectRef]
    evaluations: list[ray.ObjectRef] | None


@dataclass
class Run:
    """The driver's side of one run: the handles, and the state that moves from round
    to round (the broadcast's reference, the round still being read, the sampling
    stream, the run's ledger). ``round`` advances it by one round."""

    config: SimulationConfig
    privacy: PrivacyPlan
    traits: StrategyTraits
    record: RunRecord
    workers: Workers
    sizes: list[int]
    global_ref: ray.ObjectRef
    sampling: Randomness
    bar: Any  # tqdm
    run_ledger: RunLedger | NoRunLedger = field(default_factory=NoRunLedger)
    availability: Availability | None = None
    # hospital -> reference of the states of its last round that arrived (restores a
    # restarted worker's hospitals as they were before the round it lost)
    states: dict[int, ray.ObjectRef] = field(default_factory=dict)
    pending: PendingRound | None = None
    late_reports: list[tuple[int, ray.ObjectRef]] = field(default_factory=list)
    # audit.membership: every round's global model, as every model user sees them
    released: list[ray.ObjectRef] = field(default_factory=list)

    def round(self, round_: int) -> bool:
        """Dispatches one round; False when the run's budget stops the run first."""
        config, record = self.config, self.record
        start = time.perf_counter()
        if not self._can_start():
            record.stop_early(f"stopped before round {round_}: the run's privacy budget "
                              f"ε={self.privacy.budget} would be exceeded", self.bar)
            return False
        record.start_round(round_)
        if self.run_ledger.dispatched():
            record.add_run_epsilon(round_, self.run_ledger.epsilon)
        invited = self._participants()
        offline_now, late_now = self._unavailable(round_, invited)
        participants = np.array([i for i in invited if int(i) not in offline_now], dtype=int)
        # the pooled trainer's size is the union's, after every hospital's
        weights = self.privacy.weighting.weights(participants, [*self.sizes, sum(self.sizes)])
        victim = self._inject_fault(round_)
        training = dispatch_training(self.global_ref, weights, self.workers.owner, late_now,
                                     round_)
        self.collect()  # read the last round while this one trains
        report, reports, failed = self._aggregate(training, weights, round_)
        for batch in failed:
            self._recover(round_, batch)
        if victim is not None and victim not in [b.actor for b in failed]:
            self._restore(victim)  # it trained nobody this round: nothing is lost
        due = round_ % config.eval_every == 0 or round_ == config.num_rounds
        evaluations = ([a.evaluate.remote(self.global_ref, round_)
                        for a in self.workers.actors] if due else None)
        self.pending = PendingRound(round_, report, reports, evaluations)
        if config.audit.membership:  # a reference: nothing waits for it
            self.released.append(self.global_ref)
        record.end_round(round_, participants=len(participants),
                         seconds=time.perf_counter() - start)
        return True

    def _aggregate(self, training: dict[ray.ObjectRef, Batch], weights: dict[int, float],
                   round_: int
                   ) -> tuple[ray.ObjectRef | None, list[ray.ObjectRef], list[Batch]]:
        """Hands whatever arrived before the deadline to the aggregator; returns the
        reference of its report (None: round skipped, fewer than ``min_clients``
        arrived, global unchanged), those of the arrived hospitals' reports, and the
        batches whose worker died (their hospitals lose the round)."""
        config = self.config
        # With simulated stragglers (availability.seconds_per_step) the deadline is
        # simulated time, already applied per hospital: waiting on the wall clock too
        # would drop slow batches at random and break reproducibility.
        wall_timeout = (None if config.availability.seconds_per_step > 0
                        else config.round_timeout_s)
        closed = close_round(training, timeout_s=wall_timeout, states=self.states)
        self.late_reports.extend((round_, ref) for ref in closed.late)
        if not self.privacy.releases_round(arrived=closed.arrived,
                                           min_clients=config.min_clients):
            return None, closed.reports, closed.failed
        # Under encryption the driver, not the aggregator, tells the decryptor what
        # arrived; the aggregation starts once the decryptor has it (a top-level
        # reference argument is resolved before the task runs).
        at_decryptors = self.workers.key_side.close_round(round_, closed.updates)
        self.global_ref, report = self.workers.aggregator.aggregate.options(
            num_returns=2).remote(closed.updates, self.global_ref, weights, round_,
                                  *at_decryptors)
        return report, closed.reports, closed.failed

    def _inject_fault(self, round_: int) -> Actor | None:
        """faults.kill_actor_round: kills a hospital worker by its handle as the round
        starts (so its round's work is lost, whatever the timing); Ray restarts it."""
        faults = self.config.faults
        if faults.kill_actor_round != round_:
            return None
        victim = self.workers.actors[faults.kill_actor % len(self.workers.actors)]
        ray.kill(victim, no_restart=False)
        return victim

    def _recover(self, round_: int, batch: Batch) -> None:
        """A worker died in this round: its hospitals lose the round (reported), Ray has
        restarted it empty, and it is configured again with its hospitals' states from
        their last round that arrived (the states they had before this one)."""
        names = self.record.add_lost(round_, batch.hospitals, batch.error)
        self.bar.write(f"round {round_}: a hospital worker failed ({batch.error}); "
                       f"{len(names)} hospitals lose the round, the worker is restarted")
        self._restore(batch.actor)

    def _restore(self, actor: Actor) -> None:
        worker = self.workers.actors.index(actor)
        restore_worker(actor, reconfigure=self.workers.reconfigure[worker],
                       hosted=self.workers.hosted_by(actor), states=self.states)

    def _unavailable(self, round_: int, invited: np.ndarray) -> tuple[set[int], set[int]]:
        """This round's offline hospitals and the late ones among the rest; logged."""
        if self.availability is None:
            return set(), set()
        profile = self.availability.profile
        offline_now = offline(profile, invited, self.availability.coins.generator())
        late_now = late(profile, {int(i) for i in invited} - offline_now,
                        self.config.round_timeout_s)
        self.record.add_unavailable(round_, offline_now, late_now)
        return offline_now, late_now

    def collect(self) -> None:
        """Reads the round still pending: the aggregator's report, the hospitals'
        reports and the evaluation."""
        pending, record = self.pending, self.record
        if pending is None:
            return
        self.pending = None
        report = ray.get(pending.report) if pending.report is not None else None
        record.add_aggregate(pending.round_, report, self.bar)
        if self.run_ledger.settled(report is not None and report.released):
            record.add_run_epsilon(pending.round_, self.run_ledger.epsilon)
        record.add_reports(pending.round_,
                           [r for part in arrived(pending.hospital_reports) for r in part],
                           self.bar)
        if pending.evaluations is not None:
            merged: dict[int, EvalStats] = {}
            personal: dict[int, EvalStats] = {}
            for part in arrived(pending.evaluations):
                for i, (stats, personalized) in part.items():
                    merged[i] = stats
                    if personalized is not None:
                        personal[i] = personalized
            record.add_eval(pending.round_, merged, self.bar, personal)

    def read_late_reports(self) -> None:
        """The reports of batches that missed their round's timeout, once they are in
        (those of a worker that died are skipped)."""
        for round_, ref in self.late_reports:
            for reports in arrived([ref]):
                self.record.add_reports(round_, reports, self.bar, late=True)
        self.late_reports = []

    def _can_start(self) -> bool:
        if not self.run_ledger.can_start_round():
            self.collect()  # settle the round in flight: it may have been withheld
        return self.run_ledger.can_start_round()

    def _participants(self) -> np.ndarray:
        """Who is asked to take part: the trainer on the union alone (``pooled``), or
        whom the privacy mode samples (distributed: everyone, each with its own coin;
        central: a Poisson sample the trusted server keeps hidden)."""
        if self.traits.trains_on_union:
            return np.array([len(self.sizes)])
        return self.privacy.sample(len(self.sizes), self.config.fraction_per_round,
                                   self.sampling.generator())

    def finish(self) -> np.ndarray:
        """Reads what is still in flight and the end-of-run statistics; the final model."""
        self.collect()
        final_vector = ray.get(self.global_ref).global_vector
        self.read_late_reports()  # their diagnostics (a budget running out)
        actors = self.workers.actors
        if not self.traits.aggregates:
            self.record.set_local_cross(_cross_evaluate(actors))
        for part in ray.get([a.epsilon_spent.remote() for a in actors]):
            self.record.add_final_epsilons(part)  # own ledgers' ε, late batches too
        return final_vector


def _cross_evaluate(actors: list[Actor]) -> dict[int, dict[int, EvalStats]]:
    """A strategy without aggregation: every hospital's own model on every hospital's
    test split."""
    models: dict[int, np.ndarray] = {}
    for part in ray.get([a.own_models.remote() for a in actors]):
        models.update(part)
    models_ref = ray.put(models)
    cross: dict[int, dict[int, EvalStats]] = {m: {} for m in models}
    for part in ray.get([a.evaluate_models.remote(models_ref) for a in actors]):
        for m, stats in part.items():
            cross[m].update(stats)
    return cross
