"""secure_rng draws from ChaCha20's keystream: the transforms give the distributions
the mechanisms assume, and every draw is a fresh stream under a fresh OS key."""

import numpy as np
import pytest
from scipy import stats

from fedray.privacy import make_randomness
from fedray.privacy.csprng import ChaChaStream
from fedray.privacy.mechanisms import add_gaussian_noise

KEY, NONCE = bytes(range(32)), bytes(16)  # fixed only to make these checks deterministic


def test_uniforms_and_gaussians_have_the_distributions_the_mechanisms_assume():
    stream = ChaChaStream(KEY, NONCE)
    uniform = stream.random(200_000)
    assert uniform.min() >= 0 and uniform.max() < 1
    assert stats.kstest(uniform, "uniform").pvalue > 1e-3
    gaussian = stream.normal(0.5, 2.0, size=(100_001,))
    assert gaussian.shape == (100_001,)
    assert stats.kstest((gaussian - 0.5) / 2.0, "norm").pvalue > 1e-3
    single = stream.normal()
    assert isinstance(single, float) and isinstance(stream.random(), float)


def test_the_stream_is_chacha20s_keystream():
    # the same key and nonce give the same draws; another nonce, others
    first = ChaChaStream(KEY, NONCE).random(8)
    assert np.array_equal(first, ChaChaStream(KEY, NONCE).random(8))
    assert not np.array_equal(first, ChaChaStream(KEY, bytes(15) + b"\1").random(8))


def test_a_fixed_size_sample_is_a_uniform_subset():
    stream = ChaChaStream(KEY, NONCE)
    counts = np.zeros(10)
    for _ in range(2000):
        chosen = stream.choice(10, size=3, replace=False)
        assert len(set(chosen.tolist())) == 3
        counts[chosen] += 1
    assert stats.chisquare(counts).pvalue > 1e-3  # each hospital equally often
    with pytest.raises(ValueError):
        stream.choice(10, size=3, replace=True)


def test_secure_noise_comes_from_a_fresh_stream_each_draw_with_the_planned_std():
    secure = make_randomness(secure=True, seed=np.random.SeedSequence(0))
    assert isinstance(secure.generator(), ChaChaStream)
    draws = [add_gaussian_noise(np.zeros(100_000), 1.5, secure.generator(), secure=True)
             for _ in range(2)]
    assert not np.allclose(*draws)  # fresh OS keys
    assert all(np.std(d) == pytest.approx(1.5, rel=0.02) for d in draws)
