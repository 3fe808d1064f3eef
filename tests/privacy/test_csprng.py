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


@pytest.mark.parametrize("lam", [0.5, 3.0, 9.9, 10.0, 50.0])
def test_poisson_draws_follow_the_poisson_pmf(lam):
    draws = ChaChaStream(key=bytes(32), nonce=bytes(16)).poisson(lam, 100_000)
    support = np.arange(0, int(lam + 10 * lam ** 0.5 + 20))
    seen = np.bincount(draws, minlength=len(support))[:len(support)] / len(draws)
    distance = 0.5 * np.abs(seen - stats.poisson.pmf(support, lam)).sum()
    assert distance < 0.01 and draws.dtype == np.int64
    # a broken sampler (numpy's at 1.1 λ) is far off the same pmf: the check has power
    wrong = np.random.default_rng(0).poisson(1.1 * lam, 100_000)
    seen = np.bincount(wrong, minlength=len(support))[:len(support)] / len(wrong)
    assert 0.5 * np.abs(seen - stats.poisson.pmf(support, lam)).sum() > 0.02


def test_large_poisson_draws_have_the_mean_and_variance_and_skellam_shares_run_secure():
    from fedray.privacy.skellam import skellam_noise

    draws = ChaChaStream().poisson(1e6, 50_000)
    assert draws.mean() == pytest.approx(1e6, rel=1e-3)
    assert draws.var() == pytest.approx(1e6, rel=0.03)
    secure = make_randomness(secure=True, seed=np.random.SeedSequence(0))
    noise = skellam_noise(50_000, 400.0, secure.generator())
    assert noise.var() == pytest.approx(400.0, rel=0.03) and abs(noise.mean()) < 0.5
