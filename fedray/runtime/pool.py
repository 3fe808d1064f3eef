"""Warm workers: hospital and aggregator actors (and, under encryption, the key
authority and the decryptor) kept between the runs of one process.

Starting Ray and worker processes that import torch is most of a short run. A
multirun (Hydra runs its jobs one after another in one process), a sweep worker on a
cluster and a test session therefore keep Ray up and hand the same workers to the
next run. Each run reconfigures them from scratch (``HospitalWorker.configure``), so
nothing of one run reaches the next: a fresh worker and a reused one give the same
model (tested).

The hospital workers sit in one placement group: a run reserves all its CPUs at once,
so runs side by side on a cluster never each hold part of what they need and wait
on each other forever.
"""

from __future__ import annotations

import contextlib
import logging
from dataclasses import dataclass
from typing import Any

import ray
from ray.util.placement_group import placement_group, remove_placement_group
from ray.util.scheduling_strategies import PlacementGroupSchedulingStrategy

from fedray.config import ConfigError, SimulationConfig

log = logging.getLogger(__name__)

RESOURCE_WAIT_NOTICE_S = 30.0  # then say that the run waits for the cluster


@dataclass(frozen=True)
class WorkerShape:
    """What one hospital worker reserves."""

    num_cpus: float
    num_gpus: float

    def bundle(self) -> dict[str, float]:
        bundle = {"CPU": self.num_cpus}
        if self.num_gpus > 0:
            bundle["GPU"] = self.num_gpus
        return bundle


class WarmPool:
    """The workers of one Ray session. A later session (Ray shut down and started
    again) finds the pool empty: handles never outlive their cluster."""

    def __init__(self) -> None:
        self._session: str | None = None
        self._shape: WorkerShape | None = None
        self._group: Any = None
        self._hospital_workers: list[Any] = []
        self._aggregator: Any = None
        # key authority, decryptors (one, or the key holders), the controller's token
        self._key_roles: tuple[Any, list[Any], bytes] | None = None
        self._runs_served = 0  # by the current hospital workers
        self.reused = False  # whether the last run got workers an earlier run had used

    def hospital_workers(self, shape: WorkerShape, count: int) -> list[Any]:
        """``count`` hospital workers of this shape for a run: warm ones when the pool
        has enough, otherwise a new placement group of ``count`` (the old one released
        first)."""
        workers = self.prestart(shape, count)
        self.reused = self._runs_served > 0
        self._runs_served += 1
        return workers

    def prestart(self, shape: WorkerShape, count: int) -> list[Any]:
        """Starts the workers a run will probably ask for, so that their processes
        import torch while the driver is still planning."""
        self._forget_if_new_session()
        if shape == self._shape and count <= len(self._hospital_workers):
            return self._hospital_workers[:count]
        self._release_hospital_workers()
        self._runs_served = 0
        self._group = _reserve(shape, count)
        from fedray.runtime.hospital_worker import HospitalWorker

        worker_class = ray.remote(num_cpus=shape.num_cpus, num_gpus=shape.num_gpus)(
            HospitalWorker)
        # max_restarts: Ray brings a dead worker back (empty); the run re-configures it
        # and puts its hospitals' last states back (orchestrator.Run._recover).
        self._hospital_workers = [
            worker_class.options(max_restarts=-1, scheduling_strategy=(
                PlacementGroupSchedulingStrategy(self._group, placement_group_bundle_index=i))
            ).remote()
            for i in range(count)
        ]
        self._shape = shape
        return list(self._hospital_workers)

    def aggregator(self) -> Any:
        """The aggregator reserves no CPU (it only adds vectors), so it never blocks a
        hospital and lives outside the placement group."""
        self._forget_if_new_session()
        if self._aggregator is None:
            from fedray.runtime.aggregator_worker import AggregatorWorker

            self._aggregator = ray.remote(num_cpus=0)(AggregatorWorker).remote()
        return self._aggregator

    def key_roles(self, key_holders: int = 1) -> tuple[Any, list[Any], bytes]:
        """The key authority and the decryptors (encryption=ckks: one, or ``key_holders``
        key holders), no CPU each, and the controller's token that alone may start their
        runs and close rounds (they keep its digest); a run starts them afresh
        (``start_run``) but not their processes."""
        self._forget_if_new_session()
        if self._key_roles is not None and len(self._key_roles[1]) != key_holders:
            for actor in [self._key_roles[0], *self._key_roles[1]]:
                _kill(actor)
            self._key_roles = None
        if self._key_roles is None:
            from fedray.runtime.keys import (
                Decryptor,
                KeyAuthority,
                new_controller_token,
                token_digest,
            )

            token = new_controller_token()
            authority: Any = ray.remote(num_cpus=0)(KeyAuthority).remote(token_digest(token))
            sealing = ray.get(authority.public_key.remote())
            role = ray.remote(num_cpus=0)(Decryptor)
            decryptors = [role.remote(token_digest(token), sealing) for _ in range(key_holders)]
            self._key_roles = (authority, decryptors, token)
        return self._key_roles

    def discard(self) -> None:
        """Drops every worker (one died, a run failed half-way, Ray is going): the next
        run starts fresh ones."""
        self._release_hospital_workers()
        roles = self._key_roles
        for actor in [self._aggregator, *([roles[0], *roles[1]] if roles else [])]:
            if actor is not None:
                _kill(actor)
        self._aggregator, self._key_roles = None, None

    def _release_hospital_workers(self) -> None:
        for worker in self._hospital_workers:
            _kill(worker)
        if self._group is not None:
            with contextlib.suppress(Exception):  # its cluster is gone: nothing to release
                remove_placement_group(self._group)
        self._hospital_workers, self._group, self._shape = [], None, None

    def _forget_if_new_session(self) -> None:
        # A restarted local Ray has a new node id; a new driver on a cluster a new job id.
        context = ray.get_runtime_context()
        session = f"{context.get_node_id()}/{context.get_job_id()}"
        if self._session != session:
            self._hospital_workers, self._group, self._shape = [], None, None
            self._aggregator, self._key_roles = None, None
            self._session = session


def actor_count(config: SimulationConfig, cluster: dict[str, float], num_hospitals: int
                ) -> int:
    if config.ray.num_actors is not None:
        return min(config.ray.num_actors, num_hospitals)
    by_cpu = int(cluster.get("CPU", 1) // config.ray.num_cpus_per_actor)
    limits = [num_hospitals, max(by_cpu, 1)]
    if config.ray.num_gpus_per_actor > 0:
        limits.append(int(cluster.get("GPU", 0) // config.ray.num_gpus_per_actor))
    return max(1, min(limits))


def _reserve(shape: WorkerShape, count: int) -> Any:
    total = ray.cluster_resources()
    largest = {r: max((n["Resources"].get(r, 0) for n in ray.nodes() if n["Alive"]), default=0)
               for r in shape.bundle()}
    for resource, amount in shape.bundle().items():
        key = "ray.num_cpus_per_actor" if resource == "CPU" else "ray.num_gpus_per_actor"
        if largest[resource] < amount:
            raise ConfigError(key, amount, f"one hospital worker needs {amount:g} {resource} on "
                              f"one node and the largest node has {largest[resource]:g}")
        if total.get(resource, 0) < amount * count:
            raise ConfigError(key, amount, f"{count} hospital workers need {amount * count:g} "
                              f"{resource} and the Ray cluster has {total.get(resource, 0):g}; "
                              "lower ray.num_actors or the per-actor share")
    group = placement_group([shape.bundle()] * count, strategy="SPREAD")
    ready, _ = ray.wait([group.ready()], timeout=RESOURCE_WAIT_NOTICE_S)
    if not ready:
        log.warning("waiting for %d × %s free on the cluster (other runs hold them)",
                    count, shape.bundle())
        ray.get(group.ready())
    return group


def _kill(actor: Any) -> None:
    with contextlib.suppress(Exception):  # already dead, or its cluster is gone
        ray.kill(actor)


POOL = WarmPool()  # this process's; one Ray session at a time
