"""What the planner decides before Ray starts: sampling, weights and the packing range."""

import numpy as np
import pytest

from fedray.config import (
    ConfigError,
    EncryptionConfig,
    PartitionConfig,
    PrivacyConfig,
    SimulationConfig,
)
from fedray.crypto.packing import noise_tails
from fedray.planning import aggregation_weights, largest_weights, plan
from fedray.privacy import MODES
from tests.conftest import synthetic_config


def test_largest_weight_is_with_the_smallest_companions():
    sizes = [199, 172, 30, 85]
    assert largest_weights(sizes, 4) == pytest.approx([s / sum(sizes) for s in sizes])
    assert largest_weights(sizes, 2)[0] == pytest.approx(199 / (199 + 30))
    assert largest_weights(sizes, 2)[2] == pytest.approx(30 / (30 + 85))
    assert largest_weights(sizes, 1) == [1.0] * 4
    for participants in ([0, 2], [0, 1], [2, 3]):
        weights = aggregation_weights(np.array(participants), sizes)
        assert all(w <= largest_weights(sizes, 2)[i] + 1e-12 for i, w in weights.items())


def test_each_mode_samples_its_own_way():
    rng = np.random.default_rng(1)
    central = [len(MODES["central"].sample(4, 0.1, rng)) for _ in range(50)]
    assert 0 in central and max(central) <= 4  # Poisson: nobody, sometimes
    assert all(len(MODES[m].sample(10, 0.3, rng)) == 3 for m in ("none", "local", "dpsgd"))
    assert MODES["distributed"].sample(5, 0.1, rng).tolist() == [0, 1, 2, 3, 4]  # all ask


def _packed(privacy, packing_range=None):
    return SimulationConfig(privacy=privacy, encryption=EncryptionConfig(
        name="ckks", preset="n4096", packing="quantized", packing_range=packing_range))


def test_packing_range_is_derived_from_the_local_noise():
    config, federation, privacy = plan(_packed(PrivacyConfig(name="local", epsilon=4.0)))
    noise = privacy.client_noise_std(0)
    largest = max(largest_weights(federation.train_sizes, 4))  # Cleveland, 199/486
    # 14 parameters x 20 rounds x 4 hospitals: no value clips except with prob. δ/100
    tails = noise_tails(delta=1e-5, values_per_run=14 * 20 * 4)
    assert config.encryption.packing_range == pytest.approx(largest * (1.0 + tails * noise))


def test_a_hand_set_packing_range_that_would_clip_is_refused_in_one_line():
    # the old default ±1 clips ~half of Cleveland's values under local DP at ε = 4
    with pytest.raises(ConfigError, match=r"of Cleveland's values .* more than δ/100") as info:
        plan(_packed(PrivacyConfig(name="local", epsilon=4.0), packing_range=1.0))
    assert info.value.key == "encryption.packing_range" and "\n" not in str(info.value)


def test_packing_range_without_a_noise_scale_stays_as_given():
    config, _, _ = plan(_packed(PrivacyConfig(), packing_range=0.5))
    assert config.encryption.packing_range == 0.5
    config, _, _ = plan(_packed(PrivacyConfig()))
    assert config.encryption.packing_range == 1.0


def test_secure_sampling_is_not_reproducible_and_seeded_sampling_is():
    from fedray.privacy import make_randomness

    def samples(secure):
        source = make_randomness(secure=secure, seed=np.random.SeedSequence([0, 0x5A3]))
        return [tuple(MODES["central"].sample(20, 0.5, source.generator()))
                for _ in range(10)]

    assert samples(False) == samples(False)
    assert samples(True) != samples(True)


@pytest.mark.parametrize("overrides, key", [
    ({"partition": PartitionConfig(name="dirichlet", alpha=0.5), "num_clients": 100_000},
     "num_clients"),  # too many hospitals for the records: the count, not α (issue #10)
    ({"partition": PartitionConfig(name="dirichlet", alpha=1e-4, min_records=20),
      "num_clients": 20}, "partition.alpha"),
])
def test_a_partition_that_cannot_be_drawn_names_the_right_key(overrides, key):
    config = synthetic_config(num_records=800, **overrides)  # partition: from overrides
    with pytest.raises(ConfigError) as info:
        plan(config)
    assert info.value.key == key and "\n" not in str(info.value)
