"""A run's workers: warm ones from the pool, configured for this run, with their keys
installed by the key authority under encryption; and which hospitals each one hosts."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import numpy as np
import ray

from fedray.config import SimulationConfig
from fedray.data import FederationPlan
from fedray.privacy import PrivacyPlan
from fedray.runtime.pool import POOL, WarmPool, WorkerShape
from fedray.strategies.traits import traits_of


def make_actors(
    config: SimulationConfig, plan: FederationPlan, assignment: list[list[int]],
    privacy: PrivacyPlan, pool: WarmPool = POOL,
) -> tuple[list[Any], Any, list[tuple[str, str]],
           list[Callable[[], ray.ObjectRef]]]:
    """Configures warm workers (or new ones) for this run; returns the hospital workers,
    the aggregator, each hospital worker's (device, node id) and, per worker, the call
    that configures it again (after Ray restarts it). A worker that died since the last
    run is replaced once, with the rest of the pool."""
    try:
        return _configure(config, plan, assignment, privacy, pool)
    except ray.exceptions.RayActorError:
        pool.discard()
        return _configure(config, plan, assignment, privacy, pool)


def _configure(
    config: SimulationConfig, plan: FederationPlan, assignment: list[list[int]],
    privacy: PrivacyPlan, pool: WarmPool,
) -> tuple[list[Any], Any, list[tuple[str, str]],
           list[Callable[[], ray.ObjectRef]]]:
    workers = pool.hospital_workers(
        WorkerShape(config.ray.num_cpus_per_actor, config.ray.num_gpus_per_actor),
        len(assignment))
    aggregator = pool.aggregator()
    authority = public = decryptor = None
    decryptor_ready = []
    if config.encryption.enabled:
        # Fresh keys every run. The key authority installs the secret material in the
        # hospital workers and the decryptor itself; the driver holds only handles and
        # the public context's reference, which it passes on to the aggregator.
        authority, decryptor = pool.key_roles()
        public = authority.start_run.remote(config.encryption.parameters)
        decryptor_ready = [decryptor.start_run.remote(config.encryption, len(plan.hospitals),
                                                      config.min_clients)]
    pooled = traits_of(config.strategy.name).trains_on_union
    hosted = [indices + ([len(plan.hospitals)] if pooled and a == 0 else [])
              for a, indices in enumerate(assignment)]
    configure = [
        functools.partial(
            worker.configure.remote, config, [plan.hospitals[i] for i in indices],
            num_features=plan.num_features, num_classes=plan.num_classes, privacy=privacy,
            num_hospitals=len(plan.hospitals),
            pooled_plans=list(plan.hospitals) if pooled and a == 0 else None,
        )
        for a, (worker, indices) in enumerate(zip(workers, assignment))
    ]
    configured = [call() for call in configure]
    configured.append(aggregator.configure.remote(
        config, privacy, len(plan.hospitals), public, decryptor,
        num_features=plan.num_features, num_classes=plan.num_classes))
    placed = ray.get(configured + decryptor_ready)[:len(workers)]
    if authority is not None:
        ray.get(authority.provision.remote(list(zip(workers, hosted)), decryptor))
    reconfigure: list[Callable[[], ray.ObjectRef]] = [
        functools.partial(_configure_and_provision, call, authority, worker, indices)
        for call, worker, indices in zip(configure, workers, hosted)
    ]
    return workers, aggregator, placed, reconfigure


def _configure_and_provision(configure: Callable[[], ray.ObjectRef], authority: Any,
                             worker: Any, hospitals: list[int]) -> ray.ObjectRef:
    """Configures a (restarted) worker again; with encryption, waits for that and has
    the key authority install its hospitals' keys. Returns the last step's reference."""
    if authority is None:
        return configure()
    ray.get(configure())
    return authority.provision.remote([(worker, hospitals)])


def assign_hospitals(sizes: list[int], num_actors: int) -> list[list[int]]:
    """Greedy longest-first balance of training records over actors."""
    loads = [0] * num_actors
    groups: list[list[int]] = [[] for _ in range(num_actors)]
    for i in sorted(range(len(sizes)), key=lambda k: -sizes[k]):
        target = int(np.argmin(loads))
        groups[target].append(i)
        loads[target] += sizes[i]
    return [sorted(g) for g in groups if g]
