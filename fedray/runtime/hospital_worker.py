"""The hospital worker: a Ray actor that hosts several hospitals and only moves arrays."""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np
import ray
import torch

from fedray.audit.client_canary import CanaryClients
from fedray.audit.run import gradient_canaries_for, with_canaries
from fedray.batched import batched_choice, train_batched
from fedray.config import SimulationConfig
from fedray.crypto import AwaitingKeys, make_codec
from fedray.crypto.release import model_digest, register_update
from fedray.crypto.sealing import SealingKey
from fedray.data import HospitalData, HospitalPlan, build_hospitals
from fedray.evaluation import evaluate_many
from fedray.hospital import Hospital, RoundSetup
from fedray.local_trainers import CanaryTraining, TrainedTogether
from fedray.models import build_model, flatten, load_flat, num_trainable
from fedray.pipeline import ClientPipeline, HospitalReport, RoundBroadcast, Update, upload_layout
from fedray.privacy import PrivacyPlan
from fedray.runtime.keys import HospitalKeys, open_hospital_keys
from fedray.strategies import build_strategy
from fedray.strategies.base import ClientRound, with_own_values
from fedray.training import LocalTraining


class HospitalWorker:
    """Hosts several hospitals and trains them one after another on one model copy.

    A worker outlives a run: ``configure`` replaces everything it holds (model, data,
    hospitals and their state), so a warm pool hands the same process, with torch
    already imported, to the next run of a sweep, which sees nothing of the last."""

    def __init__(self) -> None:
        self.hospitals: dict[int, Hospital] = {}
        self.trainers: dict[int, Hospital] = {}
        self.canaries: dict[int, Hospital] = {}

    def configure(
        self, config: SimulationConfig, plans: list[HospitalPlan], *, num_features: int,
        num_classes: int, privacy: PrivacyPlan, num_hospitals: int,
        pooled_plans: list[HospitalPlan] | None = None, keys_from: tuple[int, bytes] | None = None,
        canaries: CanaryClients | None = None, canary_indices: tuple[int, ...] = (),
    ) -> tuple[str, str]:
        """Returns :meth:`ready`. With encryption on, the hospitals refuse to send
        anything until the key authority installs their keys (:meth:`install_keys`):
        ``keys_from`` is the run's number and the authority's public sealing key, and the
        worker makes a fresh sealing key of its own for this run.
        ``pooled_plans`` (a strategy that trains on the union, ``pooled``): this worker
        also hosts that trainer,
        hospital number ``num_hospitals``, whose data is the union of these hospitals'
        data (the reference run; the records are built here, never moved).
        ``canary_indices``: the audit's canary clients this worker hosts (``canaries``);
        they hold no records, train nothing and are neither evaluated nor reported."""
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
        initial, trainable = flatten(model), num_trainable(model)
        self.setup = RoundSetup(
            model=model, strategy=strategy, layout=layout,
            settings=LocalTraining(epochs=config.local_epochs, steps=config.local_steps,
                                   batch_size=config.batch_size, lr=config.lr,
                                   optimizer=config.optimizer),
            local_positions=strategy.local_positions(model),
            trainer=privacy.local_trainer(
                model, batch_size=config.batch_size, lr=config.lr,
                gradient_canaries=gradient_canaries_for(
                    config, num_parameters=trainable, clip=privacy.clip)),
        )
        datasets = [with_canaries(config, plan.index, data, num_classes)
                    for plan, data in zip(plans, build_hospitals(config.dataset, plans,
                                                                 seed=config.seed))]
        self.keys: HospitalKeys | None = None
        self._keys_from = keys_from
        self._sealing = SealingKey()  # fresh each run: an old run's box never opens
        self._codec_settings = (config.encryption, num_hospitals)
        codec: Any = AwaitingKeys() if config.encryption.enabled else make_codec(
            None, config.encryption, num_hospitals)
        self.hospitals = {}
        for plan, data in zip(plans, datasets):
            own = privacy.client_privacy(plan.index)
            self.hospitals[plan.index] = Hospital(
                index=plan.index, data=data, seed=config.seed, device=self.device,
                pipeline=ClientPipeline(steps=own.steps, codec=codec,
                                         discretize=own.discretize), privacy=own,
                secure_rng=privacy.secure_rng,
                strategy_state=strategy.init_client_state(initial, trainable),
                planned_train=len(plan.train_rows),
            )
        self.personalize_steps = config.personalize_steps
        self._test_block: tuple[torch.Tensor, torch.Tensor, np.ndarray] | None = None
        # training.batched: the hospitals hosted here train together each round
        self.batched = self.device == "cpu" and batched_choice(
            config, model, clips_each_record=privacy.clips_each_record, hosted=len(plans))[0]
        self.canaries = {}
        if canaries is not None:
            self.canary_setup = dataclasses.replace(
                self.setup, trainer=CanaryTraining(canaries, canaries.included()))
            nothing = np.zeros((0, num_features), dtype=np.float32)
            for i in canary_indices:
                own = privacy.client_privacy(i)
                self.canaries[i] = Hospital(
                    index=i, data=HospitalData(f"canary {i}", nothing, np.zeros(0, np.int64),
                                               nothing, np.zeros(0, np.int64)),
                    seed=config.seed, device=self.device,
                    pipeline=ClientPipeline(steps=own.steps, codec=codec,
                                         discretize=own.discretize), privacy=own,
                    secure_rng=privacy.secure_rng,
                    strategy_state=strategy.init_client_state(initial, trainable))
        self.trainers = {}  # train only: not evaluated as a hospital
        if pooled_plans:
            self.trainers[num_hospitals] = Hospital(
                index=num_hospitals,
                data=_pooled(config, pooled_plans, index=num_hospitals),
                seed=config.seed, device=self.device, pipeline=ClientPipeline(codec=codec))
        return self.ready()

    def sealing_key(self) -> bytes:
        """The public half of this run's sealing key (the key authority seals to it)."""
        return self._sealing.public

    def install_keys(self, box: bytes, decryptors: list[Any]) -> None:
        """The key authority's call (never the driver's): a box, sealed to this worker by
        the run's authority, with the secret context every hosted hospital encrypts with
        and their registration keys; and the decryptors (every key holder) to register
        with."""
        if self.keys is not None:  # once per run: nobody swaps a hospital's key later
            raise PermissionError("this worker's keys are installed already")
        if self._keys_from is None:
            raise PermissionError("this run is not encrypted: no keys to install")
        run, authority = self._keys_from
        keys = open_hospital_keys(self._sealing, authority, box, run=run,
                                  hospitals={*self.hospitals, *self.trainers,
                                             *self.canaries},
                                  decryptors=decryptors)
        codec = make_codec((keys.secret_context, keys.fingerprint), *self._codec_settings)
        for hospital in [*self.hospitals.values(), *self.trainers.values(),
                         *self.canaries.values()]:
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
        together = self._train_together(broadcast, weights, round_) if self.batched else {}
        for i, w in weights.items():
            if i in self.canaries:  # the auditor's instrument: its report is nobody's
                update, _ = self.canaries[i].train(self.canary_setup, broadcast, weight=w,
                                                   round_=round_)
                updates.extend([update] if update is not None and i not in late else [])
                continue
            hospital = self.hospitals[i] if i in self.hospitals else self.trainers[i]
            setup = (self.setup if i not in together
                     else dataclasses.replace(self.setup, trainer=together[i]))
            update, report = hospital.train(setup, broadcast, weight=w, round_=round_)
            if i in late:
                update, report = None, dataclasses.replace(report, late=True)
            if update is not None:
                updates.append(update)
            reports.append(report)
        if self.keys is not None and updates:  # before the updates can reach anyone
            # (a batch past its round's wall-clock timeout registers late: ignored there)
            model = model_digest(broadcast.global_vector, broadcast.extras)
            registrations = [register_update(u, self.keys.registration_keys[u.hospital], model)
                             for u in updates]
            ray.get([d.register.remote(registrations) for d in self.keys.decryptors])
        return updates, reports, self.state_dict(list(weights))

    def _train_together(self, broadcast: RoundBroadcast, weights: dict[int, float],
                        round_: int) -> dict[int, TrainedTogether]:
        """This round's hospitals that will train (asked, with budget left), trained
        together from the global model (fedray/batched.py); each then runs the rest of
        its round (coin, delta, uploads, pipeline) on its own."""
        chosen = [self.hospitals[i] for i in weights if i in self.hospitals
                  and self.hospitals[i].privacy.ledger.can_afford_round()]
        if not chosen:
            return {}
        model, positions = self.setup.model, self.setup.local_positions
        trainable = num_trainable(model)
        # each from the broadcast with its own kept values (FedBN's, local's), as its
        # loop would start; SCAFFOLD's terms read its round (c and its own cᵢ)
        rows = np.stack([with_own_values(broadcast.global_vector, h.strategy_state, positions)
                         [:trainable] for h in chosen]).astype(np.float32)
        rounds = [ClientRound([], broadcast.extras, h.strategy_state, number=round_)
                  for h in chosen]
        trained, losses, steps = train_batched(
            model, [(h.x_train, h.y_train) for h in chosen], rows,
            settings=self.setup.settings, strategy=self.setup.strategy,
            generators=[h.data_order for h in chosen],
            planned=[h.planned_train for h in chosen], rounds=rounds)
        return {h.index: TrainedTogether(trained[k], float(losses[k]), steps[k])
                for k, h in enumerate(chosen)}

    def evaluate(self, broadcast: RoundBroadcast, round_: int = 0
                 ) -> dict[int, tuple[Any, Any | None]]:
        """Each hosted hospital's test statistics for the global model, and (with
        ``personalize_steps``) after its own fine-tuning."""
        model, positions = self.setup.model, self.setup.local_positions
        # one model for all: one forward pass over their splits
        shared = self._evaluate_together(broadcast.global_vector) if positions is None else {}
        results = {}
        for i, h in self.hospitals.items():
            stats = (shared[i] if positions is None
                     else h.evaluate(model, broadcast.global_vector, positions))
            personal = (h.evaluate_personalized(self.setup, broadcast.global_vector,
                                                self.personalize_steps, round_)
                        if self.personalize_steps else None)
            results[i] = (stats, personal)
        return results

    def _evaluate_together(self, global_vector: np.ndarray) -> dict[int, Any]:
        if self._test_block is None:  # the hosted hospitals' test splits, end to end
            splits = [h.test_split for h in self.hospitals.values()]
            self._test_block = (torch.cat([x for x, _ in splits]),
                                torch.cat([y for _, y in splits]),
                                np.r_[0, np.cumsum([len(y) for _, y in splits])])
        x, y, bounds = self._test_block
        load_flat(self.setup.model, global_vector)
        return dict(zip(self.hospitals, evaluate_many(self.setup.model, x, y, bounds)))

    def epsilon_spent(self) -> dict[int, float | None]:
        """Each hosted hospital's ε from its own ledger, read at the end of a run (it
        counts late batches too, which the round reports may have missed)."""
        return {i: h.epsilon for i, h in self.hospitals.items()}

    def own_models(self) -> dict[int, np.ndarray]:
        """A strategy without aggregation (``local``): each hosted hospital's own model
        (the reference run's cross-evaluation; nothing like it happens in a federation)."""
        return {i: h.own_model for i, h in self.hospitals.items() if h.own_model is not None}

    def evaluate_models(self, models: dict[int, np.ndarray]) -> dict[int, dict[int, Any]]:
        """Every given model on every hosted hospital's test split: {model: {hospital: stats}}."""
        return {m: {i: h.evaluate(self.setup.model, vector) for i, h in self.hospitals.items()}
                for m, vector in models.items()}

    def state_dict(self, indices: list[int] | None = None) -> dict[int, dict[str, Any]]:
        """The hosted hospitals' states (only ``indices``, when given)."""
        hosted = {**self.hospitals, **self.trainers, **self.canaries}
        wanted = None if indices is None else set(indices)
        return {i: h.state_dict() for i, h in hosted.items() if wanted is None or i in wanted}

    def load_state_dict(self, states: dict[int, dict[str, Any]]) -> None:
        """Loads the states of the hospitals this worker hosts; ``states`` may hold every
        hospital's (one object in the store, read by every worker)."""
        for i, hospital in {**self.hospitals, **self.trainers, **self.canaries}.items():
            if i in states:
                hospital.load_state_dict(states[i])


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
