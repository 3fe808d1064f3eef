"""A hospital: its data, its RNG streams and its privacy ledger.

Hospitals are plain objects, so one actor can host many; they never leave the
process that built them. Only updates and scalar statistics come out.
"""

from __future__ import annotations

import time
from typing import Optional

import numpy as np
import torch
from torch import nn

from fedray.data import HospitalData
from fedray.evaluation import EvalStats, evaluate_model
from fedray.models import flatten, load_flat
from fedray.pipeline import ClientPipeline, Update
from fedray.privacy import PartyPlan, PrivacyLedger
from fedray.privacy.dpsgd import DPSGDTrainer
from fedray.strategies import Strategy
from fedray.training import LocalTraining, train_local


class Hospital:
    def __init__(
        self, *, index: int, data: HospitalData, seed: int, device: str = "cpu",
        ledger: Optional[PrivacyLedger] = None, party: Optional[PartyPlan] = None,
    ) -> None:
        self.index = index
        self.name = data.name
        self.num_train = data.num_train
        self.num_test = data.num_test
        self._x_train = torch.as_tensor(data.x_train, device=device)
        self._y_train = torch.as_tensor(data.y_train, device=device)
        self._x_test = torch.as_tensor(data.x_test, device=device)
        self._y_test = torch.as_tensor(data.y_test, device=device)
        # Own seeded streams, whichever actor hosts the hospital: data order, DP noise.
        streams = np.random.SeedSequence([seed, index]).spawn(2)
        self._generator = torch.Generator().manual_seed(int(streams[0].generate_state(1)[0]))
        self._noise_rng = np.random.default_rng(streams[1])
        self.ledger, self.party = ledger, party

    def train(
        self, model: nn.Module, global_vector: np.ndarray, *, weight: float,
        settings: LocalTraining, strategy: Strategy, pipeline: ClientPipeline,
        dpsgd: Optional[DPSGDTrainer] = None,
    ) -> Update:
        """One round of local work, or an ``exhausted`` update if it would overspend."""
        steps = self.party.steps_per_round if self.party else 0
        if self.ledger is not None and not self.ledger.can_afford(steps):
            return Update(hospital=self.index, payload=None, weight=weight,
                          num_samples=self.num_train, train_loss=float("nan"),
                          epsilon=self.ledger.epsilon, exhausted=True)
        start = time.perf_counter()
        load_flat(model, global_vector)
        if dpsgd is not None and self.party is not None and self.ledger is not None:
            loss = self._train_dpsgd(dpsgd)
        else:
            loss = train_local(
                model, self._x_train, self._y_train, settings=settings,
                generator=self._generator, strategy=strategy,
            )
            if self.ledger is not None:
                self.ledger.record(steps)  # one noisy release of the update
        delta = flatten(model) - global_vector
        trained = time.perf_counter() - start
        payload, encrypted = pipeline(delta, weight=weight, rng=self._noise_rng)
        return Update(
            hospital=self.index, payload=payload, weight=weight, num_samples=self.num_train,
            train_loss=loss, seconds={"train": trained, "encrypt": encrypted},
            epsilon=None if self.ledger is None else self.ledger.epsilon,
        )

    def _train_dpsgd(self, dpsgd: DPSGDTrainer) -> float:
        from opacus.accountants import create_accountant

        assert self.party is not None and self.ledger is not None
        # Opacus's accountant counts the optimizer steps actually taken this round.
        accountant = create_accountant(mechanism=self.ledger.accountant)
        loss = dpsgd.train(
            self._x_train, self._y_train, noise_multiplier=self.party.noise_multiplier,
            sample_rate=self.party.sample_rate, steps=self.party.steps_per_round,
            generator=self._generator, accountant=accountant,
        )
        for sigma, rate, steps in accountant.history:
            if (sigma, rate) != (self.ledger.noise_multiplier, self.ledger.sample_rate):
                raise RuntimeError(f"DP-SGD ran σ={sigma}, q={rate}; the plan says otherwise")
            self.ledger.record(steps)
        return loss

    def evaluate(self, model: nn.Module, global_vector: np.ndarray) -> EvalStats:
        load_flat(model, global_vector)
        return evaluate_model(model, self._x_test, self._y_test)
