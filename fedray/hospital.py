"""A hospital: its data, its RNG streams, its privacy ledger and its update pipeline.

Hospitals are plain objects, so one actor can host many; they never leave the
process that built them. What comes out is split by who may see it: the update
(the mechanism's output) goes to the aggregator, the report (loss, ε, timings) to
the driver as the researcher's diagnostics.
"""

from __future__ import annotations

import copy
import dataclasses
import time
from dataclasses import dataclass
from typing import Any, Optional

import numpy as np
import torch
from torch import nn

from fedray.data import HospitalData
from fedray.evaluation import EvalStats, evaluate_model
from fedray.models import flatten, load_flat, num_trainable
from fedray.pipeline import ClientPipeline, HospitalReport, RoundBroadcast, Update, UploadLayout
from fedray.privacy import PartyPlan, PrivacyLedger, make_randomness
from fedray.privacy.dpsgd import DPSGDTrainer
from fedray.strategies import FedAvg, Strategy
from fedray.strategies.base import ClientRound, State, concat_uploads
from fedray.training import LocalTraining, train_local


@dataclass(frozen=True)
class RoundSetup:
    """What a worker hands each of its hospitals for a round (shared by all)."""

    model: nn.Module
    strategy: Strategy
    settings: LocalTraining
    layout: UploadLayout
    local_positions: Optional[np.ndarray]  # FedBN: positions each hospital keeps
    dpsgd: Optional[DPSGDTrainer] = None


class Hospital:
    def __init__(
        self, *, index: int, data: HospitalData, seed: int, pipeline: ClientPipeline,
        device: str = "cpu", ledger: Optional[PrivacyLedger] = None,
        party: Optional[PartyPlan] = None, secure_rng: bool = False,
        self_sample_rate: Optional[float] = None, strategy_state: Optional[State] = None,
        planned_train: Optional[int] = None,
    ) -> None:
        """``self_sample_rate`` (distributed DP): the hospital puts its data into a
        round with this probability, by its own coin, and otherwise sends a zero update
        with its noise share, so nobody else learns whether it was in.
        ``strategy_state``: the strategy's per-hospital state (SCAFFOLD's cᵢ, ...)."""
        self.index = index
        self.name = data.name
        self.num_train = data.num_train
        # the record count the privacy plan used (audit canaries come on top of it)
        self.planned_train = planned_train
        self.num_test = data.num_test
        self._x_train = torch.as_tensor(data.x_train, device=device)
        self._y_train = torch.as_tensor(data.y_train, device=device)
        self._x_test = torch.as_tensor(data.x_test, device=device)
        self._y_test = torch.as_tensor(data.y_test, device=device)
        # Own seeded streams, whichever actor hosts the hospital: data order, DP noise.
        streams = np.random.SeedSequence([seed, index]).spawn(3)
        self._generator = torch.Generator().manual_seed(int(streams[0].generate_state(1)[0]))
        self._randomness = make_randomness(secure=secure_rng, seed=streams[1])
        # DP-SGD's noise is drawn where the gradients live (CPU or CUDA); batches on CPU
        self._noise_generator = torch.Generator(device=device).manual_seed(
            int(streams[2].generate_state(1)[0]))
        self._personalize_seed = int(streams[0].generate_state(2)[1]) % 2**62
        self.pipeline = pipeline
        self.ledger, self.party = ledger, party
        self.self_sample_rate = self_sample_rate
        self.strategy_state: State = dict(strategy_state or {})
        self.optimizer_state: dict = {}  # Adam's moments (optimizer=adam)

    def train(self, setup: RoundSetup, broadcast: RoundBroadcast, *, weight: float,
              round_: int = 0) -> tuple[Optional[Update], HospitalReport]:
        """One round of local work: the update for the aggregator (None when the
        hospital's budget would be overspent) and the report for the driver."""
        steps = self.party.steps_per_round if self.party else 0
        if self.ledger is not None and not self.ledger.can_afford(steps):
            return None, HospitalReport(self.index, None, epsilon=self.ledger.epsilon,
                                        exhausted=True)
        start = time.perf_counter()
        sampled = (self.self_sample_rate is None
                   or self._randomness.generator().random() < self.self_sample_rate)
        loss: Optional[float] = None
        if sampled:
            loss, uploads = self._train_round(setup, broadcast)
        else:
            # The same work, thrown away: when the update is ready must not tell the
            # aggregator (or a timeout) whether the coin put the data in.
            kept = ({k: np.array(v) for k, v in self.strategy_state.items()},
                    copy.deepcopy(self.optimizer_state))
            self._train_round(setup, broadcast)
            self.strategy_state, self.optimizer_state = kept
            uploads = {u.name: np.zeros(n) for u, n in  # a zero contribution + the share
                       zip(setup.strategy.uploads, setup.layout.sizes)}
        trained = time.perf_counter() - start
        vector = concat_uploads(setup.strategy, uploads)
        payload, encrypted, out_of_range = self.pipeline(
            vector, weight=setup.layout.coordinate_weights(weight), randomness=self._randomness)
        report = HospitalReport(
            self.index, loss, seconds={"train": trained, "encrypt": encrypted},
            epsilon=self.epsilon, sampled=sampled, values_clipped=out_of_range,
        )
        return Update(hospital=self.index, payload=payload, round_=round_), report

    def _train_round(self, setup: RoundSetup, broadcast: RoundBroadcast
                     ) -> tuple[float, State]:
        model, strategy = setup.model, setup.strategy
        self._load(model, broadcast.global_vector, setup.local_positions)
        start_vector = flatten(model)
        round_ = ClientRound(global_params=[p.detach().clone() for p in model.parameters()],
                             broadcast=broadcast.extras, state=self.strategy_state)
        if setup.dpsgd is not None and self.party is not None and self.ledger is not None:
            loss = self._train_dpsgd(setup.dpsgd, strategy, round_)
            steps = self.party.steps_per_round
        else:
            loss = train_local(model, self._x_train, self._y_train, settings=setup.settings,
                               generator=self._generator, strategy=strategy, round_=round_,
                               optimizer_state=self.optimizer_state,
                               planned_records=self.planned_train)
            steps = setup.settings.num_steps(self.planned_train or self.num_train)
            if self.ledger is not None:
                self.ledger.record(self.party.steps_per_round if self.party else 0)
        trained = flatten(model)
        delta = (trained - start_vector).astype(np.float64)
        if setup.local_positions is not None:  # FedBN: kept here, never uploaded
            self.strategy_state["local"] = trained[setup.local_positions].copy()
            delta[setup.local_positions] = 0.0
        uploads = strategy.client_uploads(delta, round_, steps=steps, lr=setup.settings.lr,
                                          num_trainable=num_trainable(model))
        return loss, uploads

    def _load(self, model: nn.Module, global_vector: np.ndarray,
              local_positions: Optional[np.ndarray]) -> None:
        if local_positions is None:
            load_flat(model, global_vector)
            return
        vector = np.array(global_vector)
        if "local" not in self.strategy_state:
            # never trained yet: the server never moves these positions (UploadLayout.kept),
            # so the broadcast still holds the initial model's values there, noise-free
            self.strategy_state["local"] = vector[local_positions].copy()
        vector[local_positions] = self.strategy_state["local"]
        load_flat(model, vector)

    @property
    def epsilon(self) -> Optional[float]:
        """ε spent so far by this hospital's own ledger (local, DP-SGD)."""
        return None if self.ledger is None else self.ledger.epsilon

    def state_dict(self) -> dict[str, Any]:
        """Everything that changes as the hospital takes part: RNG streams, ledger,
        strategy state. Data and settings are rebuilt from the config."""
        return {
            "generator": self._generator.get_state().numpy().copy(),
            "noise_generator": self._noise_generator.get_state().cpu().numpy().copy(),
            "randomness": self._randomness.state_dict(),
            "ledger_steps": None if self.ledger is None else self.ledger.steps,
            "strategy": {k: np.array(v) for k, v in self.strategy_state.items()},
            "optimizer": copy.deepcopy(self.optimizer_state),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        # torch.tensor copies: a state read from Ray's store is a read-only array.
        self._generator.set_state(torch.tensor(np.array(state["generator"]), dtype=torch.uint8))
        self._noise_generator.set_state(torch.tensor(np.array(state["noise_generator"]),
                                                     dtype=torch.uint8))
        self._randomness.load_state_dict(state["randomness"])
        if self.ledger is not None:
            self.ledger.steps = state["ledger_steps"]
        self.strategy_state = {k: np.array(v) for k, v in state["strategy"].items()}
        self.optimizer_state = copy.deepcopy(state["optimizer"])

    def _train_dpsgd(self, dpsgd: DPSGDTrainer, strategy: Strategy, round_: ClientRound
                     ) -> float:
        from opacus.accountants import create_accountant

        assert self.party is not None and self.ledger is not None
        # Opacus's accountant counts the optimizer steps actually taken this round.
        accountant = create_accountant(mechanism=self.ledger.accountant)
        sampling, noise = self._generator, self._noise_generator
        if self._randomness.secure:  # secure_rng: batches and noise from fresh OS seeds
            sampling = torch.Generator().manual_seed(self._randomness.torch_seed())
            noise = torch.Generator(device=self._x_train.device).manual_seed(
                self._randomness.torch_seed())
        loss = dpsgd.train(
            self._x_train, self._y_train, noise_multiplier=self.party.noise_multiplier,
            sample_rate=self.party.sample_rate, steps=self.party.steps_per_round,
            sampling_generator=sampling, noise_generator=noise, accountant=accountant,
            strategy=strategy, round_=round_, secure_mode=self._randomness.secure,
            planned_records=self.planned_train,
        )
        for sigma, rate, steps in accountant.history:
            if (sigma, rate) != (self.ledger.noise_multiplier, self.ledger.sample_rate):
                raise RuntimeError(f"DP-SGD ran σ={sigma}, q={rate}; the plan says otherwise")
            self.ledger.record(steps)
        return loss

    def evaluate(self, model: nn.Module, global_vector: np.ndarray,
                 local_positions: Optional[np.ndarray] = None) -> EvalStats:
        """The global model on this hospital's test split (with its own BatchNorm
        under FedBN)."""
        self._load(model, global_vector, local_positions)
        return evaluate_model(model, self._x_test, self._y_test)

    def evaluate_personalized(self, setup: RoundSetup, global_vector: np.ndarray,
                              steps: int, round_: int) -> EvalStats:
        """The global model after ``steps`` plain local SGD steps on this hospital's own
        training data, on its test split. Nothing is sent or kept: the fine-tuned model
        is thrown away, and its batches come from a stream of their own (seeded by the
        round), so the training streams are untouched."""
        self._load(setup.model, global_vector, setup.local_positions)
        generator = torch.Generator().manual_seed(self._personalize_seed + round_)
        train_local(setup.model, self._x_train, self._y_train,
                    settings=dataclasses.replace(setup.settings, steps=steps, optimizer="sgd"),
                    generator=generator, strategy=FedAvg())
        return evaluate_model(setup.model, self._x_test, self._y_test)
