"""Dropouts and stragglers, as pure functions (fedray/availability.py)."""

import numpy as np
import pytest

from fedray.availability import draw_profile, late, local_steps, offline
from fedray.config import AvailabilityConfig, ConfigError


def _profile(seed=0, **kwargs):
    config = AvailabilityConfig(**{"online": 0.7, "online_spread": 0.2, "speed_spread": 0.5,
                                   "seconds_per_step": 0.1, **kwargs})
    return draw_profile(config, [10] * 50, np.random.default_rng(seed))


def test_profile_is_drawn_per_hospital_and_seeded():
    a, b, other = _profile(0), _profile(0), _profile(1)
    assert np.array_equal(a.online, b.online) and np.array_equal(a.speed, b.speed)
    assert not np.array_equal(a.online, other.online)
    assert a.online.min() >= 0.5 - 1e-12 and a.online.max() <= 0.9 + 1e-12
    assert len(set(a.speed.round(6))) == 50  # every hospital its own speed
    assert np.allclose(a.round_seconds, 10 * 0.1 * a.speed)


def test_hospitals_are_offline_at_their_own_rate():
    profile = _profile(online_spread=0.3)
    generator = np.random.default_rng(3)
    invited = np.arange(50)
    missed = np.zeros(50)
    for _ in range(4000):
        for i in offline(profile, invited, generator):
            missed[i] += 1
    assert np.allclose(missed / 4000, 1 - profile.online, atol=0.03)


def test_late_is_whoever_needs_longer_than_the_timeout():
    profile = _profile()
    training = set(range(50))
    expected = {i for i in training if profile.round_seconds[i] > 1.0}
    assert late(profile, training, 1.0) == expected and 0 < len(expected) < 50
    assert late(profile, training, None) == set()  # no timeout: nobody is late


def test_local_steps_follow_epochs_or_steps():
    assert local_steps([100, 33], epochs=2, steps=None, batch_size=16) == [14, 6]
    assert local_steps([100, 33], epochs=2, steps=5, batch_size=16) == [5, 5]


@pytest.mark.parametrize("key, value", [("online", 0), ("online", 1.5),
                                        ("speed_spread", -1), ("seconds_per_step", float("inf"))])
def test_bad_availability_is_refused(key, value):
    with pytest.raises(ConfigError) as refused:
        AvailabilityConfig(**{key: value})
    assert refused.value.key == key
