"""Every name the config offers is one a registry builds and one the CLI can pick: the
tuples in fedray/config.py, the registries that dispatch on them, and the option files
of the matching Hydra group in conf/ hold the same names."""

from pathlib import Path

import pytest

import fedray.conf
from fedray import config
from fedray.config import ConfigError, EncryptionConfig

CONF = Path(fedray.conf.__file__).parent


def _options(group: str) -> set[str]:
    return {path.stem for path in (CONF / group).glob("*.yaml")}


def _strategies() -> set[str]:
    from fedray.strategies.registry import STRATEGIES

    return set(STRATEGIES)


def _traits() -> set[str]:
    from fedray.strategies.traits import TRAITS

    return set(TRAITS)


def _privacy_modes() -> set[str]:
    from fedray.privacy.modes import MODES

    return set(MODES)


def _partitioners() -> set[str]:
    from fedray.data.partition import PARTITIONERS

    return set(PARTITIONERS)


def _datasets() -> set[str]:
    from fedray.data import DATASETS

    return set(DATASETS)


def _models() -> set[str]:
    from fedray.models import MODELS

    return set(MODELS)


def _attacks() -> set[str]:
    from fedray.audit.run import ATTACKS

    return set(ATTACKS)


# the names config offers, the registries that build them, the Hydra group that picks them
CASES = [
    (config.STRATEGIES, [_strategies, _traits], "strategy"),
    (config.PRIVACY_MODES, [_privacy_modes], "privacy"),
    (config.PARTITIONS, [_partitioners], "partition"),
    (config.DATASETS, [_datasets], "dataset"),
    (config.MODELS, [_models], "model"),
    (config.ENCRYPTIONS, [], "encryption"),  # two names, dispatched on encryption.enabled
    (config.AUDIT_ATTACKS, [_attacks], "audit"),
]


@pytest.mark.parametrize("offered, registries, group", CASES, ids=[c[2] for c in CASES])
def test_the_names_offered_are_the_names_built_and_the_options_composed(
        offered, registries, group):
    assert len(set(offered)) == len(offered)
    for registry in registries:
        assert registry() == set(offered), registry.__name__
    options = _options(group) - ({"none"} if group == "audit" else set())  # audit=none: no attack
    assert options == set(offered)


def test_every_audit_attack_is_a_flag_of_the_audit_section():
    flags = {f for f, v in vars(config.AuditConfig()).items() if isinstance(v, bool)}
    assert flags == set(config.AUDIT_ATTACKS)


def test_the_ckks_presets_offered_are_the_presets_defined():
    from fedray.crypto.ckks import PRESETS

    for name in PRESETS:
        assert EncryptionConfig(name="ckks", preset=name).parameters == PRESETS[name]
    with pytest.raises(ConfigError) as refused:
        EncryptionConfig(name="ckks", preset="n0")
    offered = refused.value.allowed.removeprefix("must be one of ").split(", ")
    assert set(offered) == set(PRESETS) | {"custom"}
