"""A hospital: its data, its RNG streams, its privacy ledger and its update pipeline.

Hospitals are plain objects, so one actor can host many; they never leave the
process that built them. What comes out is split by who may see it: the update
(the mechanism's output) goes to the aggregator, the report (loss, ε, timings) to
the driver as the researcher's diagnostics.
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
from fedray.pipeline import ClientPipeline, HospitalReport, Update
from fedray.privacy import PartyPlan, PrivacyLedger, make_randomness
from fedray.privacy.dpsgd import DPSGDTrainer
from fedray.strategies import Strategy
from fedray.training import LocalTraining, train_local


class Hospital:
    def __init__(
        self, *, index: int, data: HospitalData, seed: int, pipeline: ClientPipeline,
        device: str = "cpu", ledger: Optional[PrivacyLedger] = None,
        party: Optional[PartyPlan] = None, secure_rng: bool = False,
        self_sample_rate: Optional[float] = None,
    ) -> None:
        """``self_sample_rate`` (distributed DP): the hospital puts its data into a
        round with this probability, by its own coin, and otherwise sends a zero update
        with its noise share, so nobody else learns whether it was in."""
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
        self._randomness = make_randomness(secure=secure_rng, seed=streams[1])
        self.pipeline = pipeline
        self.ledger, self.party = ledger, party
        self.self_sample_rate = self_sample_rate

    def train(
        self, model: nn.Module, global_vector: np.ndarray, *, weight: float,
        settings: LocalTraining, strategy: Strategy, dpsgd: Optional[DPSGDTrainer] = None,
    ) -> tuple[Optional[Update], HospitalReport]:
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
        if not sampled:
            delta = np.zeros_like(global_vector)  # zero contribution, same noise share
        else:
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
        payload, encrypted, out_of_range = self.pipeline(delta, weight=weight,
                                                         randomness=self._randomness)
        report = HospitalReport(
            self.index, loss, seconds={"train": trained, "encrypt": encrypted},
            epsilon=None if self.ledger is None else self.ledger.epsilon, sampled=sampled,
            values_clipped=out_of_range,
        )
        return Update(hospital=self.index, payload=payload, weight=weight), report

    @property
    def epsilon(self) -> Optional[float]:
        """ε spent so far by this hospital's own ledger (local, DP-SGD)."""
        return None if self.ledger is None else self.ledger.epsilon

    def _train_dpsgd(self, dpsgd: DPSGDTrainer) -> float:
        from opacus.accountants import create_accountant

        assert self.party is not None and self.ledger is not None
        # Opacus's accountant counts the optimizer steps actually taken this round.
        accountant = create_accountant(mechanism=self.ledger.accountant)
        generator, secure_seed = self._generator, self._randomness.torch_seed()
        if secure_seed is not None:  # secure_rng: batches and noise from an OS seed
            generator = torch.Generator(device=self._x_train.device).manual_seed(secure_seed)
        loss = dpsgd.train(
            self._x_train, self._y_train, noise_multiplier=self.party.noise_multiplier,
            sample_rate=self.party.sample_rate, steps=self.party.steps_per_round,
            generator=generator, accountant=accountant, secure_mode=self._randomness.secure,
        )
        for sigma, rate, steps in accountant.history:
            if (sigma, rate) != (self.ledger.noise_multiplier, self.ledger.sample_rate):
                raise RuntimeError(f"DP-SGD ran σ={sigma}, q={rate}; the plan says otherwise")
            self.ledger.record(steps)
        return loss

    def evaluate(self, model: nn.Module, global_vector: np.ndarray) -> EvalStats:
        load_flat(model, global_vector)
        return evaluate_model(model, self._x_test, self._y_test)
