"""Distributed DP's Skellam mechanism (fedray/privacy/skellam.py), without Ray: its RDP
bound against the exact Rényi divergence of Skellam distributions, its accounting
against dp-accounting where dp-accounting has the event (the Gaussian it tends to),
the rotation, the conditional rounding, and the integers' exact sum under real CKKS."""

import dataclasses
import math

import dp_accounting
import numpy as np
import pytest
from scipy.stats import skellam as skellam_distribution

from fedray.crypto.ckks import PRESETS, new_key_set
from fedray.crypto.lanes import IntegerLanes, IntegerLanesCodec
from fedray.privacy.skellam import (
    ORDERS,
    SkellamPlanError,
    calibrate_skellam,
    centre,
    conditional_round,
    norm_bounds,
    padded_length,
    plan_skellam,
    poisson_subsampled_rdp,
    rdp_to_epsilon,
    rotate,
    skellam_noise,
    skellam_rdp,
    unrotate,
    wrap,
)
from fedray.privacy.steps import SkellamRestore, SkellamShare

DELTA = 1e-5


def _exact_renyi(alpha: float, variance: float, shift: int) -> float:
    """D_α(Sk + shift ‖ Sk) for Sk of the given variance, summed over its support."""
    lam = variance / 2
    reach = int(20 * math.sqrt(variance)) + shift + 30
    support = np.arange(-reach, reach + 1)
    log_p = skellam_distribution.logpmf(support - shift, lam, lam)
    log_q = skellam_distribution.logpmf(support, lam, lam)
    terms = alpha * log_p + (1 - alpha) * log_q
    terms = terms[np.isfinite(terms)]  # the far tails underflow: nothing left there
    top = terms.max()
    return (top + math.log(np.exp(terms - top).sum())) / (alpha - 1)


@pytest.mark.parametrize("variance, shift", [(4.0, 1), (25.0, 3), (400.0, 10)])
def test_the_closed_form_bounds_the_exact_renyi_divergence(variance, shift):
    for alpha in (2, 4, 8, 16):
        exact = _exact_renyi(alpha, variance, shift)
        bound = skellam_rdp(alpha, variance=variance, l2=shift, l1=shift)
        assert exact <= bound * (1 + 1e-9)
    if variance >= 400:  # much noise: the bound is nearly exact
        assert skellam_rdp(8, variance=variance, l2=shift, l1=shift) <= \
            1.05 * _exact_renyi(8, variance, shift)


def test_with_much_noise_the_skellam_mechanism_costs_what_the_gaussian_does():
    bound = skellam_rdp(8, variance=1e6, l2=100.0, l1=1000)
    assert bound == pytest.approx(8 * 100.0 ** 2 / (2 * 1e6), rel=1e-3)


def _dp_accounting_epsilon(sigma: float, q: float, rounds: int) -> float:
    accountant = dp_accounting.rdp.RdpAccountant(orders=[float(a) for a in ORDERS])
    event = dp_accounting.GaussianDpEvent(sigma)
    if q < 1:
        event = dp_accounting.PoissonSampledDpEvent(q, event)
    accountant.compose(event, rounds)
    return accountant.get_epsilon(DELTA)


def _gaussian_through_ours(sigma: float, q: float, rounds: int) -> float:
    rdp_of = {a: a / (2 * sigma ** 2) for a in range(2, ORDERS[-1] + 1)}
    per_round = np.array([poisson_subsampled_rdp(a, q, rdp_of) for a in ORDERS])
    return rdp_to_epsilon(ORDERS, rounds * per_round, DELTA)


@pytest.mark.parametrize("sigma", [0.8, 2.0, 5.0])
def test_composition_and_conversion_are_dp_accountings_without_sampling(sigma):
    assert _gaussian_through_ours(sigma, 1.0, 20) == pytest.approx(
        _dp_accounting_epsilon(sigma, 1.0, 20), rel=1e-9)


@pytest.mark.parametrize("sigma, q", [(1.0, 0.5), (2.0, 0.1), (4.0, 0.3)])
def test_the_subsampling_bound_is_never_below_the_exact_gaussian_amplification(sigma, q):
    ours = _gaussian_through_ours(sigma, q, 20)
    exact = _dp_accounting_epsilon(sigma, q, 20)
    assert exact * (1 - 1e-9) <= ours <= max(_gaussian_through_ours(sigma, 1.0, 20), exact)


def _plan(bits=16, **overrides):
    settings = dict(epsilon=4.0, delta=DELTA, rounds=20, sample_rate=1.0, bits=bits,
                    summands=4, min_shares=4, colluders=0, clip=0.25, size=514, seed=0)
    return calibrate_skellam(**{**settings, **overrides})


def test_calibration_spends_the_budget_and_more_bits_approach_the_gaussian():
    sigmas = []
    for bits in (12, 16, 20):
        plan = _plan(bits)
        assert plan.epsilon(rounds=20, sample_rate=1.0, delta=DELTA) == pytest.approx(
            4.0, abs=1e-3)
        sigmas.append(math.sqrt(plan.variance) / (plan.scale * 0.25))
    gaussian = next(s for s in np.arange(4.0, 7.0, 1e-4)
                    if _gaussian_through_ours(s, 1.0, 20) <= 4.0)
    assert sigmas[0] > sigmas[1] > sigmas[2] >= gaussian * (1 - 1e-3)
    assert sigmas[2] == pytest.approx(gaussian, rel=2e-3)


def test_too_few_bits_are_refused_naming_the_bits_and_the_hospitals():
    with pytest.raises(SkellamPlanError, match=r"privacy.bits=8: with 4 hospitals .* "
                                               r"raise privacy.bits"):
        _plan(8)
    with pytest.raises(SkellamPlanError, match=r"privacy.bits=2: .* 4 hospitals"):
        plan_skellam(bits=2, summands=4, min_shares=4, colluders=0, clip=1.0, size=10,
                     noise_multiplier=1.0, seed=0)


def test_the_rotation_is_orthonormal_and_undone():
    vector = np.random.default_rng(0).normal(size=300)
    rotated = rotate(vector, seed=3)
    assert len(rotated) == padded_length(300) == 512
    from fedray.crypto.lanes import rotated_length

    assert all(rotated_length(n) == padded_length(n) for n in (1, 2, 3, 514, 1024, 1025))
    assert np.linalg.norm(rotated) == pytest.approx(np.linalg.norm(vector))
    np.testing.assert_allclose(unrotate(rotated, seed=3, size=300), vector, atol=1e-12)
    spike = np.zeros(300)
    spike[7] = 1.0  # all its mass in one coordinate ...
    assert np.abs(rotate(spike, seed=3)).max() == pytest.approx(1 / math.sqrt(512))


def test_conditional_rounding_is_unbiased_and_keeps_its_norm_bound():
    rng = np.random.default_rng(1)
    scaled = rng.normal(size=64) * 3
    l2, l1 = norm_bounds(float(np.linalg.norm(scaled)), 64)
    draws = np.stack([conditional_round(scaled, l2, rng) for _ in range(2000)])
    assert np.linalg.norm(draws, axis=1).max() <= l2
    assert np.abs(draws).sum(axis=1).max() <= l1
    np.testing.assert_allclose(draws.mean(axis=0), scaled, atol=0.05)
    with pytest.raises(RuntimeError, match="was the update clipped"):
        conditional_round(scaled * 10, l2, rng)


def test_skellam_noise_has_its_variance_and_the_field_wraps_and_recentres():
    noise = skellam_noise(200_000, 9.0, np.random.default_rng(2))
    assert noise.dtype == np.int64 and noise.var() == pytest.approx(9.0, rel=0.02)
    values = np.array([-5, 0, 3, 127, 128, -128, -129])
    assert np.array_equal(centre(wrap(values, 8), 8), [-5, 0, 3, 127, -128, -128, 127])


@pytest.mark.parametrize("bits, hospitals", [(16, 4), (22, 100), (8, 20)])
def test_integer_lanes_sum_exactly_under_ckks_with_margin(bits, hospitals):
    keys = new_key_set(PRESETS["n4096"])
    lanes = IntegerLanes(bits, hospitals)
    assert lanes.check() is None and lanes.lanes == 39 // lanes.lane_width
    codec = IntegerLanesCodec(keys.secret_context, keys.fingerprint, lanes)
    rng = np.random.default_rng(bits)
    vectors = rng.integers(0, 1 << bits, size=(hospitals, 1024))
    vectors[0] = (1 << bits) - 1  # the largest lanes: the most carry room they need
    total = None
    for v in vectors:
        total = codec.add(total, codec.encode(v.astype(np.float64)))
    sealed = codec.seal(total)
    slots = codec.inner.decode(sealed.inner)
    # the margin: every slot decrypts within 0.05 of an integer (rounding needs < 0.5)
    assert np.abs(slots - np.rint(slots)).max() < 0.05
    # the hospitals' values carry an offset of 2^(B−1) each (SkellamShare): the release
    # is their centred sum modulo 2^B, and a sum outside the field counts as a wrap
    half = 1 << (bits - 1)
    released, wrapped = codec.decode_counting(sealed)
    true_sum = vectors.sum(axis=0) - hospitals * half
    assert np.array_equal(released, vectors.sum(axis=0) % (1 << bits))
    assert wrapped == np.count_nonzero((true_sum < -half) | (true_sum >= half))


def test_a_lane_too_wide_for_a_slot_is_refused_and_lanes_follow_the_hospitals():
    assert "lower privacy.bits" in IntegerLanes(22, 1 << 20).check()
    assert IntegerLanes(16, 4).lanes == 2 and IntegerLanes(16, 20).lanes == 1
    assert IntegerLanes(12, 20).lanes == 2 and IntegerLanes(8, 20).lanes == 3


def test_the_scale_puts_the_worst_case_sum_at_k_stddevs_of_the_field():
    from fedray.privacy.skellam import K_STDDEVS, scale_for_bits

    assert pytest.approx(3.89, abs=0.005) == K_STDDEVS  # a 1e-4 two-sided Gaussian tail
    n, clip, length, noise = 20, 0.05, 1024, 0.3
    gamma = scale_for_bits(bits=16, summands=n, clip=clip, length=length, noise_std=noise)
    spread = math.sqrt(n ** 2 * gamma ** 2 * clip ** 2 / length + n / 4
                       + gamma ** 2 * noise ** 2)
    assert K_STDDEVS * spread == pytest.approx(2 ** 15)


def test_hospitals_integers_restore_to_the_weighted_sum():
    size, hospitals = 300, 3
    plan = plan_skellam(bits=16, summands=hospitals, min_shares=hospitals, colluders=0,
                        clip=1.0, size=size, noise_multiplier=0.5, seed=4)
    rng = np.random.default_rng(5)
    updates = [u / max(1.0, np.linalg.norm(u)) for u in rng.normal(size=(hospitals, size))]

    class Stream:
        secure = False

        def generator(self):
            return rng

    total = np.zeros(plan.length)
    for u in updates:
        integers = SkellamShare(plan, plan.share_variance)(u, Stream())
        assert integers.min() >= 0 and integers.max() < 1 << 16
        total += integers
    restored = SkellamRestore(plan)(total, size, hospitals)  # takes the offsets off
    error = restored - np.sum(updates, axis=0)
    # the noise: std σC = 0.5 per coordinate (rounding adds ~√(3/12)/γ)
    assert np.std(error) == pytest.approx(0.5, rel=0.1)
    quiet = SkellamShare(plan, 0.0)
    total = sum(quiet(u, Stream()) for u in updates)
    assert np.abs(SkellamRestore(plan)(total, size, hospitals)
                  - np.sum(updates, axis=0)).max() \
        < 4 * hospitals / plan.scale  # without noise: rounding alone


def test_the_field_holds_every_senders_share_when_fewer_shares_are_guaranteed():
    # 20 senders, a release guaranteed only 1 share (min_clients = 1): each share carries
    # the whole planned variance, the sum 20 times it; the scale must make room for that
    hospitals, size = 20, 514
    plan = plan_skellam(bits=16, summands=hospitals, min_shares=1, colluders=0, clip=0.05,
                        size=size, noise_multiplier=4.0, seed=0)
    assert plan.share_variance == pytest.approx(plan.variance)
    rng = np.random.default_rng(3)
    wrapped = total = 0
    for _ in range(5):
        exact = np.zeros(plan.length, dtype=np.int64)
        for u in rng.normal(size=(hospitals, size)):
            rounded = conditional_round(rotate(0.05 * u / np.linalg.norm(u), plan.seed)
                                        * plan.scale, plan.l2, rng)
            exact += rounded + skellam_noise(plan.length, plan.share_variance, rng)
        wrapped += int(np.count_nonzero(centre(exact, 16) != exact))
        total += plan.length
    assert wrapped / total < 2e-3  # 1e-4 planned (38% when the field held the plan alone)


def test_under_threshold_ckks_integers_travel_whole_and_restore_alike():
    size, hospitals = 100, 3
    kept = plan_skellam(bits=12, summands=hospitals, min_shares=hospitals, colluders=0,
                        clip=1.0, size=size, noise_multiplier=0.5, seed=1)
    whole = dataclasses.replace(kept, reduces=False)
    updates = [u / np.linalg.norm(u) for u in np.random.default_rng(4).normal(
        size=(hospitals, size))]

    def stream(seed):
        class Stream:
            secure = False
            generator_ = np.random.default_rng(seed)

            def generator(self):
                return self.generator_
        return Stream()

    sums = {}
    for name, plan in (("reduced", kept), ("whole", whole)):
        share = SkellamShare(plan, plan.share_variance)
        sent = [share(u, stream(h)) for h, u in enumerate(updates)]
        if name == "whole":
            assert min(v.min() for v in sent) < 0  # centred, not offset into the field
        sums[name] = SkellamRestore(plan)(np.sum(sent, axis=0), size, hospitals)
    np.testing.assert_allclose(sums["whole"], sums["reduced"], atol=1e-9)
