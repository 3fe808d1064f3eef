"""A hospital: its data, its RNG and (later) its accountant and local state.

Hospitals are plain objects, so one actor can host many; they never leave the
process that built them. Only updates and scalar statistics come out.
"""

from __future__ import annotations

import time

import numpy as np
import torch
from torch import nn

from fedray.data import HospitalData
from fedray.evaluation import EvalStats, evaluate_model
from fedray.models import flatten, load_flat
from fedray.pipeline import ClientPipeline, Update
from fedray.strategies import Strategy
from fedray.training import LocalTraining, train_local


class Hospital:
    def __init__(self, *, index: int, data: HospitalData, seed: int, device: str = "cpu") -> None:
        self.index = index
        self.name = data.name
        self.num_train = data.num_train
        self.num_test = data.num_test
        self._x_train = torch.as_tensor(data.x_train, device=device)
        self._y_train = torch.as_tensor(data.y_train, device=device)
        self._x_test = torch.as_tensor(data.x_test, device=device)
        self._y_test = torch.as_tensor(data.y_test, device=device)
        # Data order is this hospital's own seeded stream, whichever actor hosts it.
        self._generator = torch.Generator().manual_seed(
            int(np.random.SeedSequence([seed, index]).generate_state(1)[0])
        )

    def train(
        self, model: nn.Module, global_vector: np.ndarray, *, weight: float,
        settings: LocalTraining, strategy: Strategy, pipeline: ClientPipeline,
    ) -> Update:
        start = time.perf_counter()
        load_flat(model, global_vector)
        loss = train_local(
            model, self._x_train, self._y_train, settings=settings,
            generator=self._generator, strategy=strategy,
        )
        delta = flatten(model) - global_vector
        trained = time.perf_counter() - start
        payload, encrypted = pipeline(delta, weight=weight)
        return Update(
            hospital=self.index, payload=payload, weight=weight, num_samples=self.num_train,
            train_loss=loss, seconds={"train": trained, "encrypt": encrypted},
        )

    def evaluate(self, model: nn.Module, global_vector: np.ndarray) -> EvalStats:
        load_flat(model, global_vector)
        return evaluate_model(model, self._x_test, self._y_test)
