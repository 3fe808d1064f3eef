"""The cross-key rules (fedray/config_rules.py), each on the smallest config it refuses:
through :func:`config_from_dict` (the path the CLI takes) and called on its own."""

import subprocess
import sys

import pytest

from fedray import config_rules
from fedray.config import ConfigError, SimulationConfig, config_from_dict
from fedray.config_rules import CROSS_RULES

DP = {"epsilon": 1.0}
CKKS = {"encryption": {"name": "ckks"}}

# rule, the smallest overrides of the defaults it refuses, the key named, a message fragment
ROWS = [
    (config_rules.stragglers_need_a_deadline, {"availability": {"seconds_per_step": 0.1}},
     "availability.seconds_per_step", "needs round_timeout_s"),
    (config_rules.audits_need_a_federation,
     {"audit": {"canary": True}, "strategy": {"name": "pooled"}},
     "strategy.name", "reference run without updates to attack"),
    (config_rules.distributed_needs_encryption, {"privacy": {"name": "distributed", **DP}},
     "privacy.name", "needs encryption=ckks"),
    (config_rules.central_refuses_encryption, {"privacy": {"name": "central", **DP}, **CKKS},
     "privacy.name", "cannot run with encryption=ckks"),
    (config_rules.colluders_below_min_clients,
     {"privacy": {"name": "distributed", "colluders": 1, **DP}, **CKKS},
     "privacy.colluders", "must be < min_clients=1"),
    (config_rules.integer_sums_pack_their_own_lanes,
     {"privacy": {"name": "distributed", **DP, "accountant": "prv"}, **CKKS},
     "privacy.accountant", "must be rdp with privacy=distributed"),
    (config_rules.integer_sums_pack_their_own_lanes,
     {"encryption": {"name": "ckks", "integer_field_bits": 16}},
     "encryption.integer_field_bits", "only privacy=distributed sums integers"),
    (config_rules.central_releases_every_round,
     {"privacy": {"name": "central", **DP}, "min_clients": 2},
     "min_clients", "must be 1 with privacy=central"),
    (config_rules.reference_runs_share_nothing, {"strategy": {"name": "local"}, **CKKS},
     "strategy.name", "it takes privacy=none and encryption=none"),
    (config_rules.reference_runs_share_nothing,
     {"strategy": {"name": "pooled"}, "privacy": {"name": "dpsgd", **DP}},
     "strategy.name", "it takes privacy=none and encryption=none"),
    (config_rules.control_variates_refuse_client_level_dp,
     {"strategy": {"name": "scaffold"}, "privacy": {"name": "local", **DP}},
     "strategy.name", "server control variate would sum every round's noise"),
    (config_rules.union_trainer_needs_min_clients_one,
     {"strategy": {"name": "pooled"}, "min_clients": 2},
     "min_clients", "must be 1 with strategy=pooled"),
    (config_rules.pooled_scaling_keeps_feature_shift,
     {"strategy": {"name": "pooled", "pooled_scaling": "pooled"},
      "partition": {"feature_shift": 0.5}},
     "strategy.pooled_scaling", "would drop each hospital's feature shift"),
    (config_rules.pooled_scaling_keeps_feature_shift,
     {"strategy": {"name": "pooled", "pooled_scaling": "pooled"},
      "dataset": {"name": "synthetic"}, "partition": {"name": "iid"}},
     "strategy.pooled_scaling", "would drop each hospital's feature shift"),
    (config_rules.dpsgd_refuses_batchnorm,
     {"privacy": {"name": "dpsgd", **DP}, "model": {"name": "mlp", "batchnorm": True}},
     "model.batchnorm", "no per-record gradient to clip"),
    (config_rules.adam_needs_a_plain_sgd_client,
     {"optimizer": "adam", "strategy": {"name": "scaffold"}},
     "optimizer", "assume plain SGD steps"),
    (config_rules.adam_needs_a_plain_sgd_client,
     {"optimizer": "adam", "privacy": {"name": "dpsgd", **DP}},
     "optimizer", "assume plain SGD steps"),
    (config_rules.local_batchnorm_needs_batchnorm, {"strategy": {"name": "fedbn"}},
     "strategy.name", "keeps each hospital's BatchNorm layers local"),
    (config_rules.shared_batchnorm_refuses_client_level_dp,
     {"model": {"name": "mlp", "batchnorm": True}, "privacy": {"name": "local", **DP}},
     "model.batchnorm", "running variances would be averaged with DP noise"),
    (config_rules.natural_partition_needs_real_hospitals, {"dataset": {"name": "synthetic"}},
     "partition.name", "dataset synthetic has no natural hospitals"),
    (config_rules.client_canaries_need_a_client_level_update,
     {"audit": {"client_canary": True}, "privacy": {"name": "dpsgd", **DP}},
     "privacy.name", "protects records, not hospitals"),
    (config_rules.client_canaries_need_a_client_level_update,
     {"audit": {"client_canary": True}, "strategy": {"name": "scaffold"}},
     "strategy.name", "uploads more than the model change"),
    (config_rules.gradient_canaries_need_dpsgd,
     {"audit": {"gradient_canary": True}, "privacy": {"name": "central", **DP}},
     "privacy.name", "has no per-sample gradients"),
    (config_rules.noise_control_needs_noise,
     {"audit": {"client_canary": True, "noise_scale": 0.0}},
     "audit.noise_scale", "needs privacy local, central, distributed or dpsgd"),
    (config_rules.noise_control_needs_noise,
     {"audit": {"membership": True, "noise_scale": 0.01},
      "privacy": {"name": "central", **DP}},
     "audit.noise_scale", "is a positive control of a canary audit"),
]


def _unchecked(values: dict) -> SimulationConfig:
    """The config with every section's own checks but none of the cross rules."""
    saved = config_rules.CROSS_RULES
    config_rules.CROSS_RULES = ()
    try:
        return config_from_dict(values)
    finally:
        config_rules.CROSS_RULES = saved


@pytest.mark.parametrize("rule, values, key, fragment", ROWS,
                         ids=[f"{row[0].__name__}-{i}" for i, row in enumerate(ROWS)])
def test_each_rule_refuses_its_smallest_config(rule, values, key, fragment):
    with pytest.raises(ConfigError) as built:
        config_from_dict(values)
    assert built.value.key == key and fragment in str(built.value)
    assert "\n" not in str(built.value)
    with pytest.raises(ConfigError) as alone:
        rule(_unchecked(values))
    assert str(alone.value) == str(built.value)  # this rule, not an earlier one, refused it


def test_every_rule_has_a_row():
    tested = {row[0] for row in ROWS}
    missing = [rule.__name__ for rule in CROSS_RULES if rule not in tested]
    assert not missing, f"add a row to ROWS for {missing}"


def test_every_rule_says_in_one_line_why_it_exists():
    for rule in CROSS_RULES:
        assert rule.__doc__ and "\n" not in rule.__doc__.strip(), rule.__name__


@pytest.mark.parametrize("values", [
    {},
    {"model": {"name": "mlp", "batchnorm": True}, "strategy": {"name": "fedbn"},
     "privacy": {"name": "local", **DP}},
    {"privacy": {"name": "distributed", "colluders": 1, **DP}, "min_clients": 2, **CKKS},
    {"strategy": {"name": "pooled", "pooled_scaling": "pooled"},
     "dataset": {"name": "synthetic", "feature_shift": 0.0}, "partition": {"name": "iid"}},
    {"availability": {"seconds_per_step": 0.1}, "round_timeout_s": 5.0,
     "audit": {"membership": True}},
])
def test_a_valid_config_passes_every_rule(values):
    config = config_from_dict(values)
    for rule in CROSS_RULES:
        rule(config)


def test_the_rules_import_neither_torch_nor_ray():
    code = ("import sys, fedray.config, fedray.config_rules; fedray.config.SimulationConfig(); "
            "print(sorted({'torch', 'ray'} & set(sys.modules)))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout
    assert out.strip() == "[]"
