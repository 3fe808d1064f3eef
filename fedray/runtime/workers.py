"""A run's workers: warm ones from the pool, configured for this run, with their keys
installed by the key authority under encryption; and which hospitals each one hosts."""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import ray

from fedray.audit.client_canary import CanaryClients
from fedray.config import SimulationConfig
from fedray.crypto.release import decryption_floor
from fedray.data import FederationPlan
from fedray.privacy import PrivacyPlan
from fedray.runtime.keys import encryption_settings
from fedray.runtime.pool import POOL, WarmPool, WorkerShape
from fedray.strategies.traits import traits_of


@dataclass(frozen=True)
class KeySide:
    """The driver's line to the decryptor (encryption=ckks): it closes each round with
    the update batches that arrived in time, by the controller's token."""

    decryptors: list[Any]  # one, or every key holder (threshold CKKS)
    token: bytes

    def close_round(self, round_: int, batches: list[ray.ObjectRef]) -> list[ray.ObjectRef]:
        return [d.close_round.remote(self.token, round_, batches) for d in self.decryptors]

    def wrapped(self) -> dict[int, int]:
        """Distributed DP: coordinates wrapped around the field, per decrypted round."""
        return ray.get(self.decryptors[0].wrapped.remote(self.token))


class NoKeySide:
    """No encryption: no decryptor to tell."""

    def close_round(self, round_: int, batches: list[ray.ObjectRef]) -> list[ray.ObjectRef]:
        return []

    def wrapped(self) -> dict[int, int]:
        return {}


@dataclass(frozen=True)
class RunActors:
    """A run's configured actors: the hospital workers, the aggregator, each hospital
    worker's (device, node id), per worker the call that configures it again (after
    Ray restarts it), and the driver's line to the decryptor."""

    workers: list[Any]
    aggregator: Any
    placed: list[tuple[str, str]]
    reconfigure: list[Callable[[], ray.ObjectRef]]
    key_side: KeySide | NoKeySide


@dataclass(frozen=True)
class Hosting:
    """Which hospitals each worker hosts, and which audit canary clients (``canaries``,
    ``canary_assignment[w]`` on worker w)."""

    assignment: list[list[int]]
    canaries: CanaryClients | None = None
    canary_assignment: list[list[int]] | None = None

    @property
    def num_clients(self) -> int:
        return sum(map(len, self.assignment)) + (self.canaries.count if self.canaries else 0)

    def canaries_of(self, worker: int) -> tuple[int, ...]:
        return tuple(self.canary_assignment[worker]) if self.canary_assignment else ()


def make_actors(config: SimulationConfig, plan: FederationPlan, hosting: Hosting,
                privacy: PrivacyPlan, pool: WarmPool = POOL) -> RunActors:
    """Configures warm workers (or new ones) for this run. A worker that died since the
    last run is replaced once, with the rest of the pool."""
    try:
        return _configure(config, plan, hosting, privacy, pool)
    except ray.exceptions.RayActorError:
        pool.discard()
        return _configure(config, plan, hosting, privacy, pool)


def _configure(config: SimulationConfig, plan: FederationPlan, hosting: Hosting,
               privacy: PrivacyPlan, pool: WarmPool) -> RunActors:
    assignment, clients = hosting.assignment, hosting.num_clients
    workers = pool.hospital_workers(
        WorkerShape(config.ray.num_cpus_per_actor, config.ray.num_gpus_per_actor),
        len(assignment))
    aggregator = pool.aggregator()
    authority = public = keys_from = None
    decryptors: list[Any] = []
    key_side: KeySide | NoKeySide = NoKeySide()
    token = b""
    if config.encryption.enabled:
        # Fresh keys every run. The key authority seals the secret material to the
        # hospital workers and the decryptor; the driver holds only handles, the
        # controller's token and the key-free context, which it passes to the aggregator.
        encryption = config.encryption
        authority, decryptors, token = pool.key_roles(encryption.key_holders)
        run = ray.get(authority.start_run.remote(
            token, encryption.threshold_parameters if encryption.threshold
            else encryption.parameters,
            encryption=encryption_settings(encryption), num_hospitals=clients,
            min_shares=decryption_floor(config.min_clients), decryptors=decryptors))
        public, keys_from = (run.public_context, run.fingerprint), (run.run, run.authority)
        key_side = KeySide(decryptors, token)
    pooled = traits_of(config.strategy.name).trains_on_union
    hosted = [indices + ([len(plan.hospitals)] if pooled and a == 0 else [])
              + list(hosting.canaries_of(a)) for a, indices in enumerate(assignment)]
    configure = [
        functools.partial(
            worker.configure.remote, config, [plan.hospitals[i] for i in indices],
            num_features=plan.num_features, num_classes=plan.num_classes, privacy=privacy,
            num_hospitals=clients,
            pooled_plans=list(plan.hospitals) if pooled and a == 0 else None,
            keys_from=keys_from, canaries=hosting.canaries,
            canary_indices=hosting.canaries_of(a),
        )
        for a, (worker, indices) in enumerate(zip(workers, assignment))
    ]
    configured = [call() for call in configure]
    configured.append(aggregator.configure.remote(
        config, privacy, clients, public, decryptors,
        num_features=plan.num_features, num_classes=plan.num_classes,
        canaries=hosting.canaries))
    placed = ray.get(configured)[:len(workers)]
    if authority is not None:
        ray.get(authority.provision.remote(token, list(zip(workers, hosted))))
    reconfigure: list[Callable[[], ray.ObjectRef]] = [
        functools.partial(_configure_and_provision, call, authority, token, worker, indices)
        for call, worker, indices in zip(configure, workers, hosted)
    ]
    return RunActors(workers, aggregator, placed, reconfigure, key_side)


def _configure_and_provision(configure: Callable[[], ray.ObjectRef], authority: Any,
                             token: bytes, worker: Any, hospitals: list[int]) -> ray.ObjectRef:
    """Configures a (restarted) worker again; with encryption, waits for that and has
    the key authority install its hospitals' keys. Returns the last step's reference."""
    if authority is None:
        return configure()
    ray.get(configure())
    return authority.provision.remote(token, [(worker, hospitals)])


def spread_canaries(canaries: CanaryClients | None, num_workers: int) -> list[list[int]] | None:
    """The audit's canary clients dealt over the workers in turn."""
    if canaries is None:
        return None
    return [list(canaries.indices)[w::num_workers] for w in range(num_workers)]


def assign_hospitals(sizes: list[int], num_actors: int) -> list[list[int]]:
    """Greedy longest-first balance of training records over actors."""
    loads = [0] * num_actors
    groups: list[list[int]] = [[] for _ in range(num_actors)]
    for i in sorted(range(len(sizes)), key=lambda k: -sizes[k]):
        target = int(np.argmin(loads))
        groups[target].append(i)
        loads[target] += sizes[i]
    return [sorted(g) for g in groups if g]
