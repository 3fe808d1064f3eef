import numpy as np
from hypothesis import example, given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from fedray.privacy import add_gaussian_noise, clip_to_norm


@settings(max_examples=60, deadline=None)
@given(arrays(np.float32, st.integers(1, 50), elements=st.floats(-100, 100, width=32)),
       st.floats(0.01, 10))
# found by hypothesis: vectors exactly at the bound in float32 (issue #10)
@example(vector=np.array([0.66], np.float32), clip=0.66)
@example(vector=np.array([4.186263], np.float32), clip=4.186262875491447)
def test_clip_bounds_the_norm_and_keeps_direction(vector, clip):
    clipped = clip_to_norm(vector, clip)
    norm = np.linalg.norm(vector.astype(np.float64))  # clip_to_norm's semantics: float64
    assert np.linalg.norm(clipped.astype(np.float64)) <= clip * (1 + 1e-6)
    if norm <= clip:
        assert np.array_equal(clipped, vector)  # never scaled up
    else:
        assert np.allclose(clipped * norm / clip, vector, rtol=1e-4, atol=1e-4)


def test_gaussian_noise_has_the_asked_std_and_is_seeded():
    zeros = np.zeros(200_000, np.float32)
    noisy = add_gaussian_noise(zeros, 2.5, np.random.default_rng(0))
    assert abs(noisy.std() - 2.5) < 0.02 and abs(noisy.mean()) < 0.02
    again = add_gaussian_noise(zeros, 2.5, np.random.default_rng(0))
    assert np.array_equal(noisy, again)
    assert noisy.dtype == np.float32
