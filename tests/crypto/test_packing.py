import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fedray.crypto import PackedCKKSCodec
from fedray.crypto.ckks import PRESETS, new_key_set
from fedray.crypto.packing import (
    Layout,
    clipped_share_bound,
    count_out_of_range,
    dequantize_sum,
    noise_tails,
    pack,
    quantize,
    range_for_noise,
    unpack,
)


@settings(max_examples=50, deadline=None)
@given(st.lists(st.integers(0, 2**15 - 1), min_size=1, max_size=40), st.integers(1, 10))
def test_pack_unpack_round_trip_including_sums(values, hospitals):
    layout = Layout(bits=15, value_range=1.0, max_summands=10)
    integers = np.array(values, dtype=np.int64)
    summed = sum(pack(integers, layout) for _ in range(hospitals))
    assert np.array_equal(unpack(summed, len(values), layout), hospitals * integers)


def test_quantisation_error_is_half_a_level_and_clipping_is_counted():
    layout = Layout(bits=12, value_range=0.5, max_summands=4)
    values = np.linspace(-0.6, 0.6, 1001)
    integers = quantize(values, layout)
    assert count_out_of_range(values, layout) == np.count_nonzero(np.abs(values) > 0.5)
    back = dequantize_sum(integers, 1, layout)
    inside = np.abs(values) <= 0.5
    assert np.max(np.abs(back[inside] - values[inside])) <= 0.5 * (1.0 / layout.levels) + 1e-12


def test_layout_refuses_lanes_that_would_overflow():
    assert Layout(bits=15, value_range=1, max_summands=10).check() is None
    assert "lower quantization_bits" in Layout(bits=17, value_range=1, max_summands=100).check()


def test_encrypted_packed_sum_is_the_quantised_sum_at_16_bytes_per_value():
    keys = new_key_set(PRESETS["n4096"])
    layout = Layout(bits=15, value_range=1.0, max_summands=10)
    hospital = PackedCKKSCodec(keys.secret_context, keys.fingerprint, layout=layout)
    aggregator = PackedCKKSCodec(keys.public_context, keys.fingerprint, layout=layout)
    rng = np.random.default_rng(0)
    vectors = [rng.uniform(-0.9, 0.9, 4095) for _ in range(10)]  # odd length on purpose
    total = None
    for v in vectors:
        payload = hospital.encode(v)
        assert aggregator.validate(payload, 4095) is None
        total = aggregator.add(total, payload)
    sealed = aggregator.seal(total)
    assert sealed.count == 10
    decoded = hospital.decode(sealed)
    assert decoded.shape == (4095,)
    assert np.max(np.abs(decoded - np.sum(vectors, axis=0))) <= 10 * 0.5 / layout.levels * 2
    assert payload.nbytes / 4095 < 17
    with pytest.raises(PermissionError):
        aggregator.decode(sealed)


def test_derived_range_keeps_every_hospital_inside_with_the_same_margin():
    stds, weights = [2.0, 2.0, 0.5], [0.4, 0.05, 0.4]
    tails = noise_tails(delta=1e-5, values_per_run=10_000)
    assert 6.5 < tails < 7.0  # two-sided 1e-11 per value
    value_range = range_for_noise(clip=1.0, noise_stds=stds, weights=weights, tails=tails)
    assert value_range == pytest.approx(0.4 * (1.0 + tails * 2.0))
    for std, weight in zip(stds, weights):
        share = clipped_share_bound(value_range, clip=1.0, noise_std=std, weight=weight)
        assert share * 10_000 <= 1e-5 / 100 * (1 + 1e-9)  # δ/100 over the run


@pytest.mark.parametrize("update_value", [0.0, 0.5, 1.0])
def test_clipped_share_bound_holds_for_any_clipped_update(update_value):
    rng = np.random.default_rng(0)
    values = 0.4 * (update_value + rng.normal(0.0, 2.0, size=400_000))
    layout = Layout(bits=15, value_range=1.0, max_summands=4)
    observed = count_out_of_range(values, layout) / values.size
    bound = clipped_share_bound(1.0, clip=1.0, noise_std=2.0, weight=0.4)
    assert observed <= bound
    assert bound == pytest.approx(math.erfc(1.5 / (2.0 * math.sqrt(2.0))))  # P(|n| > 1.5)
