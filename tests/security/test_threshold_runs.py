"""Threshold CKKS in a run (encryption.key_holders=k): no process holds the secret key,
a run gives the plaintext run's per-hospital accuracy, and a coalition of k − 1 key
holders, the aggregator and one hospital cannot decrypt another hospital's update."""

import numpy as np
import pytest

from fedray import simulate
from fedray.config import ConfigError, EncryptionConfig
from fedray.crypto import threshold as th
from tests.conftest import synthetic_config

PARAMS = th.PRESETS["n4096"]  # 3 holders


@pytest.mark.integration
def test_a_threshold_run_gives_the_plaintext_runs_accuracy(ray_local):
    shape = dict(num_clients=4, num_rounds=3, min_clients=2)
    plain = simulate(synthetic_config(**shape))
    threshold = simulate(synthetic_config(
        encryption=EncryptionConfig(name="ckks", preset="n4096", key_holders=3), **shape))
    assert threshold.summary["per_client_accuracy"] == plain.summary["per_client_accuracy"]
    # rounded to 2^-20 after the holders' smudging noise: within a few grid steps
    assert np.max(np.abs(threshold.global_vector - plain.global_vector)) < 2.0 ** -17
    assert threshold.summary["rounds_completed"] == 3


def test_k_minus_one_holders_the_aggregator_and_a_hospital_cannot_read_an_update():
    seed = bytes(range(32))
    keys = [th.holder_keygen(PARAMS, common_seed=seed, holder_index=i) for i in range(3)]
    joint = th.joint_public_key(PARAMS, [public for _, public in keys], common_seed=seed)
    rng = np.random.default_rng(1)
    victim, own = rng.normal(0, 1, 64), rng.normal(0, 1, 64)
    # the aggregator holds the victim's ciphertext; the colluding hospital knows its own
    # values and the joint key; holders 0 and 1 partially decrypt whatever they are asked
    target = th.encrypt(PARAMS, joint, victim)
    mixed = th.add(PARAMS, [target, th.encrypt(PARAMS, joint, own)])
    for ciphertext, known in ((target, 0.0), (mixed, own)):
        partials = [th.partial_decrypt(PARAMS, keys[i][0], ciphertext, np.random.default_rng())
                    for i in (0, 1)]
        with pytest.raises(ValueError, match="all 3 are needed"):
            th.combine(PARAMS, ciphertext, partials, size=64)
        shape = (th._seal(PARAMS).data_q.size, PARAMS.poly_modulus_degree)
        guess = th._combine_partials(PARAMS, ciphertext, [
            th._unpack(p, th._PARTIAL, shape)[2] for p in partials])[:64] - known
        assert np.median(np.abs(guess - victim)) > 100 * np.max(np.abs(victim))
    # positive control: the third holder's partial decryption makes it readable
    partials = [th.partial_decrypt(PARAMS, keys[i][0], target, np.random.default_rng())
                for i in range(3)]
    assert np.max(np.abs(th.combine(PARAMS, target, partials, size=64) - victim)) < 1e-5


def test_threshold_settings_are_checked_up_front():
    for overrides, key in (({"key_holders": 0}, "key_holders"),
                           ({"key_holders": 3, "preset": "n16384"}, "preset"),
                           ({"key_holders": 3, "packing": "quantized"}, "packing")):
        with pytest.raises(ConfigError) as err:
            EncryptionConfig(name="ckks", **overrides)
        assert err.value.key == key and "\n" not in str(err.value)
    config = EncryptionConfig(name="ckks", preset="n4096", key_holders=5)
    assert config.threshold and config.threshold_parameters.key_holders == 5


@pytest.mark.integration
def test_distributed_dp_under_threshold_ckks_releases_the_same_integer_sums(ray_local):
    # distributed DP's integers, one a slot under k = 3 key holders (preset n8192: sums
    # far below its value bound), give the single key's lanes their exact model
    from fedray.config import PrivacyConfig

    shape = dict(num_clients=4, num_rounds=1, min_clients=4,
                 privacy=PrivacyConfig(name="distributed", epsilon=8.0))
    # k = 3 first, like the run above: the pool keeps its key holders' processes
    threshold = simulate(synthetic_config(
        encryption=EncryptionConfig(name="ckks", preset="n8192", key_holders=3), **shape))
    single = simulate(synthetic_config(encryption=EncryptionConfig(name="ckks",
                                                                   preset="n4096"), **shape))
    assert threshold.summary["rounds_completed"] == 1
    np.testing.assert_array_equal(threshold.global_vector, single.global_vector)
    # the lanes' decryptor counts wraps; the threshold holders see partial sums only
    assert single.summary["privacy"]["mechanism"]["wrapped_rounds"] == [1]
    assert threshold.summary["privacy"]["mechanism"]["wrap_rate"] is None
