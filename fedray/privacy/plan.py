"""Turning a privacy config into numbers before Ray starts: σ per protected party,
sample rates and step counts, with every refusal as a one-line ConfigError."""

from __future__ import annotations

import functools
import warnings
from dataclasses import dataclass
from typing import Any

import numpy as np
from torch import nn

from fedray.config import ConfigError, PrivacyConfig, SimulationConfig
from fedray.privacy.accounting import PrivacyLedger, calibrate_noise_multiplier
from fedray.privacy.adjacency import Adjacency
from fedray.privacy.modes import MODES, RUN, PrivacyMode
from fedray.privacy.randomness import make_randomness
from fedray.privacy.skellam import SkellamPlan, SkellamPlanError, calibrate_skellam, plan_skellam
from fedray.privacy.steps import (
    ClientPrivacy,
    ClipToNorm,
    Discretize,
    EveryRound,
    GaussianNoise,
    HospitalLedger,
    KeepFloats,
    KeepSum,
    NoLedger,
    NoRunLedger,
    NoSumNoise,
    OwnCoin,
    RunLedger,
    ServerPrivacy,
    SkellamLedger,
    SkellamRestore,
    SkellamShare,
    SumNoise,
    UpdateStep,
)
from fedray.training import LocalTraining
from fedray.weighting import FixedWeights, SizeWeights, Weighting

SERVER_NOISE_STREAM = 0xCE17  # the central server's noise stream: SeedSequence([seed, this])


@dataclass(frozen=True)
class PartyPlan:
    """One accountant's mechanism: a hospital's (local, DP-SGD) or the run's (central)."""

    noise_multiplier: float  # σ = noise std / C (Opacus's meaning)
    sample_rate: float
    steps_per_round: int  # accountant steps each time the party takes part


@dataclass(frozen=True)
class PrivacyPlan:
    mode: str
    clip: float
    delta: float
    accountant: str
    budget: float | None  # ε cap, None when only σ was given
    parties: dict[int, PartyPlan]  # hospital index -> plan; -1 is the run (central)
    # central/distributed: every participant's weight, 1 / (q N), fixed whatever the sample
    uniform_weight: float | None = None
    min_shares: int = 1  # distributed: fewest noise shares a released sum may carry
    colluders: int = 0  # distributed: shares that colluding hospitals could subtract
    secure_rng: bool = False
    reveal_sample: bool = False  # privacy.reveal_sample: the diagnostic switch
    # audit.noise_scale < 1: the noise added is this share of the planned noise while
    # the ledgers price all of it (the audit's positive control; never a private run)
    noise_scale: float = 1.0
    # distributed: the Skellam mechanism (fedray/privacy/skellam.py) the hospitals run
    skellam: SkellamPlan | None = None

    @property
    def mechanism(self) -> PrivacyMode:
        """The mode's object (fedray/privacy/modes.py): the only place modes differ."""
        return MODES[self.mode]

    @property
    def adjacency(self) -> Adjacency | None:
        return self.mechanism.adjacency

    def client_noise_std(self, index: int) -> float:
        """Std of the noise a hospital adds to its clipped update before weighting."""
        if not self.mechanism.noise_on_updates:
            return 0.0
        party = self.party(index if self.mechanism.per_hospital else RUN)
        return self.mechanism.client_noise_std(
            sigma=party.noise_multiplier, clip=self.clip, min_shares=self.min_shares,
            colluders=self.colluders)

    def server_noise_std(self) -> float:
        """Std of the noise the server adds to the weighted sum (central DP), else 0."""
        if not self.enabled or self.mechanism.per_hospital:
            return 0.0
        return self.mechanism.server_noise_std(
            sigma=self.party(RUN).noise_multiplier, clip=self.clip,
            fixed_weight=self.uniform_weight or 0.0)

    @property
    def enabled(self) -> bool:
        return self.mechanism.enabled

    @property
    def self_sampling(self) -> bool:
        """distributed: each hospital flips its own coin, so nobody learns the sample."""
        return self.mechanism.self_sampling

    @property
    def releases_every_round(self) -> bool:
        """central: a noised sum is released even when nobody was sampled."""
        return self.mechanism.releases_every_round

    def party(self, index: int) -> PartyPlan:
        return self.parties[index]

    @property
    def neighbour_replaces(self) -> bool:
        """Whether the neighbouring world replaces a unit's update (replace-one: local)
        rather than removing or zeroing it."""
        return self.adjacency is Adjacency.REPLACE_ONE

    @property
    def clips_each_record(self) -> bool:
        """DP-SGD: each hospital's optimiser clips and noises per-record gradients."""
        return self.mechanism.trains_records_privately

    @property
    def epsilon_is_per_upload(self) -> bool:
        """Whether each hospital's ε is about its own upload, which the aggregator sees
        (local DP), rather than about the released sums."""
        return self.enabled and self.mechanism.per_hospital \
            and not self.mechanism.trains_records_privately

    @property
    def hides_sample(self) -> bool:
        """Whether outputs must not say who (or how many) took part in a round: central's
        hidden Poisson sample, distributed's own coins; unless ``reveal_sample``."""
        return self.mechanism.sample_is_secret and not self.reveal_sample

    # ---- the steps a mode puts into each party (fedray/privacy/steps.py) ----

    def client_privacy(self, index: int) -> ClientPrivacy:
        """Hospital ``index``'s update steps (clip, then its noise), its own ledger
        (local, DP-SGD) and its participation (distributed: its own coin)."""
        mode = self.mechanism
        steps: list[UpdateStep] = [ClipToNorm(self.clip)] if mode.clips_updates else []
        std = self.noise_scale * self.client_noise_std(index)
        if steps and std > 0:
            steps.append(GaussianNoise(std))
        per_hospital = self.enabled and mode.per_hospital
        discretize: Discretize = KeepFloats()
        if self.skellam is not None:  # its share's std scales like the Gaussian's
            discretize = SkellamShare(self.skellam,
                                      self.noise_scale ** 2 * self.skellam.share_variance)
        return ClientPrivacy(
            steps=tuple(steps), discretize=discretize,
            ledger=(HospitalLedger(self.ledger(index), self.party(index).steps_per_round)
                    if per_hospital else NoLedger()),
            participation=(OwnCoin(self.party(RUN).sample_rate) if mode.self_sampling
                           else EveryRound()),
        )

    def server_privacy(self, *, encrypted: bool, min_decrypted: int, seed: int
                       ) -> ServerPrivacy:
        """The aggregator's steps. Under encryption the decryptor releases no sum of
        fewer than ``min_decrypted`` contributions, so none is asked for; central DP
        releases a noised sum every round (floor 0); distributed needs its noise shares.
        A plaintext update clipped to C with no noise of its own (central) can be
        checked against C."""
        mode = self.mechanism
        std = self.noise_scale * self.server_noise_std()
        noise = (SumNoise(std, make_randomness(
                     secure=self.secure_rng,
                     seed=np.random.SeedSequence([seed, SERVER_NOISE_STREAM])))
                 if std > 0 else NoSumNoise())
        return ServerPrivacy(
            noise=noise,
            denominator=1.0 if mode.fixed_weights else None,
            min_accepted=(min_decrypted if encrypted
                          else 0 if mode.releases_every_round else self.min_shares),
            norm_bound=(self.clip if not encrypted and mode.clips_updates
                        and not mode.noise_on_updates else None),
            restore=SkellamRestore(self.skellam) if self.skellam is not None else KeepSum(),
        )

    def run_ledger(self) -> RunLedger | NoRunLedger:
        """The run's own accountant (central, distributed), else a null one."""
        if not self.enabled or self.mechanism.per_hospital:
            return NoRunLedger()
        return RunLedger(self.ledger(RUN), charge_on_dispatch=self.releases_every_round)

    @property
    def weighting(self) -> Weighting:
        """Fixed 1/(qN) weights (central, distributed), else FedAvg's size weights."""
        return FixedWeights(self.uniform_weight) if self.uniform_weight is not None \
            else SizeWeights()

    def sample(self, num_hospitals: int, fraction: float, rng: np.random.Generator
               ) -> np.ndarray:
        """Whom the round asks (fixed-size; central's hidden Poisson sample;
        distributed: everyone, each with its own coin)."""
        return self.mechanism.sample(num_hospitals, fraction, rng)

    def releases_round(self, *, arrived: int, min_clients: int) -> bool:
        """Whether a round with ``arrived`` updates goes to the aggregator (central DP
        releases a noised sum whoever arrived)."""
        return arrived >= min_clients or self.releases_every_round

    def local_trainer(self, model: nn.Module, *, batch_size: int, lr: float,
                      gradient_canaries: Any = None) -> Any:
        """How a worker's hospitals train: DP-SGD inside the hospital (Opacus), or
        plain local SGD. ``gradient_canaries`` (audit.gradient_canary): the Dirac canaries
        one hospital's DP-SGD carries (fedray/audit/gradient_canary.py)."""
        from fedray.local_trainers import DPSGDTraining, PlainTraining

        if self.mechanism.trains_records_privately:
            from fedray.privacy.dpsgd import DPSGDTrainer

            return DPSGDTraining(DPSGDTrainer(model, clip=self.clip, batch_size=batch_size,
                                              lr=lr), noise_scale=self.noise_scale,
                                 gradient_canaries=gradient_canaries)
        return PlainTraining()

    def ledger(self, index: int) -> PrivacyLedger | SkellamLedger:
        """A fresh ledger for one party, under the mode's neighbouring relation (the
        Skellam mechanism's own under distributed DP)."""
        party = self.party(index)
        assert self.adjacency is not None
        if self.skellam is not None:
            return SkellamLedger(self.skellam, noise_multiplier=party.noise_multiplier,
                                 sample_rate=party.sample_rate, delta=self.delta,
                                 budget=self.budget)
        return PrivacyLedger(
            noise_multiplier=party.noise_multiplier, sample_rate=party.sample_rate,
            delta=self.delta, accountant=self.accountant, budget=self.budget,
            adjacency=self.adjacency,
        )


def _sigma(privacy: PrivacyConfig, *, sample_rate: float, steps: int) -> float:
    if privacy.noise_multiplier is not None:
        return privacy.noise_multiplier
    assert privacy.epsilon is not None
    adjacency = MODES[privacy.name].adjacency  # the mode's relation sets σ per ε
    assert adjacency is not None
    try:
        return calibrate_noise_multiplier(
            epsilon=privacy.epsilon, delta=privacy.delta, sample_rate=sample_rate, steps=steps,
            accountant=privacy.accountant, adjacency=adjacency,
        )
    except ValueError as err:  # Opacus: the budget cannot be met at any σ it tries
        raise ConfigError("privacy.epsilon", privacy.epsilon,
                          f"cannot be reached over {steps} steps: {err}") from None


def make_privacy_plan(
    config: SimulationConfig, *, train_sizes: list[int], model: nn.Module
) -> PrivacyPlan:
    """Calibrates σ for the whole run, for every party that will spend budget, under
    each mode's neighbouring relation (:data:`MODES`, docs/privacy.md).

    local   one accountant per hospital, replace-one: q = 1 (the aggregator sees who took
            part, so no amplification), one step per round it takes part in; σ for all
            num_rounds, twice add/remove's (a replaced update moves by up to 2C).
    central one accountant for the run, add/remove: q = fraction_per_round (hospitals are
            Poisson sampled and the sample is hidden, as DP-FedAvg assumes), one step
            per round, a noised sum released every round.
    distributed one accountant for the run, zero-out: every hospital sends every round,
            the real update with probability q (its own coin) and a zero one otherwise,
            its update rotated, scaled and rounded to integers with an integer Skellam
            noise share of variance v/(m − t), m = min_clients, t = colluders, modulo
            2^bits (fedray/privacy/skellam.py); the run's ε is the Skellam RDP's.
    dpsgd   one accountant per hospital, add/remove one record: q = batch_size / its
            records (Poisson batches), its local steps per round, σ for all num_rounds.
    """
    privacy = config.privacy
    mechanism = MODES[privacy.name]
    if mechanism.unit == "hospital" and privacy.delta >= 1.0 / len(train_sizes):
        raise ConfigError("privacy.delta", privacy.delta,
                          f"must be < 1/(number of hospitals) = 1/{len(train_sizes)} for "
                          f"client-level privacy={privacy.name}")
    if mechanism.trains_records_privately:
        smallest = min(train_sizes)
        if privacy.delta >= 1.0 / smallest:
            raise ConfigError("privacy.delta", privacy.delta,
                              f"must be < 1/(records of the smallest hospital) = 1/{smallest}")
        check_dpsgd_model(model)
    settings = LocalTraining(epochs=config.local_epochs, steps=config.local_steps,
                             batch_size=config.batch_size, lr=config.lr)
    planned = mechanism.plan_parties(
        num_rounds=config.num_rounds, fraction=config.fraction_per_round,
        train_sizes=train_sizes, batch_size=config.batch_size,
        sigma_for=functools.partial(_sigma, privacy), steps_for=settings.num_steps)
    uniform_weight = (1.0 / (config.fraction_per_round * len(train_sizes))
                      if mechanism.fixed_weights else None)
    skellam = None
    if mechanism.sums_integers:
        assert uniform_weight is not None
        skellam = _skellam(config, summands=len(train_sizes), model=model,
                           weighted_clip=uniform_weight * privacy.clip)
        planned = {**planned, RUN: (skellam[1], *planned[RUN][1:])}
    parties = {key: PartyPlan(*value) for key, value in planned.items()}
    return PrivacyPlan(
        mode=privacy.name, clip=privacy.clip, delta=privacy.delta,
        accountant=privacy.accountant, budget=privacy.epsilon, parties=parties,
        uniform_weight=uniform_weight,
        min_shares=config.min_clients if mechanism.self_sampling else 1,
        colluders=privacy.colluders, secure_rng=privacy.secure_rng,
        reveal_sample=privacy.reveal_sample, noise_scale=config.audit.noise_scale,
        skellam=None if skellam is None else skellam[0],
    )


def _skellam(config: SimulationConfig, *, summands: int, model: nn.Module,
             weighted_clip: float) -> tuple[SkellamPlan, float]:
    """Distributed DP's Skellam mechanism over the upload's coordinates, on updates
    clipped to C and weighted by the uniform 1/(qN), and its σ (the released sum's
    noise std over the weighted clip): calibrated to privacy.epsilon by its own RDP, or
    from privacy.noise_multiplier."""
    from fedray.pipeline import upload_layout
    from fedray.strategies import build_strategy

    privacy = config.privacy
    shares: dict[str, Any] = dict(
        bits=privacy.bits, summands=summands, min_shares=config.min_clients,
        colluders=privacy.colluders, clip=weighted_clip,
        size=upload_layout(build_strategy(config.strategy), model, summands).size,
        seed=config.seed, reduces=config.encryption.key_holders == 1)
    try:
        if privacy.noise_multiplier is not None:
            plan = plan_skellam(noise_multiplier=privacy.noise_multiplier, **shares)
        else:
            assert privacy.epsilon is not None
            plan = calibrate_skellam(epsilon=privacy.epsilon, delta=privacy.delta,
                                     rounds=config.num_rounds,
                                     sample_rate=config.fraction_per_round, **shares)
    except SkellamPlanError as err:
        raise ConfigError("privacy.bits", privacy.bits, str(err).split(": ", 1)[1]) from None
    return plan, plan.variance ** 0.5 / (plan.scale * weighted_clip)


def check_dpsgd_model(model: nn.Module) -> None:
    """Opacus's validator: DP-SGD needs per-sample gradients (no BatchNorm, …)."""
    from opacus.validators import ModuleValidator

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        errors = ModuleValidator.validate(model, strict=False)
    if errors:
        first = str(errors[0]).splitlines()[0]
        raise ConfigError(
            "model", type(model).__name__,
            f"is not compatible with privacy=dpsgd ({len(errors)} problem(s), first: {first}); "
            "use a model without BatchNorm (e.g. model.batchnorm=false)",
        )
