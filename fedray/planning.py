"""Everything decided before Ray starts: the hospitals, the privacy noise and the
packing range (who is sampled and how each is weighted is the privacy plan's:
fedray/privacy/modes.py, fedray/weighting.py)."""

from __future__ import annotations

import dataclasses

import numpy as np

from fedray.batched import batched_choice
from fedray.config import ConfigError, SimulationConfig
from fedray.crypto import packing_layout
from fedray.crypto.lanes import IntegerLanes
from fedray.crypto.packing import (
    CLIP_SHARE_OF_DELTA,
    clipped_share_bound,
    noise_tails,
    range_for_noise,
)
from fedray.data import FederationPlan, PartitionError, plan_federation
from fedray.models import build_model, num_trainable
from fedray.pipeline import upload_layout
from fedray.privacy import PrivacyPlan, make_privacy_plan
from fedray.privacy.modes import sample_size
from fedray.strategies import build_strategy
from fedray.weighting import aggregation_weights, largest_weights

__all__ = ["aggregation_weights", "largest_weights", "plan"]  # the rules, where tests met them

DEFAULT_PACKING_RANGE = 1.0  # without a noise scale to derive it from (none, dpsgd)


def plan(config: SimulationConfig) -> tuple[SimulationConfig, FederationPlan, PrivacyPlan]:
    """Plans (and so validates) the hospitals and the privacy noise before Ray starts.
    Returns the config with what the plan resolved (the packing range) filled in."""
    try:
        federation = plan_federation(
            config.dataset, config.partition, num_clients=config.num_clients, seed=config.seed
        )
    except PartitionError as err:  # the partitioner names its key; else the count
        key = err.key or "num_clients"
        value = err.value if err.key else config.num_clients
        raise ConfigError(key, value, str(err)) from None
    sizes = client_sizes(config, federation)
    if config.min_clients > len(sizes):
        raise ConfigError("min_clients", config.min_clients,
                          f"must be <= the number of hospitals ({len(sizes)})")
    if config.audit.enabled and config.audit.target >= len(federation.hospitals):
        raise ConfigError("audit.target", config.audit.target,
                          f"must be a hospital index < {len(federation.hospitals)}")
    model = build_model(config.model, num_features=federation.num_features,
                        num_classes=federation.num_classes)
    wanted = config.audit.gradient_canaries
    if config.audit.gradient_canary and wanted is not None and wanted > num_trainable(model):
        raise ConfigError("audit.gradient_canaries", wanted,
                          f"each canary needs its own parameter; model {config.model.name} "
                          f"has {num_trainable(model)} parameters (model=mlp with a larger "
                          "model.hidden has more)")
    privacy = make_privacy_plan(config, train_sizes=sizes, model=model)
    batched, why_not = batched_choice(config, model,
                                      clips_each_record=privacy.clips_each_record)
    if config.training.choice == "true" and not batched:
        raise ConfigError("training.batched", config.training.batched,
                          f"cannot train these hospitals together: {why_not}")
    if privacy.skellam is not None and config.encryption.enabled:
        # distributed DP's integers travel in lanes of their field (fedray/crypto/lanes.py)
        config = dataclasses.replace(config, encryption=dataclasses.replace(
            config.encryption, integer_field_bits=privacy.skellam.bits))
        problem = _integer_room(config, privacy.skellam.bits, len(sizes))
        if problem is not None:
            raise ConfigError("privacy.bits", config.privacy.bits, problem)
    if config.encryption.enabled and config.encryption.packing == "quantized":
        upload_size = upload_layout(build_strategy(config.strategy), model, len(sizes)).size
        config = _with_packing_range(config, federation, privacy, upload_size)
        problem = packing_layout(config.encryption, len(sizes)).check()
        if problem is not None:
            raise ConfigError("encryption.quantization_bits",
                              config.encryption.quantization_bits, problem)
    return config, federation, privacy


def _integer_room(config: SimulationConfig, bits: int, summands: int) -> str | None:
    """Whether the sum of ``summands`` integers below 2^bits fits the encryption: lanes
    of one key's slots, or one value a slot below threshold CKKS's value bound."""
    if config.encryption.key_holders == 1:
        return IntegerLanes(bits, summands).check()
    bound = config.encryption.threshold_parameters.value_bound
    if summands * 2 ** bits >= bound:
        return (f"the sum of {summands} hospitals' integers below 2^{bits} reaches "
                f"{summands * 2 ** bits}, beyond the {bound:g} threshold preset "
                f"{config.encryption.preset} holds: use encryption.preset=n8192")
    return None


def client_sizes(config: SimulationConfig, federation: FederationPlan) -> list[int]:
    """Every client the mechanism runs over, by training records: the hospitals, then
    audit.client_canary's canary clients (fedray/audit/client_canary.py), each counted
    as a hospital of the mean size so that FedAvg's weights give it a hospital's say."""
    sizes = list(federation.train_sizes)
    if not config.audit.client_canary:
        return sizes
    return sizes + [max(1, round(float(np.mean(sizes))))] * config.audit.client_canaries


def _with_packing_range(config: SimulationConfig, federation: FederationPlan,
                        privacy: PrivacyPlan, upload_size: int) -> SimulationConfig:
    """Quantised packing clips each weighted value to ±range. Under noise-adding DP the
    range follows from the noise scale, one range for every hospital, so that clipping
    neither biases small and large hospitals differently nor, except with probability
    δ/100 over the whole run, changes the mechanism; a range given by hand that would
    allow more is refused."""
    encryption = config.encryption
    sizes = client_sizes(config, federation)
    count = len(sizes)
    stds = [privacy.client_noise_std(i) for i in range(count)]
    if max(stds) == 0:  # no noise on the updates to derive a range from
        value_range = encryption.packing_range or DEFAULT_PACKING_RANGE
        return dataclasses.replace(
            config, encryption=dataclasses.replace(encryption, packing_range=value_range))
    weights = privacy.weighting.largest(sizes, sample_size(count, config.fraction_per_round))
    if any(u.average == "over_all" for u in build_strategy(config.strategy).uploads):
        weights = [max(w, 1.0 / count) for w in weights]  # parts pre-scaled by 1/N
    values_per_run = upload_size * config.num_rounds * count
    tails = noise_tails(delta=privacy.delta, values_per_run=values_per_run)
    needed = range_for_noise(clip=privacy.clip, noise_stds=stds, weights=weights, tails=tails)
    if encryption.packing_range is None:
        return dataclasses.replace(
            config, encryption=dataclasses.replace(encryption, packing_range=needed))
    shares = [clipped_share_bound(encryption.packing_range, clip=privacy.clip, noise_std=s,
                                  weight=w) for s, w in zip(stds, weights)]
    worst = int(np.argmax(shares))
    who = (federation.hospitals[worst].name if worst < len(federation.hospitals)
           else "an audit canary client")
    if shares[worst] * values_per_run > privacy.delta * CLIP_SHARE_OF_DELTA:
        raise ConfigError(
            "encryption.packing_range", encryption.packing_range,
            f"could clip up to {shares[worst]:.2g} of {who}'s "
            f"values under this noise, more than δ/100 over the run; use >= {needed:.3g} "
            "or null (derived from the noise)",
        )
    return config
