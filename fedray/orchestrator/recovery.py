"""Dispatching a round's training and closing it: what arrived in time, what came
late, and which workers died (their hospitals lose the round; Ray restarts the worker
and it is configured again with its hospitals' last states)."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import ray

from fedray.config import first_line

RESTART_WAIT_S = 120.0  # how long a failed hospital worker may take to come back

Actor = Any  # a Ray actor handle (ray.actor.ActorHandle; its methods are dynamic)


@dataclass
class Batch:
    """One worker's share of a round: its references and who is in it."""

    actor: Actor
    reports: ray.ObjectRef
    states: ray.ObjectRef  # its hospitals' states after the round
    hospitals: list[int]  # trained this round
    expected: int  # updates it can bring (its hospitals less the late ones)
    error: str | None = None


@dataclass(frozen=True)
class Closed:
    """A round's batches once its deadline passed: the arrived batches' update
    references (for the aggregator) and reports, the late batches' reports, the
    batches whose worker died, and how many updates arrived."""

    updates: list[ray.ObjectRef]
    reports: list[ray.ObjectRef]
    late: list[ray.ObjectRef]
    failed: list[Batch]
    arrived: int


def dispatch_training(global_ref: ray.ObjectRef, weights: dict[int, float],
                      owner: dict[int, Actor], late: set[int], round_: int
                      ) -> dict[ray.ObjectRef, Batch]:
    """One train call per actor that hosts participants (its updates, reports and the
    trained hospitals' states after the round); returns each update batch's Batch."""
    by_actor: dict[Actor, dict[int, float]] = {}
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


def close_round(training: dict[ray.ObjectRef, Batch], *, timeout_s: float | None,
                states: dict[int, ray.ObjectRef]) -> Closed:
    """Waits for the batches until ``timeout_s`` (None: all of them). A batch still
    running then is left to finish and ignored: cancelling a running task of a
    synchronous actor would interrupt its hospitals mid-step. Arrived batches' states
    become their hospitals' latest (``states``, updated in place)."""
    ready: list[ray.ObjectRef] = []
    missed: list[ray.ObjectRef] = []
    if training:
        ready, missed = ray.wait(list(training), num_returns=len(training), timeout=timeout_s)
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
    return Closed(updates=ready, reports=[training[ref].reports for ref in ready],
                  late=[training[ref].reports for ref in missed], failed=failed,
                  arrived=sum(training[ref].expected for ref in ready))


def restore_worker(actor: Actor, *, reconfigure: Callable[[], ray.ObjectRef],
                   hosted: set[int], states: dict[int, ray.ObjectRef]) -> None:
    """Configures a restarted worker again and gives each of its hospitals the state
    of its own last round that arrived (hospitals that never trained keep the
    configured, initial state)."""
    deadline = time.monotonic() + RESTART_WAIT_S
    while True:  # a call to a worker Ray is still restarting is refused: try again
        try:
            ray.get(reconfigure())
            break
        except ray.exceptions.ActorUnavailableError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)
    ray.get(actor.load_state_dict.remote(own_newest_states(states, hosted, ray.get)))


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


def arrived(refs: list[ray.ObjectRef]) -> list[Any]:
    """The values of these references, less those whose worker died before answering
    (a restarted worker's hospitals have no report or evaluation for that round)."""
    values = []
    for ref in refs:
        try:
            values.append(ray.get(ref))
        except ray.exceptions.RayError:  # died, or ran on its restarted (empty) self
            continue
    return values
