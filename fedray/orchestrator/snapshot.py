"""A run's whole state after a round, as plain data, and putting it back.

A snapshot holds what the next round needs and nothing it can recompute: the config
as given, the broadcast (global vector and strategy extras), the aggregator's state
(server moments, control variate, central-DP noise stream), every hospital's state
(its generators, ledger steps, strategy and optimiser state), the driver's sampling
and availability streams, the run's ledger and the record of rounds so far. Only
dicts, lists, strings, numbers and numpy arrays: fedray/checkpoint.py refuses to read
anything else back."""

from __future__ import annotations

from typing import Any

import numpy as np
import ray

from fedray.checkpoint import FORMAT  # 1: pickled live objects (before the split), refused
from fedray.config import SimulationConfig, config_to_dict
from fedray.orchestrator.rounds import Run
from fedray.outputs.record import RunRecord, record_from_state, record_state
from fedray.pipeline import RoundBroadcast


def snapshot(run: Run, round_: int, requested: SimulationConfig) -> dict[str, Any]:
    """The run's whole state after ``round_``: read once the round is collected, so every
    worker's state is the one after that round (calls to an actor run in order) and
    nothing is in flight."""
    run.collect()
    run.read_late_reports()  # references cannot outlive the run
    hospitals: dict[int, Any] = {}
    for part in ray.get([a.state_dict.remote() for a in run.workers.actors]):
        hospitals.update(part)
    broadcast = ray.get(run.global_ref)
    return {
        "format": FORMAT, "round": round_, "config": config_to_dict(requested),
        "record": record_state(run.record),
        "broadcast": {"global_vector": np.asarray(broadcast.global_vector),
                      "extras": {k: np.asarray(v) for k, v in broadcast.extras.items()}},
        "hospitals": hospitals,
        "aggregator": ray.get(run.workers.aggregator.state_dict.remote()),
        "sampling": run.sampling.state_dict(),
        "run_ledger": run.run_ledger.state_dict(),
        "availability": (None if run.availability is None
                         else run.availability.coins.state_dict()),
    }


def restore(run: Run, state: dict[str, Any]) -> None:
    """Puts a snapshot's state back into freshly configured workers and this run."""
    hospitals = ray.put(state["hospitals"])
    ray.get([a.load_state_dict.remote(hospitals) for a in run.workers.actors]
            + [run.workers.aggregator.load_state_dict.remote(state["aggregator"])])
    run.states = dict.fromkeys(state["hospitals"], hospitals)  # what a restart restores
    broadcast = state["broadcast"]
    run.global_ref = ray.put(RoundBroadcast(broadcast["global_vector"], broadcast["extras"]))
    run.sampling.load_state_dict(state["sampling"])
    run.run_ledger.load_state_dict(state["run_ledger"])
    if run.availability is not None:
        run.availability.coins.load_state_dict(state["availability"])


def recorded(state: dict[str, Any]) -> RunRecord:
    """The record of a snapshot's rounds."""
    return record_from_state(state["record"])
