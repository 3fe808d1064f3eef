"""Dropouts and stragglers in whole runs: offline hospitals do not train, late ones train
but miss the round, the round closes with whoever arrived, and it is all seeded."""

import pytest

from fedray import ModelConfig, simulate
from fedray.config import AvailabilityConfig, EncryptionConfig, PrivacyConfig
from tests.conftest import synthetic_config

pytestmark = pytest.mark.integration


def _config(**overrides):
    base = dict(num_records=1000, model=ModelConfig(name="mlp", hidden=8),
                num_clients=10, num_rounds=4, lr=0.1, round_timeout_s=5.0,
                availability=AvailabilityConfig(online=0.7, online_spread=0.2,
                                                speed_spread=0.5, seconds_per_step=1.0))
    return synthetic_config(**{**base, **overrides})


def _per_round(metrics, metric):
    rows = metrics[(metrics["split"] == "round") & (metrics["metric"] == metric)
                   & (metrics["client"] != "global")]
    return {r: set(g["client"]) for r, g in rows.groupby("round")}


def test_offline_hospitals_skip_the_round_and_late_ones_miss_it(ray_local):
    result = simulate(_config())
    m, summary = result.metrics, result.summary
    round_seconds = summary["availability"]["round_seconds"]
    offline, late = _per_round(m, "offline"), _per_round(m, "late")
    trained = {r: set(g["client"]) for r, g in m.query("split == 'train'").groupby("round")}
    totals = m[(m["client"] == "global") & (m["split"] == "round")].pivot(
        index="round", columns="metric", values="value")
    for round_ in range(1, 5):
        assert not offline.get(round_, set()) & trained[round_]  # offline: no training
        assert late.get(round_, set()) <= trained[round_]  # late: trained all the same
        assert late.get(round_, set()) == {h for h in trained[round_] if round_seconds[h] > 5}
        assert totals.loc[round_, "accepted"] == (totals.loc[round_, "participants"]
                                                  - totals.loc[round_, "late"])
    assert summary["availability"]["offline"] == sum(len(s) for s in offline.values()) > 0
    assert summary["availability"]["late"] == sum(len(s) for s in late.values()) > 0
    again = simulate(_config())
    assert again.summary["model_sha256"] == summary["model_sha256"]  # seeded


def test_distributed_dp_withholds_rounds_with_too_few_shares(ray_local):
    config = _config(num_clients=6, num_rounds=5, min_clients=5,
                     privacy=PrivacyConfig(name="distributed", epsilon=8.0,
                                           reveal_sample=True),  # the counts are read here
                     encryption=EncryptionConfig(name="ckks"),
                     availability=AvailabilityConfig(online=0.75))
    result = simulate(config)
    totals = result.metrics[(result.metrics["client"] == "global")
                            & (result.metrics["split"] == "round")].pivot(
        index="round", columns="metric", values="value")
    released = totals["accepted"] > 0
    assert (totals.loc[released, "accepted"] >= 5).all()
    assert ((6 - totals["offline"] < 5) == ~released).all()  # too few answered: withheld
    assert 0 < released.sum() < 5
    assert result.summary["rounds_completed"] == released.sum()
