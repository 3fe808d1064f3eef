"""CKKS secure aggregation end to end on a real local Ray and real TenSEAL."""

import numpy as np
import pytest
from opacus.accountants import RDPAccountant

from fedray import ModelConfig, PartitionConfig, simulate
from fedray.cli import format_result
from fedray.config import AvailabilityConfig, EncryptionConfig, PrivacyConfig
from tests.conftest import synthetic_config

pytestmark = pytest.mark.integration


def _config(**overrides):
    base = dict(
        num_records=800, partition=PartitionConfig(name="dirichlet", alpha=1.0),
        model=ModelConfig(name="mlp", hidden=16), num_clients=4, num_rounds=3, lr=0.1,
    )
    return synthetic_config(**{**base, **overrides})


def test_encryption_changes_nothing_but_cost(ray_local):
    plain = simulate(_config())
    encrypted = simulate(_config(encryption=EncryptionConfig(name="ckks", preset="n4096")))
    gap = np.max(np.abs(encrypted.global_vector - plain.global_vector))
    assert gap <= 1e-5 * np.max(np.abs(plain.global_vector))
    assert encrypted.summary["rounds_completed"] == 3 and not encrypted.summary["rejected_updates"]
    assert encrypted.summary["accuracy"] == pytest.approx(plain.summary["accuracy"], abs=0.01)
    per_param = encrypted.summary["encryption"]["bytes_per_parameter"]
    assert per_param > plain.summary["encryption"]["bytes_per_parameter"] == 4
    seconds = encrypted.summary["seconds"]
    assert seconds["encrypt"] > 0 and seconds["decrypt"] > 0


def _opacus_epsilon(sigma, q, steps):
    accountant = RDPAccountant()
    for _ in range(steps):
        accountant.step(noise_multiplier=sigma, sample_rate=q)
    return accountant.get_epsilon(delta=1e-5) if steps else 0.0


def _skellam_epsilon(config, rounds):
    """The run's ε after ``rounds`` released rounds, by its own Skellam ledger (planned
    without Ray, as the run plans it)."""
    from fedray.orchestrator import prepare
    from fedray.privacy import RUN

    return prepare(config).privacy.ledger(RUN).epsilon_after(rounds)


def test_distributed_dp_every_hospital_sends_every_round_so_the_sample_stays_hidden(ray_local):
    config = _config(encryption=EncryptionConfig(name="ckks", preset="n4096"),
                     privacy=PrivacyConfig(name="distributed", epsilon=4.0,
                                           reveal_sample=True),  # the coins, shown here
                     fraction_per_round=0.5, min_clients=4, num_rounds=4)
    result = simulate(config)
    s = result.summary
    accepted = result.metrics.query("metric == 'accepted'")["value"]
    sampled = result.metrics.query("metric == 'sampled'")["value"]
    trained = result.metrics.query("split == 'train' and metric == 'loss'")
    # the aggregator sees four ciphertexts every round whatever the coins said ...
    assert accepted.tolist() == [4, 4, 4, 4] and s["rounds_completed"] == 4
    # ... while the hospitals' own coins (a diagnostic only the driver sees) varied;
    # one count per round over all actors, matching the hospitals that reported a loss
    assert len(sampled) == 4 and sampled.min() < 4
    assert sampled.sum() == len(trained)
    assert s["privacy"]["adjacency"] == "zero_out" and 3.9 < s["epsilon"] <= 4.0
    assert s["privacy"]["accountant"] == "skellam-rdp"
    mechanism = s["privacy"]["mechanism"]
    assert mechanism["noise"] == "skellam"
    # the decryptor counted each released sum's wrap-arounds for the driver
    assert mechanism["wrapped_rounds"] == [1, 2, 3, 4]
    assert len(mechanism["wrapped_per_round"]) == 4 and mechanism["wrap_rate"] < 0.01
    assert "integers modulo 2^16: " in format_result(result)
    assert s["epsilon"] == pytest.approx(_skellam_epsilon(config, 4), rel=1e-12)
    # never below the Gaussian mechanism's ε at the same σ and coins
    assert s["epsilon"] >= _opacus_epsilon(s["noise_multiplier"], 0.5, 4)


def test_distributed_dp_charges_exactly_the_rounds_it_released(ray_local):
    # each hospital is online with probability 0.75, and a round needs all four: some
    # rounds are withheld (nothing decrypted, released or charged), some released
    config = _config(encryption=EncryptionConfig(name="ckks", preset="n4096"),
                     privacy=PrivacyConfig(name="distributed", noise_multiplier=1.0,
                                           reveal_sample=True),  # offline counts, read here
                     min_clients=4, num_rounds=6,
                     availability=AvailabilityConfig(online=0.75))
    result = simulate(config)
    released = result.summary["rounds_completed"]
    offline = result.metrics.query("client == 'global' and metric == 'offline'")["value"]
    assert 0 < released < 6 and released == int((offline == 0).sum())
    assert result.summary["epsilon"] == pytest.approx(_skellam_epsilon(config, released),
                                                      rel=1e-12)
    assert result.summary["epsilon"] > _skellam_epsilon(config, released - 1)


def test_distributed_dp_stops_before_the_budget_with_rounds_in_flight(ray_local):
    # σ given, budget worth exactly two released rounds (q = 1): round 3 must not start
    unlimited = _config(encryption=EncryptionConfig(name="ckks", preset="n4096"),
                        privacy=PrivacyConfig(name="distributed", noise_multiplier=1.0),
                        min_clients=4, num_rounds=4)
    budget = _skellam_epsilon(unlimited, 2)
    config = _config(encryption=EncryptionConfig(name="ckks", preset="n4096"),
                     privacy=PrivacyConfig(name="distributed", noise_multiplier=1.0,
                                           epsilon=budget),
                     min_clients=4, num_rounds=4)
    result = simulate(config)
    s = result.summary
    assert s["rounds_completed"] == 2 and s["epsilon"] == pytest.approx(budget)
    assert "stopped before round 3" in s["privacy"]["stopped_early"]


def test_quantized_packing_range_follows_the_local_dp_noise(ray_local):
    config = _config(model=ModelConfig(name="logreg"), num_rounds=2,
                     privacy=PrivacyConfig(name="local", epsilon=4.0),
                     encryption=EncryptionConfig(name="ckks", preset="n4096",
                                                 packing="quantized"))
    result = simulate(config)
    encryption = result.summary["encryption"]
    assert encryption["packing_range"] > 1.0  # derived: covers the update and 6 noise std
    assert encryption["values_clipped"] == 0


def test_quantized_packing_halves_the_bytes_and_keeps_the_model(ray_local):
    wide = ModelConfig(name="mlp", hidden=1000)  # 16,002 parameters: 8 n4096 ciphertexts
    plain = simulate(_config(model=wide))
    packed = simulate(_config(model=wide, encryption=EncryptionConfig(
        name="ckks", preset="n4096", packing="quantized", quantization_bits=15)))
    exact = simulate(_config(model=wide,
                             encryption=EncryptionConfig(name="ckks", preset="n4096")))
    per_param = packed.summary["encryption"]["bytes_per_parameter"]
    assert per_param < 0.55 * exact.summary["encryption"]["bytes_per_parameter"]
    assert packed.summary["encryption"]["values_clipped"] == 0
    gap = np.max(np.abs(packed.global_vector - plain.global_vector))
    assert gap < 1e-3  # 15-bit quantisation of updates within ±1, 3 rounds
    assert packed.summary["accuracy"] == pytest.approx(plain.summary["accuracy"], abs=0.02)
