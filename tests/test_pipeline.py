import numpy as np
import pytest

from fedray.crypto import PlainCodec
from fedray.pipeline import ClientPipeline, RoundBroadcast, Update, UploadLayout, aggregate
from fedray.privacy import make_randomness
from fedray.privacy.steps import ServerPrivacy
from fedray.strategies import FedAvg

SEEDED = make_randomness(secure=False, seed=np.random.SeedSequence(0))


WEIGHTS = {0: 0.75, 1: 0.25, 2: 0.25, 3: 1.0, 7: 0.5}


def _update(hospital, vector, weight):
    payload, _, _ = ClientPipeline()(np.asarray(vector, np.float32), weight=weight,
                                     randomness=SEEDED)
    return Update(hospital=hospital, payload=payload)


def _aggregate(updates, size=3, server_lr=1.0, weights=None, start=None, **options):
    start = np.zeros(size, np.float32) if start is None else start
    result = aggregate(updates, broadcast=RoundBroadcast(start), server_state={},
                       weights=weights or WEIGHTS,
                       layout=UploadLayout(FedAvg(server_lr=server_lr), (size,), 8),
                       codec=PlainCodec(), **options)
    vector = None if result.broadcast is None else result.broadcast.global_vector
    return result, vector


def test_weighted_mean_of_updates():
    result, vector = _aggregate([_update(0, [1, 2, 3], 0.75), _update(1, [5, 6, 7], 0.25)])
    assert np.allclose(vector, [2, 3, 4])
    assert result.accepted == (0, 1) and result.rejected == ()
    assert result.bytes_received == 2 * 3 * 4


def test_mean_is_over_the_weights_that_arrived():
    # hospital 1 (weight 0.5) dropped out: the mean renormalises, it does not shrink
    weights = {0: 0.25, 1: 0.5, 2: 0.25}
    _, vector = _aggregate([_update(0, [2, 2, 2], 0.25), _update(2, [4, 4, 4], 0.25)],
                           weights=weights)
    assert np.allclose(vector, [3, 3, 3])


@pytest.mark.parametrize(
    "payload, reason",
    [
        (np.array([1, np.nan, 3], np.float32), "non-finite"),
        (np.array([1, np.inf, 3], np.float32), "non-finite"),
        (np.array([1, 2], np.float32), "2 values, the model has 3"),
        (np.array([1, 2, 3], np.float64), "float64"),
        ([1.0, 2.0, 3.0], "list"),
    ],
)
def test_bad_update_is_rejected_and_reported_not_averaged(payload, reason):
    good = _update(0, [1, 1, 1], 0.5)
    bad = Update(hospital=7, payload=payload)
    result, vector = _aggregate([good, bad], weights={0: 0.5, 7: 0.5})
    assert np.allclose(vector, [1, 1, 1])
    assert result.accepted == (0,)
    assert [r.hospital for r in result.rejected] == [7]
    assert reason in result.rejected[0].reason


def test_an_uninvited_or_repeated_sender_is_rejected():
    # the aggregator weighs by the orchestrator's weights, never by anything a hospital
    # sends: a hospital that was not asked, or that sends twice, is not averaged in
    result, vector = _aggregate([_update(0, [1, 1, 1], 1.0), _update(0, [9, 9, 9], 1.0),
                                 _update(5, [9, 9, 9], 1.0)], weights={0: 1.0})
    assert np.allclose(vector, [1, 1, 1])
    assert sorted(r.reason for r in result.rejected) == [
        "sent a second update this round", "was not asked to take part this round"]


def test_nothing_valid_leaves_global_unchanged():
    bad = Update(1, np.full(3, np.nan, np.float32))
    result, vector = _aggregate([bad], start=np.ones(3, np.float32))
    assert np.array_equal(vector, np.ones(3)) and not result.released
    assert result.accepted == ()


def test_client_pipeline_clips_then_noises_then_weights():
    from fedray.privacy.steps import GaussianNoise

    pipeline = ClientPipeline(steps=(lambda v, randomness: v / 2, GaussianNoise(0.1)))
    payload, _, clipped = pipeline(np.array([4.0, 8.0]), weight=0.5,
                                   randomness=make_randomness(secure=False,
                                                              seed=np.random.SeedSequence(3)))
    noise = np.random.default_rng(np.random.SeedSequence(3)).normal(0.0, 0.1, size=2)
    assert np.allclose(payload, (np.array([2.0, 4.0]) + noise) * 0.5)  # ((v/2) + n) * w
    assert payload.dtype == np.float32 and clipped == 0


def test_server_lr_scales_the_step():
    _, vector = _aggregate([_update(0, [2, 2, 2], 1.0)], server_lr=0.5, weights={0: 1.0})
    assert np.allclose(vector, [1, 1, 1])


def test_central_dp_releases_a_noised_zero_sum_when_nothing_arrived():
    noise = np.array([0.5, -0.25, 1.0])
    class AddNoise:  # a stand-in for SumNoise's stream: a known draw
        def __call__(self, total):
            return total + noise

    result, vector = _aggregate([], server=ServerPrivacy(noise=AddNoise(), denominator=1.0,
                                                         min_accepted=0))
    assert result.released and result.accepted == ()
    assert np.allclose(vector, noise)  # the release is noise, not the old model


def test_too_few_shares_are_withheld_and_say_so():
    result, vector = _aggregate([_update(0, [1, 1, 1], 0.5)],
                                server=ServerPrivacy(min_accepted=2))
    assert not result.released and result.accepted == ()
    assert np.array_equal(vector, np.zeros(3))
    assert "fewer than the 2 the noise shares need" in result.rejected[0].reason


def test_a_replayed_update_from_an_earlier_round_is_refused():
    fresh = Update(0, np.full(3, 0.75, np.float32), round_=5)
    replayed = Update(1, np.full(3, 0.25, np.float32), round_=4)
    result, vector = _aggregate([fresh, replayed], round_=5)
    assert result.accepted == (0,)
    assert [(r.hospital, r.reason) for r in result.rejected] == [
        (1, "replayed an update made for round 4")]
    assert np.allclose(vector, 1.0)  # 0.75 / 0.75: the replay is not averaged in


def test_an_update_longer_than_its_weight_times_the_clip_is_refused():
    clip = 1.0
    honest = Update(0, (0.75 * np.array([0.6, 0.8, 0.0])).astype(np.float32))  # norm 0.75 C
    forged = Update(1, (0.25 * np.array([3.0, 4.0, 0.0])).astype(np.float32))  # norm 1.25 ≫ 0.25 C
    result, _ = _aggregate([honest, forged], server=ServerPrivacy(norm_bound=clip))
    assert result.accepted == (0,)
    assert result.rejected[0].hospital == 1
    assert result.rejected[0].reason.startswith("norm 1.25 is above the clip bound 0.25")
