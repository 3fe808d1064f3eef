"""The driver's side of a run: plan it (``prepare``), configure its workers and run
its rounds (``run_rounds``).

By job: ``rounds`` is the round loop, ``recovery`` closes a round (deadlines, late
batches, workers that died and their restart), ``snapshot`` turns the run's state into
plain data and back, ``auditing`` runs the attacks once the rounds are over."""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import ray
from tqdm.auto import tqdm

from fedray.audit.client_canary import CanaryClients
from fedray.audit.run import gradient_canaries_for
from fedray.availability import draw_profile, local_steps
from fedray.batched import batched_choice
from fedray.checkpoint import write_checkpoint
from fedray.config import ConfigError, SimulationConfig
from fedray.data import FederationPlan
from fedray.models import build_model, initial_parameters, num_trainable
from fedray.orchestrator.auditing import audit_run
from fedray.orchestrator.recovery import own_newest_states
from fedray.orchestrator.rounds import Availability, Run, Workers
from fedray.orchestrator.snapshot import recorded, restore, snapshot
from fedray.outputs.record import RunRecord, build_summary
from fedray.pipeline import RoundBroadcast
from fedray.planning import client_sizes, plan
from fedray.privacy import PrivacyPlan, make_randomness
from fedray.privacy.summary import wrap_report
from fedray.runtime.pool import POOL, actor_count
from fedray.runtime.workers import Hosting, assign_hospitals, make_actors, spread_canaries
from fedray.strategies import build_strategy

__all__ = ["Finished", "Prepared", "own_newest_states", "prepare", "run_rounds"]

SAMPLING_STREAM, AVAILABILITY_DRAWS, AVAILABILITY_COINS = 0x5A3, 0xA7A1, 0x0FF1


@dataclass(frozen=True)
class Prepared:
    """A planned run: everything decided before Ray is needed."""

    config: SimulationConfig  # as planned (derived values filled in)
    federation: FederationPlan
    privacy: PrivacyPlan
    initial: np.ndarray
    num_trainable: int
    requested: SimulationConfig  # as given: what a checkpoint keeps, to plan again
    canaries: CanaryClients | None = None  # audit.client_canary's canary clients

    @property
    def client_sizes(self) -> list[int]:
        """Training records per client: the hospitals', then the canary clients'."""
        return client_sizes(self.config, self.federation)


def prepare(config: SimulationConfig) -> Prepared:
    """Plans the run (hospitals, privacy, packing) and its round-0 model. Raises
    ConfigError for what the data cannot give (e.g. more hospitals than records)."""
    planned, federation, privacy = plan(config)
    initial = initial_parameters(planned.model, num_features=federation.num_features,
                                 num_classes=federation.num_classes, seed=planned.seed)
    canaries = (CanaryClients(
        count=planned.audit.client_canaries, first=len(federation.hospitals),
        dimension=len(initial), norm=privacy.clip, seed=planned.seed,
        # replace-one's neighbour sends another update (the opposite one is farthest);
        # add/remove's and zero-out's sends nothing
        out_sign=-1.0 if privacy.neighbour_replaces else 0.0)
        if planned.audit.client_canary else None)
    return Prepared(planned, federation, privacy, initial,
                    federation_trainable(planned, federation), requested=config,
                    canaries=canaries)


@dataclass(frozen=True)
class Finished:
    """What a run leaves once its last round is read."""

    summary: dict[str, Any]
    metrics: pd.DataFrame
    global_vector: np.ndarray


def run_rounds(prepared: Prepared, cluster: dict[str, float], wall_start: float,
               resume: dict[str, Any] | None = None) -> Finished:
    """Configures the workers and runs every round (from the round after ``resume``'s,
    a checkpoint of this run); Ray must be up."""
    config = prepared.config
    run, num_actors, devices = _start(prepared, cluster, resume)
    startup_seconds = time.perf_counter() - wall_start
    first = 1
    if resume is not None:
        restore(run, resume)
        first = resume["round"] + 1
        run.bar.update(resume["round"])
    loop_start = time.perf_counter()
    for round_ in range(first, config.num_rounds + 1):
        if not run.round(round_):
            break
        run.bar.update(1)
        if config.checkpoint_every and round_ % config.checkpoint_every == 0:
            write_checkpoint(Path(str(config.output_dir)), round_,
                             snapshot(run, round_, prepared.requested))
    final_vector = run.finish()
    loop_seconds = time.perf_counter() - loop_start
    run.bar.close()
    summary = build_summary(config, prepared.federation, prepared.privacy, run.record,
                            devices=devices, startup_seconds=startup_seconds,
                            loop_seconds=loop_seconds,
                            wall_seconds=time.perf_counter() - wall_start,
                            num_actors=num_actors)
    # The final model's fingerprint: a resumed run and an uninterrupted one compare equal.
    summary["model_sha256"] = hashlib.sha256(
        np.ascontiguousarray(final_vector).tobytes()).hexdigest()
    summary["resumed_from_round"] = None if resume is None else resume["round"]
    summary["training"] = _training_summary(prepared, run.workers.owner)
    if prepared.privacy.skellam is not None:  # the decryptor's count, driver's eyes only
        summary["privacy"]["mechanism"].update(wrap_report(
            run.workers.key_side.wrapped(), prepared.privacy.skellam.length))
    if config.audit.enabled:
        summary["audit"] = audit_run(
            config, federation=prepared.federation, initial=prepared.initial,
            record=run.record, summary=summary, final_vector=final_vector,
            aggregator=run.workers.aggregator, run_ledger=run.run_ledger,
            canaries=prepared.canaries, per_upload=prepared.privacy.epsilon_is_per_upload,
            global_models=[broadcast.global_vector for broadcast in ray.get(run.released)],
            gradient_canaries=gradient_canaries_for(
                config, num_parameters=prepared.num_trainable, clip=prepared.privacy.clip))
    return Finished(summary, run.record.log.frame(), final_vector)


def _training_summary(prepared: Prepared, owner: dict[int, Any]) -> dict[str, Any]:
    """training.batched as the busiest hospital worker decided it (each decides for
    the hospitals it hosts, fedray/batched.py)."""
    hospitals = len(prepared.federation.hospitals)
    hosted: dict[int, int] = {}
    for i, actor in owner.items():
        if i < hospitals:
            hosted[id(actor)] = hosted.get(id(actor), 0) + 1
    model = build_model(prepared.config.model, num_features=prepared.federation.num_features,
                        num_classes=prepared.federation.num_classes)
    batched, why_not = batched_choice(prepared.config, model,
                                      clips_each_record=prepared.privacy.clips_each_record,
                                      hosted=max(hosted.values(), default=0))
    return {"batched": batched, "not_batched_because": why_not,
            "most_hospitals_a_worker": max(hosted.values(), default=0)}


def _start(prepared: Prepared, cluster: dict[str, float], resume: dict[str, Any] | None
           ) -> tuple[Run, int, list[str]]:
    """Configures the workers and builds the run's driver state; returns it with the
    number of hospital workers and their devices."""
    config, federation, privacy = prepared.config, prepared.federation, prepared.privacy
    sizes = prepared.client_sizes  # hospitals, then any audit canary clients
    strategy = build_strategy(config.strategy)
    traits = strategy.traits
    trainer_names = [strategy.name] if traits.trains_on_union else []  # the union's trainer
    record = (recorded(resume) if resume is not None else
              RunRecord(names=[h.name for h in federation.hospitals] + trainer_names,
                        hide_sample=privacy.hides_sample))
    if config.ray.num_gpus_per_actor > 0 and cluster.get("GPU", 0) == 0:
        raise ConfigError("ray.num_gpus_per_actor", config.ray.num_gpus_per_actor,
                          "the Ray cluster has no GPU; use 0")
    hospital_sizes = federation.train_sizes
    assignment = assign_hospitals(hospital_sizes,
                                  actor_count(config, cluster, len(hospital_sizes)))
    hosting = Hosting(assignment, prepared.canaries,
                      spread_canaries(prepared.canaries, len(assignment)))
    configured = make_actors(config, federation, hosting, privacy)
    actors, placed = configured.workers, configured.placed
    owner = {i: a for a, indices in zip(actors, assignment) for i in indices}
    for a, actor in enumerate(actors):
        owner.update(dict.fromkeys(hosting.canaries_of(a), actor))
    if traits.trains_on_union:  # one trainer on the union, on actor 0
        owner[len(sizes)] = actors[0]
    record.set_placement(num_parameters=int(prepared.initial.shape[0]),
                         warm_workers=POOL.reused,
                         nodes=_hospitals_by_node(placed, assignment, record.names))
    server_state = strategy.init_server_state(prepared.initial, prepared.num_trainable)
    run = Run(
        config=config, privacy=privacy, traits=traits, record=record,
        workers=Workers(actors=actors, owner=owner, aggregator=configured.aggregator,
                        reconfigure=configured.reconfigure, key_side=configured.key_side),
        sizes=sizes,
        # one copy in the object store, read by every actor
        global_ref=ray.put(RoundBroadcast(prepared.initial, strategy.broadcast(server_state))),
        sampling=make_randomness(secure=privacy.secure_rng,
                                 seed=np.random.SeedSequence([config.seed, SAMPLING_STREAM])),
        bar=tqdm(total=config.num_rounds, desc="rounds", unit="round",
                 disable=not config.progress, leave=False),
        run_ledger=privacy.run_ledger(),
        availability=_availability(config, sizes, record),
    )
    return run, len(assignment), [device for device, _ in placed]


def _availability(config: SimulationConfig, sizes: list[int], record: RunRecord
                  ) -> Availability | None:
    """Each hospital's seeded availability draws (availability.*), recorded."""
    if not config.availability.enabled:
        return None
    steps = local_steps(sizes, epochs=config.local_epochs, steps=config.local_steps,
                        batch_size=config.batch_size)
    profile = draw_profile(config.availability, steps, np.random.default_rng(
        np.random.SeedSequence([config.seed, AVAILABILITY_DRAWS])))
    record.set_availability({"online_probability": profile.online.tolist(),
                             "speed_factor": profile.speed.tolist(),
                             "round_seconds": profile.round_seconds.tolist()})
    return Availability(profile, make_randomness(
        secure=False, seed=np.random.SeedSequence([config.seed, AVAILABILITY_COINS])))


def _hospitals_by_node(placed: list[tuple[str, str]], assignment: list[list[int]],
                       names: list[str]) -> dict[str, list[str]]:
    """Which Ray node hosted which hospitals (node ids as Ray names them)."""
    nodes: dict[str, list[str]] = {}
    for (_, node), indices in zip(placed, assignment):
        nodes.setdefault(node, []).extend(names[i] for i in indices)
    return nodes


def federation_trainable(config: SimulationConfig, federation: FederationPlan) -> int:
    return num_trainable(build_model(config.model, num_features=federation.num_features,
                                     num_classes=federation.num_classes))
