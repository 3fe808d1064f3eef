"""CKKS secure aggregation end to end on a real local Ray and real TenSEAL."""

import numpy as np
import pytest

from fedray import DatasetConfig, ModelConfig, PartitionConfig, SimulationConfig, simulate
from fedray.config import EncryptionConfig, PrivacyConfig

pytestmark = pytest.mark.integration


def _config(**overrides):
    base = dict(
        dataset=DatasetConfig(name="synthetic", num_records=800),
        partition=PartitionConfig(name="dirichlet", alpha=1.0),
        model=ModelConfig(name="mlp", hidden=16), num_clients=4, num_rounds=3, lr=0.1,
        progress=False,
    )
    return SimulationConfig(**{**base, **overrides})


def test_encryption_changes_nothing_but_cost(ray_local):
    plain = simulate(_config())
    encrypted = simulate(_config(encryption=EncryptionConfig(name="ckks", preset="n4096")))
    gap = np.max(np.abs(encrypted.global_vector - plain.global_vector))
    assert gap <= 1e-5 * np.max(np.abs(plain.global_vector))
    assert encrypted.summary["rounds_completed"] == 3 and not encrypted.summary["rejected_updates"]
    assert encrypted.summary["accuracy"] == pytest.approx(plain.summary["accuracy"], abs=0.01)
    per_param = encrypted.summary["encryption"]["bytes_per_parameter"]
    assert per_param > plain.summary["encryption"]["bytes_per_parameter"] == 4
    assert encrypted.summary["seconds"]["encrypt"] > 0 and encrypted.summary["seconds"]["decrypt"] > 0


def test_distributed_dp_under_encryption_accounts_like_central(ray_local):
    config = _config(encryption=EncryptionConfig(name="ckks", preset="n4096"),
                     privacy=PrivacyConfig(name="distributed", epsilon=4.0), min_clients=4)
    result = simulate(config)
    s = result.summary
    assert s["privacy"]["mode"] == "distributed" and 3.9 < s["epsilon"] <= 4.0
    assert s["rounds_completed"] == 3  # q = 1: all four shares in every sum


def test_distributed_dp_refuses_to_release_a_sum_with_too_few_shares(ray_local):
    # fraction 0.5: Poisson samples rarely reach all 4 hospitals, so most rounds are
    # withheld; none may be released with fewer than min_clients noise shares
    config = _config(encryption=EncryptionConfig(name="ckks", preset="n4096"),
                     privacy=PrivacyConfig(name="distributed", epsilon=4.0),
                     fraction_per_round=0.5, min_clients=4, num_rounds=4)
    result = simulate(config)
    accepted = result.metrics.query("metric == 'accepted'")["value"]
    assert ((accepted == 0) | (accepted >= 4)).all()


def test_quantized_packing_halves_the_bytes_and_keeps_the_model(ray_local):
    wide = ModelConfig(name="mlp", hidden=1000)  # 16,002 parameters: 8 n4096 ciphertexts
    plain = simulate(_config(model=wide))
    packed = simulate(_config(model=wide, encryption=EncryptionConfig(
        name="ckks", preset="n4096", packing="quantized", quantization_bits=15,
        packing_range=1.0)))
    exact = simulate(_config(model=wide,
                             encryption=EncryptionConfig(name="ckks", preset="n4096")))
    per_param = packed.summary["encryption"]["bytes_per_parameter"]
    assert per_param < 0.55 * exact.summary["encryption"]["bytes_per_parameter"]
    assert packed.summary["encryption"]["values_clipped"] == 0
    gap = np.max(np.abs(packed.global_vector - plain.global_vector))
    assert gap < 1e-3  # 15-bit quantisation of updates within ±1, 3 rounds
    assert packed.summary["accuracy"] == pytest.approx(plain.summary["accuracy"], abs=0.02)
