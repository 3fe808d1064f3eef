import dataclasses

import pytest

from fedray.config import (
    ConfigError,
    PartitionConfig,
    SimulationConfig,
    config_from_dict,
    hydra_schema,
)


def test_defaults_are_valid():
    config = SimulationConfig()
    assert config.dataset.name == "heart_disease"
    assert config.ray.address is None


@pytest.mark.parametrize(
    "values, key",
    [
        ({"partition": {"name": "dirichlet", "alpha": -1}}, "partition.alpha"),
        ({"num_rounds": 0}, "num_rounds"),
        ({"lr": float("nan")}, "lr"),
        ({"fraction_per_round": 1.5}, "fraction_per_round"),
        ({"model": {"name": "resnet"}}, "model.name"),
        ({"ray": {"num_gpus_per_actor": -0.5}}, "ray.num_gpus_per_actor"),
        ({"dataset": {"name": "synthetic"}, "partition": {"name": "natural"}}, "partition.name"),
        ({"num_roundz": 3}, "num_roundz"),
        ({"strategy": {"name": "fedavg", "server_lrr": 1}}, "strategy.server_lrr"),
    ],
)
def test_bad_values_name_key_value_and_allowed(values, key):
    with pytest.raises(ConfigError) as info:
        config_from_dict(values)
    message = str(info.value)
    assert message.startswith(f"{key}=")
    assert "\n" not in message
    assert info.value.key == key


def test_config_from_dict_builds_sections():
    config = config_from_dict({"num_rounds": 3, "partition": {"name": "iid"},
                               "dataset": {"name": "synthetic", "num_records": 100}})
    assert config.num_rounds == 3
    assert config.partition == PartitionConfig(name="iid")
    assert config.dataset.num_records == 100


def test_hydra_schema_is_a_mutable_twin():
    schema = hydra_schema(PartitionConfig)
    node = schema()
    node.alpha = 0.1  # Hydra writes overrides into its nodes
    assert node.name == "natural"
    with pytest.raises(dataclasses.FrozenInstanceError):
        PartitionConfig().alpha = 0.1  # type: ignore[misc]  # the library's config stays frozen
