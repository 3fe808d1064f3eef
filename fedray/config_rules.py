"""Rules that read more than one key of a :class:`~fedray.config.SimulationConfig`.

Each rule is a pure function of the whole config that raises
:class:`~fedray.errors.ConfigError` naming the key to change; :class:`SimulationConfig`
runs them, in the order of :data:`CROSS_RULES`, after its single-key checks (the first
refusal is the one reported).
Rules about a strategy ask its traits (``fedray/strategies/traits.py``), never its name,
so a new strategy states its traits and no rule changes. Torch-free: the CLI checks a
config before torch or Ray is imported.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from fedray.errors import ConfigError
from fedray.strategies.traits import StrategyTraits, traits_of

if TYPE_CHECKING:  # fedray.config imports this module to run the rules
    from fedray.config import SimulationConfig

# privacy modes whose unit is a hospital: its whole update is clipped and noised
CLIENT_LEVEL_MODES = ("local", "central", "distributed")
# datasets whose records carry real hospital ids (partition=natural splits by them)
DATASETS_WITH_HOSPITALS = ("heart_disease",)


def _traits(config: SimulationConfig) -> StrategyTraits:
    return traits_of(config.strategy.name)


def _client_level(config: SimulationConfig) -> bool:
    return config.privacy.name in CLIENT_LEVEL_MODES


def stragglers_need_a_deadline(config: SimulationConfig) -> None:
    """Simulated step times only matter against a round deadline they can miss."""
    if config.availability.seconds_per_step != 0 and config.round_timeout_s is None:
        raise ConfigError("availability.seconds_per_step", config.availability.seconds_per_step,
                          "needs round_timeout_s: the simulated deadline a slow hospital misses")


def audits_need_a_federation(config: SimulationConfig) -> None:
    """A reference run sends no update an attacker could invert or audit."""
    if config.audit.enabled and _traits(config).reference_run:
        raise ConfigError("strategy.name", config.strategy.name,
                          "is a reference run without updates to attack; audits need a "
                          "federation")


def distributed_needs_encryption(config: SimulationConfig) -> None:
    """Distributed DP's per-hospital noise shares are too small to show in the clear."""
    if config.privacy.name == "distributed" and not config.encryption.enabled:
        raise ConfigError(
            "privacy.name", "distributed", "needs encryption=ckks: each hospital adds only "
            "a share of the noise, so its update is under-noised unless the server sees "
            "nothing but the encrypted sum",
        )


def central_refuses_encryption(config: SimulationConfig) -> None:
    """Central DP's server must read the sum to noise it."""
    if config.privacy.name == "central" and config.encryption.enabled:
        raise ConfigError(
            "privacy.name", "central", "cannot run with encryption=ckks: the aggregator "
            "would have to add noise to a sum it cannot read; use privacy=distributed "
            "(same guarantee, noise added by the hospitals under encryption)",
        )


def colluders_below_min_clients(config: SimulationConfig) -> None:
    """Colluders who hold every share of a released sum could subtract all its noise."""
    if config.privacy.name == "distributed" and config.privacy.colluders >= config.min_clients:
        raise ConfigError(
            "privacy.colluders", config.privacy.colluders,
            f"must be < min_clients={config.min_clients}, the fewest noise shares a released "
            "sum carries (colluders subtract their own shares)",
        )


def integer_sums_pack_their_own_lanes(config: SimulationConfig) -> None:
    """Distributed DP's integers (fedray/privacy/skellam.py) travel in their own lanes."""
    encryption = config.encryption
    if config.privacy.name != "distributed":
        if encryption.integer_field_bits is not None:
            raise ConfigError("encryption.integer_field_bits", encryption.integer_field_bits,
                              "only privacy=distributed sums integers; leave it null")
        return
    if config.privacy.accountant != "rdp":
        raise ConfigError("privacy.accountant", config.privacy.accountant,
                          "must be rdp with privacy=distributed: its Skellam mechanism is "
                          "accounted by its own Rényi DP bound")
    if encryption.packing != "none":
        raise ConfigError("encryption.packing", encryption.packing,
                          "must be none with privacy=distributed: its updates are integers "
                          "modulo 2^privacy.bits, packed by their own lanes")


def central_releases_every_round(config: SimulationConfig) -> None:
    """Skipping thin rounds under central DP would leak the hidden sample."""
    if config.privacy.name == "central" and config.min_clients != 1:
        raise ConfigError(
            "min_clients", config.min_clients, "must be 1 with privacy=central: the server "
            "releases a noised sum every round, since withholding rounds with few sampled "
            "hospitals would reveal the hidden sample",
        )


def reference_runs_share_nothing(config: SimulationConfig) -> None:
    """A reference run has no shared update for privacy or encryption to protect."""
    if _traits(config).reference_run and (
            config.privacy.name != "none" or config.encryption.enabled):
        raise ConfigError(
            "strategy.name", config.strategy.name, "is a reference run that shares no "
            "update (local) or pools the records (pooled); it takes privacy=none and "
            "encryption=none",
        )


def control_variates_refuse_client_level_dp(config: SimulationConfig) -> None:
    """A server control variate would accumulate every round's client-level noise."""
    if _traits(config).control_variates and _client_level(config):
        raise ConfigError(
            "strategy.name", config.strategy.name, f"with privacy={config.privacy.name} the "
            "server control variate would sum every round's noise and its Δc would share the "
            "model's clip budget; use fedprox, or privacy=dpsgd (SCAFFOLD then works on "
            "privatised updates)",
        )


def union_trainer_needs_min_clients_one(config: SimulationConfig) -> None:
    """Training on the union sends one update per round, from one trainer."""
    if _traits(config).trains_on_union and config.min_clients != 1:
        raise ConfigError("min_clients", config.min_clients,
                          f"must be 1 with strategy={config.strategy.name}: one trainer sends "
                          "one update per round")


def pooled_scaling_keeps_feature_shift(config: SimulationConfig) -> None:
    """Re-standardising the union would erase the hospitals' simulated feature shift."""
    shifted = (config.partition.feature_shift > 0 or config.partition.masked_features > 0
               or (config.dataset.name == "synthetic" and config.dataset.feature_shift > 0))
    if _traits(config).trains_on_union and config.strategy.pooled_scaling == "pooled" and shifted:
        raise ConfigError(
            "strategy.pooled_scaling", "pooled", "re-standardises the raw records, which "
            "would drop each hospital's feature shift; use pooled_scaling=hospital",
        )


def dpsgd_refuses_batchnorm(config: SimulationConfig) -> None:
    """DP-SGD needs per-record gradients, which BatchNorm mixes across a batch."""
    if config.privacy.name == "dpsgd" and config.model.batchnorm:
        raise ConfigError(
            "model.batchnorm", True, "BatchNorm mixes the records of a batch, so DP-SGD "
            "has no per-record gradient to clip; use model.batchnorm=false with "
            "privacy=dpsgd (Opacus refuses it too)",
        )


def adam_needs_a_plain_sgd_client(config: SimulationConfig) -> None:
    """Control variates and fedray's DP-SGD assume plain SGD local steps."""
    if config.optimizer == "adam" and (_traits(config).plain_sgd_only
                                       or config.privacy.name == "dpsgd"):
        raise ConfigError(
            "optimizer", "adam", "SCAFFOLD's control variates and fedray's DP-SGD assume "
            "plain SGD steps; use optimizer=sgd",
        )


def local_batchnorm_needs_batchnorm(config: SimulationConfig) -> None:
    """A strategy that keeps BatchNorm local is pointless without BatchNorm layers."""
    if _traits(config).keeps_batchnorm_local and not config.model.batchnorm:
        raise ConfigError("strategy.name", config.strategy.name, "keeps each hospital's "
                          "BatchNorm layers local; use model=mlp model.batchnorm=true")


def shared_batchnorm_refuses_client_level_dp(config: SimulationConfig) -> None:
    """Noised, averaged BatchNorm running variances can turn negative."""
    if (config.model.batchnorm and _client_level(config)
            and not _traits(config).keeps_batchnorm_local):
        raise ConfigError(
            "model.batchnorm", True, f"with privacy={config.privacy.name} the shared "
            "BatchNorm running variances would be averaged with DP noise and can turn "
            "negative; use strategy=fedbn (BatchNorm stays local) or model.batchnorm=false",
        )


def natural_partition_needs_real_hospitals(config: SimulationConfig) -> None:
    """Only a dataset with hospital ids can be split by hospital."""
    if config.partition.name == "natural" and config.dataset.name not in DATASETS_WITH_HOSPITALS:
        raise ConfigError(
            "partition.name", config.partition.name,
            f"dataset {config.dataset.name} has no natural hospitals; "
            "use iid, dirichlet, quantity or shards",
        )


def client_canaries_need_a_client_level_update(config: SimulationConfig) -> None:
    """Canary clients send a model change alone, audited against a client-level ε."""
    audit, traits = config.audit, _traits(config)
    if not audit.client_canary:
        return
    if config.privacy.name not in ("none", *CLIENT_LEVEL_MODES):
        raise ConfigError("privacy.name", config.privacy.name,
                          "protects records, not hospitals: audit it with audit.canary; "
                          "audit.client_canary needs privacy none, local, central or "
                          "distributed")
    if traits.control_variates or traits.keeps_batchnorm_local:
        raise ConfigError("strategy.name", config.strategy.name,
                          "uploads more than the model change (control variates or local "
                          "layers); audit.client_canary needs fedavg, fedprox, fedadam, "
                          "fedyogi or fedadagrad")


def gradient_canaries_need_dpsgd(config: SimulationConfig) -> None:
    """Dirac gradient canaries are per-sample gradients: only DP-SGD clips and noises them."""
    if config.audit.gradient_canary and config.privacy.name != "dpsgd":
        raise ConfigError("privacy.name", config.privacy.name,
                          "has no per-sample gradients: audit.gradient_canary needs "
                          "privacy=dpsgd (client-level modes: audit.client_canary)")


def noise_control_needs_noise(config: SimulationConfig) -> None:
    """The positive control scales a mechanism's noise down in an audited run."""
    audit = config.audit
    if audit.noise_scale == 1:
        return
    if not (_client_level(config) or config.privacy.name == "dpsgd"):
        raise ConfigError("audit.noise_scale", audit.noise_scale,
                          "needs privacy local, central, distributed or dpsgd: the noise it "
                          "scales")
    if not (audit.canary or audit.client_canary or audit.gradient_canary):
        raise ConfigError("audit.noise_scale", audit.noise_scale,
                          "is a positive control of a canary audit: add audit.client_canary, "
                          "audit.gradient_canary or audit.canary")


Rule = Callable[["SimulationConfig"], None]

CROSS_RULES: tuple[Rule, ...] = (
    stragglers_need_a_deadline,
    audits_need_a_federation,
    distributed_needs_encryption,
    central_refuses_encryption,
    colluders_below_min_clients,
    integer_sums_pack_their_own_lanes,
    central_releases_every_round,
    reference_runs_share_nothing,
    control_variates_refuse_client_level_dp,
    union_trainer_needs_min_clients_one,
    pooled_scaling_keeps_feature_shift,
    dpsgd_refuses_batchnorm,
    adam_needs_a_plain_sgd_client,
    local_batchnorm_needs_batchnorm,
    shared_batchnorm_refuses_client_level_dp,
    natural_partition_needs_real_hospitals,
    client_canaries_need_a_client_level_update,
    gradient_canaries_need_dpsgd,
    noise_control_needs_noise,
)


def check_cross_rules(config: SimulationConfig) -> None:
    """Runs every rule in order; the first refusal propagates."""
    for rule in CROSS_RULES:
        rule(config)
