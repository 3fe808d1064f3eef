"""How a hospital trains locally in a round, chosen by the privacy plan
(``PrivacyPlan.local_trainer``): plain local SGD, or DP-SGD inside the hospital.

Each returns the round's mean training loss and the local steps it took, and charges
the hospital's ledger what the round spent (a null ledger charges nothing)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import torch

from fedray.audit.client_canary import CanaryClients
from fedray.audit.gradient_canary import PlantedCanaries
from fedray.models import flatten, load_flat
from fedray.privacy.dpsgd import DPSGDTrainer
from fedray.privacy.randomness import Randomness
from fedray.privacy.steps import HospitalLedger
from fedray.strategies.base import ClientRound
from fedray.training import train_local

if TYPE_CHECKING:
    from fedray.hospital import Hospital, RoundSetup


class PlainTraining:
    """Local SGD (or Adam) over the hospital's records; a hospital-level ledger (local
    DP: one release per round) is charged one round."""

    def train(self, hospital: Hospital, setup: RoundSetup, round_: ClientRound
              ) -> tuple[float, int]:
        loss = train_local(setup.model, hospital.x_train, hospital.y_train,
                           settings=setup.settings, generator=hospital.data_order,
                           strategy=setup.strategy, round_=round_,
                           optimizer_state=hospital.optimizer_state,
                           planned_records=hospital.planned_train)
        hospital.privacy.ledger.charge_round()
        return loss, setup.settings.num_steps(hospital.planned_train or hospital.num_train)


class DPSGDTraining:
    """Opacus DP-SGD on the worker's wrapped model, with the hospital's own σ, sample
    rate, step count, batch and noise streams; its ledger is charged the steps Opacus's
    accountant saw, which must be the planned mechanism.

    ``gradient_canaries``: audit.gradient_canary's Dirac canaries, carried by one
    hospital's DP-SGD. ``noise_scale`` < 1 (audit.noise_scale, the positive control):
    Opacus adds that share of the noise while the ledger prices the planned σ."""

    def __init__(self, dpsgd: DPSGDTrainer, *, noise_scale: float = 1.0,
                 gradient_canaries: PlantedCanaries | None = None) -> None:
        self.dpsgd, self.noise_scale = dpsgd, noise_scale
        self.gradient_canaries = gradient_canaries

    def train(self, hospital: Hospital, setup: RoundSetup, round_: ClientRound
              ) -> tuple[float, int]:
        from opacus.accountants import create_accountant

        ledger = hospital.privacy.ledger
        if not isinstance(ledger, HospitalLedger):  # the plan gives every DP-SGD hospital one
            raise TypeError("DP-SGD trains a hospital that keeps its own ledger")
        # Opacus's accountant counts the optimizer steps actually taken this round.
        accountant = create_accountant(mechanism=ledger.accountant)
        sampling, noise = hospital.data_order, hospital.noise_order
        randomness = hospital.randomness
        if randomness.secure:  # secure_rng: batches and noise from fresh OS seeds
            sampling = torch.Generator().manual_seed(_os_seed(randomness))
            noise = torch.Generator(device=hospital.x_train.device).manual_seed(
                _os_seed(randomness))
        planted = self.gradient_canaries
        if planted is not None and planted.hospital != hospital.index:
            planted = None
        noise_multiplier = self.noise_scale * ledger.noise_multiplier
        loss = self.dpsgd.train(
            hospital.x_train, hospital.y_train, noise_multiplier=noise_multiplier,
            sample_rate=ledger.sample_rate, steps=ledger.steps_per_round,
            sampling_generator=sampling, noise_generator=noise, accountant=accountant,
            strategy=setup.strategy, round_=round_, secure_mode=randomness.secure,
            planned_records=hospital.planned_train,
            gradient_canaries=None if planted is None else planted.of_round(round_.number),
            canary_generator=None if planted is None else planted.generator(round_.number),
        )
        for sigma, rate, steps in accountant.history:
            if (sigma, rate) != (noise_multiplier, ledger.sample_rate):
                raise RuntimeError(f"DP-SGD ran σ={sigma}, q={rate}; the plan says otherwise")
            ledger.record(steps)
        return loss, ledger.steps_per_round


class CanaryTraining:
    """audit.client_canary: a canary client trains nothing; its model moves by its
    update for the round (fedray/audit/client_canary.py), and the hospital's pipeline
    clips, noises, weighs and encrypts it like any update."""

    def __init__(self, canaries: CanaryClients, included: np.ndarray) -> None:
        self.canaries, self.included = canaries, included

    def train(self, hospital: Hospital, setup: RoundSetup, round_: ClientRound
              ) -> tuple[float, int]:
        k = hospital.index - self.canaries.first
        change = self.canaries.update(k, round_.number, included=bool(self.included[k]))
        load_flat(setup.model, flatten(setup.model).astype(np.float64) + change)
        hospital.privacy.ledger.charge_round()
        return 0.0, 1


class TrainedTogether:
    """A hospital whose round was trained with the others of its worker in stacked
    tensors (fedray/batched.py): its trained values, mean loss and steps are loaded
    into the round's model as if its own loop had just run; its ledger (local DP) is
    charged one round, as :class:`PlainTraining` charges it."""

    def __init__(self, trained: np.ndarray, loss: float, steps: int) -> None:
        self.trained, self.loss, self.steps = trained, loss, steps

    def train(self, hospital: Hospital, setup: RoundSetup, round_: ClientRound
              ) -> tuple[float, int]:
        load_flat(setup.model, self.trained)
        hospital.privacy.ledger.charge_round()
        return self.loss, self.steps


def _os_seed(randomness: Randomness) -> int:
    seed = randomness.torch_seed()
    if seed is None:
        raise ValueError("a seeded stream has no OS seed to give")
    return seed


LocalTrainer = PlainTraining | DPSGDTraining | CanaryTraining | TrainedTogether
