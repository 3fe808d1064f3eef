"""Ray actors: they host hospitals and the aggregator, and only move arrays."""

from __future__ import annotations

import dataclasses
import functools
import time
from typing import Any, Callable, Optional

import numpy as np
import ray
import torch

from fedray.audit.dlg import dlg_invert
from fedray.audit.inversion import invert_first_layer
from fedray.audit.run import with_canaries
from fedray.config import SimulationConfig
from fedray.crypto import AwaitingKeys, make_codec
from fedray.crypto.release import model_digest, register_update
from fedray.data import FederationPlan, HospitalData, HospitalPlan, build_hospitals
from fedray.hospital import Hospital, RoundSetup
from fedray.models import build_model, flatten, num_trainable
from fedray.pipeline import (
    AggregateResult, HospitalReport, Rejection, RoundBroadcast, Update, aggregate,
    client_pipeline, upload_layout,
)
from fedray.privacy import RUN, PrivacyPlan, add_gaussian_noise, make_randomness
from fedray.privacy.dpsgd import DPSGDTrainer
from fedray.runtime.keys import HospitalKeys
from fedray.runtime.pool import POOL, WarmPool, WorkerShape, actor_count  # noqa: F401 (re-export)
from fedray.strategies import build_strategy
from fedray.training import LocalTraining


class HospitalWorker:
    """Hosts several hospitals and trains them one after another on one model copy.

    A worker outlives a run: ``configure`` replaces everything it holds (model, data,
    hospitals and their state), so a warm pool hands the same process, with torch
    already imported, to the next run of a sweep, which sees nothing of the last."""

    def __init__(self) -> None:
        self.hospitals: dict[int, Hospital] = {}
        self.trainers: dict[int, Hospital] = {}

    def configure(
        self, config: SimulationConfig, plans: list[HospitalPlan], *, num_features: int,
        num_classes: int, privacy: PrivacyPlan, num_hospitals: int,
        pooled_plans: Optional[list[HospitalPlan]] = None,
    ) -> tuple[str, str]:
        """Returns :meth:`ready`. With encryption on, the hospitals refuse to send
        anything until the key authority installs their keys (:meth:`install_keys`).
        ``pooled_plans`` (strategy=pooled): this worker also hosts the pooled trainer,
        hospital number ``num_hospitals``, whose data is the union of these hospitals'
        data (the reference run; the records are built here, never moved)."""
        # Nothing below reads torch's global generator, but a reused process starts every
        # run from the same one, so a hidden use could not make runs depend on each other.
        torch.manual_seed(config.seed)
        threads = max(1, int(config.ray.num_cpus_per_actor))
        torch.set_num_threads(threads)  # one thread per CPU held: no oversubscription
        use_gpu = config.ray.num_gpus_per_actor > 0 and torch.cuda.is_available()
        self.device = "cuda" if use_gpu else "cpu"
        model = build_model(
            config.model, num_features=num_features, num_classes=num_classes
        ).to(self.device)
        strategy = build_strategy(config.strategy)
        layout = upload_layout(strategy, model, num_hospitals)
        initial = flatten(model)
        self.setup = RoundSetup(
            model=model, strategy=strategy, layout=layout,
            settings=LocalTraining(epochs=config.local_epochs, steps=config.local_steps,
                                   batch_size=config.batch_size, lr=config.lr,
                                   optimizer=config.optimizer),
            local_positions=strategy.local_positions(model),
            dpsgd=(DPSGDTrainer(model, clip=privacy.clip, batch_size=config.batch_size,
                                lr=config.lr)
                   if privacy.mechanism.trains_records_privately else None),
        )
        datasets = [with_canaries(config, plan.index, data, num_classes)
                    for plan, data in zip(plans, build_hospitals(config.dataset, plans,
                                                                 seed=config.seed))]
        self.keys: Optional[HospitalKeys] = None
        self._codec_settings = (config.encryption, num_hospitals)
        codec: Any = AwaitingKeys() if config.encryption.enabled else make_codec(
            None, config.encryption, num_hospitals)
        self.hospitals = {
            plan.index: Hospital(
                index=plan.index, data=data, seed=config.seed, device=self.device,
                pipeline=client_pipeline(clips=privacy.mechanism.clips_updates,
                                         clip=privacy.clip,
                                         noise_std=privacy.client_noise_std(plan.index),
                                         codec=codec),
                secure_rng=privacy.secure_rng,
                strategy_state=strategy.init_client_state(initial, num_trainable(model)),
                planned_train=len(plan.train_rows),
                **_privacy_state(privacy, plan.index),
            )
            for plan, data in zip(plans, datasets)
        }
        self.personalize_steps = config.personalize_steps
        self.trainers: dict[int, Hospital] = {}  # train only: not evaluated as a hospital
        if pooled_plans:
            self.trainers[num_hospitals] = Hospital(
                index=num_hospitals,
                data=_pooled(config, pooled_plans, index=num_hospitals),
                seed=config.seed, device=self.device, pipeline=client_pipeline(
                    clips=False, clip=1.0, noise_std=0.0, codec=codec))
        return self.ready()

    def install_keys(self, keys: HospitalKeys) -> None:
        """The key authority's call (never the driver's): the secret context every
        hosted hospital encrypts with, their registration keys and the decryptor."""
        if self.keys is not None:  # once per run: nobody swaps a hospital's key later
            raise PermissionError("this worker's keys are installed already")
        codec = make_codec((keys.secret_context, keys.fingerprint), *self._codec_settings)
        for hospital in [*self.hospitals.values(), *self.trainers.values()]:
            hospital.pipeline = dataclasses.replace(hospital.pipeline, codec=codec)
        self.keys = keys

    def ready(self) -> tuple[str, str]:
        """This worker's device and the Ray node it runs on."""
        return self.device, ray.get_runtime_context().get_node_id()

    def train(self, broadcast: RoundBroadcast, weights: dict[int, float],
              late: frozenset[int] = frozenset(), round_: int = 0
              ) -> tuple[list[Update], list[HospitalReport], dict[int, dict[str, Any]]]:
        """Call with ``num_returns=3``: the updates go to the aggregator by reference,
        the reports (diagnostics) to the driver; neither sees the other's part. The third
        object, the trained hospitals' states after the round, stays in the store: the
        driver keeps its reference to restore them if this worker dies later (one task
        makes all three, so a round that arrived always has its states). A ``late``
        hospital trains (and spends its budget) but its update misses the round."""
        updates, reports = [], []
        for i, w in weights.items():
            hospital = self.hospitals[i] if i in self.hospitals else self.trainers[i]
            update, report = hospital.train(self.setup, broadcast, weight=w, round_=round_)
            if i in late:
                update, report = None, dataclasses.replace(report, late=True)
            if update is not None:
                updates.append(update)
            reports.append(report)
        if self.keys is not None and updates:  # before the updates can reach anyone
            # (a batch past its round's wall-clock timeout registers late: ignored there)
            model = model_digest(broadcast.global_vector, broadcast.extras)
            ray.get(self.keys.decryptor.register.remote(
                [register_update(u, self.keys.registration_keys[u.hospital], model)
                 for u in updates]))
        return updates, reports, self.state_dict(list(weights))

    def evaluate(self, broadcast: RoundBroadcast, round_: int = 0
                 ) -> dict[int, tuple[Any, Optional[Any]]]:
        """Each hosted hospital's test statistics for the global model, and (with
        ``personalize_steps``) after its own fine-tuning."""
        results = {}
        for i, h in self.hospitals.items():
            stats = h.evaluate(self.setup.model, broadcast.global_vector,
                               self.setup.local_positions)
            personal = (h.evaluate_personalized(self.setup, broadcast.global_vector,
                                                self.personalize_steps, round_)
                        if self.personalize_steps else None)
            results[i] = (stats, personal)
        return results

    def epsilon_spent(self) -> dict[int, Optional[float]]:
        """Each hosted hospital's ε from its own ledger, read at the end of a run (it
        counts late batches too, which the round reports may have missed)."""
        return {i: h.epsilon for i, h in self.hospitals.items()}

    def local_models(self) -> dict[int, np.ndarray]:
        """strategy=local: each hosted hospital's own model (the reference run's
        cross-evaluation; nothing like it happens in a federation)."""
        return {i: h.strategy_state["local"] for i, h in self.hospitals.items()
                if "local" in h.strategy_state}

    def evaluate_models(self, models: dict[int, np.ndarray]) -> dict[int, dict[int, Any]]:
        """Every given model on every hosted hospital's test split: {model: {hospital: stats}}."""
        return {m: {i: h.evaluate(self.setup.model, vector) for i, h in self.hospitals.items()}
                for m, vector in models.items()}

    def state_dict(self, indices: Optional[list[int]] = None) -> dict[int, dict[str, Any]]:
        """The hosted hospitals' states (only ``indices``, when given)."""
        hosted = {**self.hospitals, **self.trainers}
        wanted = None if indices is None else set(indices)
        return {i: h.state_dict() for i, h in hosted.items() if wanted is None or i in wanted}

    def load_state_dict(self, states: dict[int, dict[str, Any]]) -> None:
        """Loads the states of the hospitals this worker hosts; ``states`` may hold every
        hospital's (one object in the store, read by every worker)."""
        for i, hospital in {**self.hospitals, **self.trainers}.items():
            if i in states:
                hospital.load_state_dict(states[i])


class AggregatorWorker:
    """Receives the hospitals' update batches and aggregates them; holds no data. It
    holds the strategy's server state (control variates, optimiser moments). Like a
    hospital worker, it is reused between runs: ``configure`` replaces all it holds."""

    def configure(
        self, config: SimulationConfig, privacy: PrivacyPlan, num_hospitals: int,
        public_context: Optional[tuple[bytes, str]] = None, decryptor: Any = None, *,
        num_features: int = 13, num_classes: int = 2,
    ) -> None:
        """With encryption the aggregator gets the public context only: it can check and
        add ciphertexts, and asks the decryptor (a hospital's role) for the sum."""
        self.codec: Any = make_codec(public_context, config.encryption, num_hospitals)
        self.decryptor = decryptor
        if public_context is not None and self.codec.can_decrypt:
            # a trust boundary, so never an assert (-O drops those)
            raise PermissionError("the aggregator was given a secret key; refusing to run")
        strategy = build_strategy(config.strategy)
        model = build_model(config.model, num_features=num_features, num_classes=num_classes)
        self.layout = upload_layout(strategy, model, num_hospitals)
        # audit.inversion: the first update of the target hospital, as it arrived here
        self.inversion_target = config.audit.target if config.audit.inversion else None
        self.inversion_payload: Any = None
        self.inversion_start: Optional[np.ndarray] = None  # the global model it started from
        self.attack = (model, config.batch_size, config.audit.dlg_iterations, config.seed)
        first = next(m for m in model.modules() if isinstance(m, torch.nn.Linear))
        self.first_layer = (first.in_features, first.out_features)
        self.server_state = strategy.init_server_state(flatten(model), num_trainable(model))
        # Under encryption the decryptor releases no sum of fewer than min_clients
        # contributions (a smaller request would stop the run), so none is asked for.
        self.min_accepted = (config.min_clients if config.encryption.enabled
                             else 0 if privacy.releases_every_round else privacy.min_shares)
        self.server_noise, self.fixed_denominator = None, None
        self._noise_randomness: Optional[Any] = None
        std = privacy.server_noise_std()
        if std > 0:  # central DP: σ times one hospital's reach on the sum, C/(qN)
            randomness = make_randomness(secure=privacy.secure_rng,
                                         seed=np.random.SeedSequence([config.seed, 0xCE17]))
            self._noise_randomness = randomness
            self.server_noise = lambda total: add_gaussian_noise(
                total, std, randomness.generator(), secure=randomness.secure)
        if privacy.mechanism.fixed_weights:
            self.fixed_denominator = 1.0  # weights sum to 1 in expectation, not per round
        # Plaintext updates clipped to C and carrying no noise of their own (central DP):
        # the aggregator can check the bound the server's noise is calibrated to.
        self.norm_bound: Optional[float] = (
            privacy.clip if public_context is None and privacy.mechanism.clips_updates
            and not privacy.mechanism.noise_on_updates else None)

    def ready(self) -> bool:
        return True

    def aggregate(self, batches: list[ray.ObjectRef], broadcast: RoundBroadcast,
                  weights: dict[int, float], round_: Optional[int] = None
                  ) -> tuple[RoundBroadcast, AggregateResult]:
        """``batches`` are the refs of hospital-actor results (a list inside the argument
        stays unresolved), so the updates travel actor to aggregator, not via the driver.
        ``weights`` are the round's weights from the orchestrator.

        Returns the next broadcast and the report separately (call with
        ``num_returns=2``): the broadcast goes on to the next round's training by
        reference, the report (without model or state) to the driver."""
        updates: list[Update] = []
        failed: list[Rejection] = []
        read: list[ray.ObjectRef] = []
        start = time.perf_counter()
        for ref in batches:
            try:
                updates.extend(ray.get(ref))
                read.append(ref)
            except ray.exceptions.RayError as err:  # a crashed actor or hospital
                failed.append(Rejection(-1, f"update batch failed: {type(err).__name__}: {err}"))
        received = time.perf_counter() - start
        if self.inversion_payload is None and self.inversion_target is not None:
            self.inversion_payload = next((u.payload for u in updates
                                           if u.hospital == self.inversion_target), None)
            self.inversion_start = np.array(broadcast.global_vector)
        decode = None
        if self.decryptor is not None:  # the decryptor checks the sum against what it reads
            decode = lambda total, summed: ray.get(self.decryptor.decrypt.remote(  # noqa: E731
                round_, list(summed), read, self.codec.seal(total)))
        result = aggregate(updates, broadcast=broadcast, server_state=self.server_state,
                           weights=weights, layout=self.layout, codec=self.codec,
                           decode=decode, server_noise=self.server_noise,
                           fixed_denominator=self.fixed_denominator,
                           min_accepted=self.min_accepted, round_=round_,
                           norm_bound=self.norm_bound)
        assert result.server_state is not None and result.broadcast is not None
        self.server_state = result.server_state
        report = dataclasses.replace(
            result, broadcast=None, server_state=None,
            rejected=result.rejected + tuple(failed),
            seconds={**result.seconds, "receive": received},
        )
        return result.broadcast, report

    def inversion_view(self) -> dict[str, Any]:
        """audit.inversion, run where the attacker sits: analytic inversion of the
        target's first update as this aggregator received it (candidate records), or
        nothing when it received ciphertexts."""
        payload = self.inversion_payload
        if payload is None:
            return {"view": "nothing received", "candidates": None}
        if not isinstance(payload, np.ndarray):
            return {"view": "ciphertext", "candidates": None}
        model, batch_size, iterations, seed = self.attack
        if any(isinstance(m, torch.nn.modules.batchnorm._BatchNorm) for m in model.modules()):
            return {"view": "plaintext", "candidates": None, "not_applicable":
                    "the first layer feeds a BatchNorm, which cancels its bias gradient"}
        inputs, outputs = self.first_layer
        dlg = (dlg_invert(model, self.inversion_start, payload, num_records=batch_size,
                          num_features=inputs, iterations=iterations, seed=seed)
               if iterations and self.inversion_start is not None else None)
        return {"view": "plaintext",
                "candidates": invert_first_layer(payload, inputs=inputs, outputs=outputs),
                "dlg_candidates": dlg}

    def state_dict(self) -> dict[str, Any]:
        noise = self._noise_randomness
        return {"strategy": {k: np.array(v) for k, v in self.server_state.items()},
                "noise": None if noise is None else noise.state_dict()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.server_state = {k: np.array(v) for k, v in state["strategy"].items()}
        if self._noise_randomness is not None:
            self._noise_randomness.load_state_dict(state["noise"])


def make_actors(
    config: SimulationConfig, plan: FederationPlan, assignment: list[list[int]],
    privacy: PrivacyPlan, pool: WarmPool = POOL,
) -> tuple[list[ray.actor.ActorHandle], ray.actor.ActorHandle, list[tuple[str, str]],
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
) -> tuple[list[ray.actor.ActorHandle], ray.actor.ActorHandle, list[tuple[str, str]],
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
    pooled = config.strategy.name == "pooled"
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
    reconfigure = [
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


def _pooled(config: SimulationConfig, plans: list[HospitalPlan], *, index: int
            ) -> HospitalData:
    """The union of what the hospitals hold: each record as its hospital holds it, or
    (``strategy.pooled_scaling=pooled``, FLamby's pooled run) the union's rows scaled
    with the union's own statistics."""
    if config.strategy.pooled_scaling == "pooled":
        union = HospitalPlan(index=index, name="pooled",
                             train_rows=np.concatenate([p.train_rows for p in plans]),
                             test_rows=np.concatenate([p.test_rows for p in plans]))
        return build_hospitals(config.dataset, [union], seed=config.seed)[0]
    datasets = build_hospitals(config.dataset, plans, seed=config.seed)
    return HospitalData(
        "pooled", np.concatenate([d.x_train for d in datasets]),
        np.concatenate([d.y_train for d in datasets]),
        np.concatenate([d.x_test for d in datasets]), np.concatenate([d.y_test for d in datasets]))


def _privacy_state(privacy: PrivacyPlan, index: int) -> dict[str, Any]:
    """A hospital's own ledger (local, DP-SGD) or its own sampling coin (distributed)."""
    if privacy.self_sampling:
        return {"self_sample_rate": privacy.party(RUN).sample_rate}
    if not privacy.enabled or not privacy.mechanism.per_hospital:
        return {}
    return {"ledger": privacy.ledger(index), "party": privacy.party(index)}


def assign_hospitals(sizes: list[int], num_actors: int) -> list[list[int]]:
    """Greedy longest-first balance of training records over actors."""
    loads = [0] * num_actors
    groups: list[list[int]] = [[] for _ in range(num_actors)]
    for i in sorted(range(len(sizes)), key=lambda k: -sizes[k]):
        target = int(np.argmin(loads))
        groups[target].append(i)
        loads[target] += sizes[i]
    return [sorted(g) for g in groups if g]
