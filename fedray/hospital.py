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
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import nn

from fedray.data import HospitalData
from fedray.evaluation import EvalStats, evaluate_model
from fedray.local_trainers import LocalTrainer, PlainTraining
from fedray.models import flatten, load_flat, num_trainable
from fedray.pipeline import ClientPipeline, HospitalReport, RoundBroadcast, Update, UploadLayout
from fedray.privacy.randomness import make_randomness
from fedray.privacy.steps import ClientPrivacy
from fedray.strategies.base import (
    ClientRound,
    State,
    Strategy,
    concat_uploads,
    keep_own_values,
    own_values,
    with_own_values,
)
from fedray.strategies.fedavg import FedAvg
from fedray.training import LocalTraining, train_local


@dataclass(frozen=True)
class RoundSetup:
    """What a worker hands each of its hospitals for a round (shared by all)."""

    model: nn.Module
    strategy: Strategy
    settings: LocalTraining
    layout: UploadLayout
    local_positions: np.ndarray | None  # FedBN, local: positions each hospital keeps
    trainer: LocalTrainer = field(default_factory=PlainTraining)


class Hospital:
    def __init__(
        self, *, index: int, data: HospitalData, seed: int, pipeline: ClientPipeline,
        device: str = "cpu", privacy: ClientPrivacy | None = None, secure_rng: bool = False,
        strategy_state: State | None = None, planned_train: int | None = None,
    ) -> None:
        """``privacy``: what the privacy mode puts into this hospital (its ledger, its
        participation coin; fedray/privacy/steps.py), none by default. Under
        distributed DP its own coin decides whether its data is in a round; otherwise
        it sends a zero update with its noise share, so nobody else learns whether it
        was in. ``strategy_state``: the strategy's per-hospital state (SCAFFOLD's cᵢ, ...)."""
        self.index = index
        self.name = data.name
        self.num_train = data.num_train
        # the record count the privacy plan used (audit canaries come on top of it)
        self.planned_train = planned_train
        self.num_test = data.num_test
        self.x_train = torch.as_tensor(data.x_train, device=device)
        self.y_train = torch.as_tensor(data.y_train, device=device)
        self._x_test = torch.as_tensor(data.x_test, device=device)
        self._y_test = torch.as_tensor(data.y_test, device=device)
        # Own seeded streams, whichever actor hosts the hospital: data order, DP noise.
        streams = np.random.SeedSequence([seed, index]).spawn(3)
        self.data_order = torch.Generator().manual_seed(int(streams[0].generate_state(1)[0]))
        self.randomness = make_randomness(secure=secure_rng, seed=streams[1])
        # DP-SGD's noise is drawn where the gradients live (CPU or CUDA); batches on CPU
        self.noise_order = torch.Generator(device=device).manual_seed(
            int(streams[2].generate_state(1)[0]))
        self._personalize_seed = int(streams[0].generate_state(2)[1]) % 2**62
        self.pipeline = pipeline
        self.privacy = privacy or ClientPrivacy()
        self.strategy_state: State = dict(strategy_state or {})
        self.optimizer_state: dict = {}  # Adam's moments (optimizer=adam)

    def train(self, setup: RoundSetup, broadcast: RoundBroadcast, *, weight: float,
              round_: int = 0) -> tuple[Update | None, HospitalReport]:
        """One round of local work: the update for the aggregator (None when the
        hospital's budget would be overspent) and the report for the driver."""
        ledger = self.privacy.ledger
        if not ledger.can_afford_round():
            return None, HospitalReport(self.index, None, epsilon=ledger.epsilon,
                                        exhausted=True)
        start = time.perf_counter()
        coin = self.privacy.participation.draw(self.randomness)
        loss: float | None = None
        if coin is not False:
            loss, uploads = self._train_round(setup, broadcast, round_)
        else:
            # The same work, thrown away: when the update is ready must not tell the
            # aggregator (or a timeout) whether the coin put the data in.
            kept = ({k: np.array(v) for k, v in self.strategy_state.items()},
                    copy.deepcopy(self.optimizer_state))
            self._train_round(setup, broadcast, round_)
            self.strategy_state, self.optimizer_state = kept
            uploads = {u.name: np.zeros(n) for u, n in  # a zero contribution + the share
                       zip(setup.strategy.uploads, setup.layout.sizes)}
        trained = time.perf_counter() - start
        vector = concat_uploads(setup.strategy, uploads)
        payload, encrypted, out_of_range = self.pipeline(
            vector, weight=setup.layout.coordinate_weights(weight), randomness=self.randomness)
        report = HospitalReport(
            self.index, loss, seconds={"train": trained, "encrypt": encrypted},
            epsilon=self.epsilon, sampled=coin, values_clipped=out_of_range,
        )
        return Update(hospital=self.index, payload=payload, round_=round_), report

    def _train_round(self, setup: RoundSetup, broadcast: RoundBroadcast, number: int
                     ) -> tuple[float, State]:
        model, strategy = setup.model, setup.strategy
        self._load(model, broadcast.global_vector, setup.local_positions)
        start_vector = flatten(model)
        round_ = ClientRound(global_params=[p.detach().clone() for p in model.parameters()],
                             broadcast=broadcast.extras, state=self.strategy_state,
                             number=number)
        loss, steps = setup.trainer.train(self, setup, round_)
        trained = flatten(model)
        delta = (trained - start_vector).astype(np.float64)
        keep_own_values(trained, delta, self.strategy_state, setup.local_positions)
        uploads = strategy.client_uploads(delta, round_, steps=steps, lr=setup.settings.lr,
                                          num_trainable=num_trainable(model))
        return loss, uploads

    def _load(self, model: nn.Module, global_vector: np.ndarray,
              local_positions: np.ndarray | None) -> None:
        load_flat(model, with_own_values(global_vector, self.strategy_state, local_positions))

    @property
    def epsilon(self) -> float | None:
        """ε spent so far by this hospital's own ledger (local, DP-SGD), else None."""
        return self.privacy.ledger.epsilon

    @property
    def own_model(self) -> np.ndarray | None:
        """The values it keeps at its local positions (all of them under strategy=local)."""
        return own_values(self.strategy_state)

    def state_dict(self) -> dict[str, Any]:
        """Everything that changes as the hospital takes part: RNG streams, ledger,
        strategy state, optimiser state; plain arrays and numbers only. Data and
        settings are rebuilt from the config."""
        return {
            "generator": self.data_order.get_state().numpy().copy(),
            "noise_generator": self.noise_order.get_state().cpu().numpy().copy(),
            "randomness": self.randomness.state_dict(),
            "ledger_steps": self.privacy.ledger.state_dict(),
            "strategy": {k: np.array(v) for k, v in self.strategy_state.items()},
            "optimizer": tensors_to_arrays(self.optimizer_state),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        # torch.tensor copies: a state read from Ray's store is a read-only array.
        self.data_order.set_state(torch.tensor(np.array(state["generator"]), dtype=torch.uint8))
        self.noise_order.set_state(torch.tensor(np.array(state["noise_generator"]),
                                                dtype=torch.uint8))
        self.randomness.load_state_dict(state["randomness"])
        self.privacy.ledger.load_state_dict(state["ledger_steps"])
        self.strategy_state = {k: np.array(v) for k, v in state["strategy"].items()}
        self.optimizer_state = arrays_to_tensors(state["optimizer"])

    @property
    def test_split(self) -> tuple[torch.Tensor, torch.Tensor]:
        return self._x_test, self._y_test

    def evaluate(self, model: nn.Module, global_vector: np.ndarray,
                 local_positions: np.ndarray | None = None) -> EvalStats:
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
        train_local(setup.model, self.x_train, self.y_train,
                    settings=dataclasses.replace(setup.settings, steps=steps, optimizer="sgd"),
                    generator=generator, strategy=FedAvg())
        return evaluate_model(setup.model, self._x_test, self._y_test)


def tensors_to_arrays(tree: Any) -> Any:
    """A copy of an optimiser state (nested dicts and lists) with tensors as arrays."""
    if isinstance(tree, torch.Tensor):
        return tree.detach().cpu().numpy().copy()
    if isinstance(tree, dict):
        return {k: tensors_to_arrays(v) for k, v in tree.items()}
    if isinstance(tree, (list, tuple)):
        return type(tree)(tensors_to_arrays(v) for v in tree)
    return copy.deepcopy(tree)


def arrays_to_tensors(tree: Any) -> Any:
    """The inverse of :func:`tensors_to_arrays` (arrays become tensors again)."""
    if isinstance(tree, np.ndarray):
        return torch.tensor(np.array(tree))
    if isinstance(tree, dict):
        return {k: arrays_to_tensors(v) for k, v in tree.items()}
    if isinstance(tree, (list, tuple)):
        return type(tree)(arrays_to_tensors(v) for v in tree)
    return copy.deepcopy(tree)
