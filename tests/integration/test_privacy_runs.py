"""Privacy modes end to end on a real local Ray: ε reported is Opacus's, budgets cap."""

import json

import numpy as np
import pytest
from opacus.accountants import RDPAccountant

from fedray import ModelConfig, simulate
from fedray.config import PrivacyConfig
from fedray.models import initial_parameters
from tests.conftest import synthetic_config

pytestmark = pytest.mark.integration


def _config(privacy, **overrides):
    base = dict(num_records=800, model=ModelConfig(name="logreg"), num_clients=4,
                num_rounds=4, lr=0.1, batch_size=16, privacy=privacy)
    return synthetic_config(**{**base, **overrides})


def _opacus_epsilon(sigma, q, steps, delta=1e-5):
    accountant = RDPAccountant()
    for _ in range(steps):
        accountant.step(noise_multiplier=sigma, sample_rate=q)
    return accountant.get_epsilon(delta=delta)


def test_local_dp_reports_what_opacus_computes_for_replace_one(ray_local):
    result = simulate(_config(PrivacyConfig(name="local", epsilon=8.0)))
    s = result.summary
    sigma = s["noise_multiplier"]
    # replace-one: sensitivity 2C, so the Gaussian is Opacus's at σ/2
    assert s["epsilon"] == pytest.approx(_opacus_epsilon(sigma / 2, 1.0, 4), rel=1e-12)
    assert 7.9 < s["epsilon"] <= 8.0
    assert s["privacy"]["adjacency"] == "replace_one" and s["privacy"]["update_sensitivity"] == 2.0
    per_round = result.metrics.query("split == 'privacy' and client == 'hospital_000'")
    assert per_round["value"].is_monotonic_increasing and len(per_round) == 4


def test_local_budget_cap_stops_hospitals_and_says_so(ray_local):
    # σ given, ε budget worth exactly two releases: rounds 3 and 4 must be refused
    budget = _opacus_epsilon(1.0, 1.0, 2)  # σ = 2 under replace-one is Opacus's σ = 1
    result = simulate(_config(PrivacyConfig(name="local", noise_multiplier=2.0,
                                            epsilon=budget)))
    privacy = result.summary["privacy"]
    assert result.summary["epsilon"] == pytest.approx(budget)
    assert {e["client"] for e in privacy["budget_exhausted"]} == {
        "hospital_000", "hospital_001", "hospital_002", "hospital_003"}
    assert {e["round"] for e in privacy["budget_exhausted"]} == {3}
    assert result.summary["rounds_completed"] == 2  # later rounds had no update to add


def test_central_dp_run_ledger_and_early_stop(ray_local):
    budget = _opacus_epsilon(1.5, 0.5, 3)
    result = simulate(_config(PrivacyConfig(name="central", noise_multiplier=1.5,
                                            epsilon=budget), fraction_per_round=0.5,
                              num_rounds=6))
    s = result.summary
    assert s["epsilon"] == pytest.approx(budget) and s["epsilon"] <= budget
    assert "stopped before round 4" in s["privacy"]["stopped_early"]
    assert s["privacy"]["per_client_epsilon"] is None  # protects via the run's accountant
    assert s["privacy"]["adjacency"] == "add_remove"


def test_central_dp_releases_a_noised_sum_even_when_nobody_is_sampled(ray_local):
    # (reveal_sample: the participant counts are the diagnostic this test reads)
    config = _config(PrivacyConfig(name="central", noise_multiplier=1.0, reveal_sample=True),
                     fraction_per_round=0.1, num_rounds=6)
    result = simulate(config)
    participants = result.metrics.query("metric == 'participants'")["value"]
    assert (participants == 0).sum() >= 2  # seed 0: several rounds sample nobody
    assert result.summary["rounds_completed"] == 6  # each of them released noise
    assert result.summary["epsilon"] == pytest.approx(_opacus_epsilon(1.0, 0.1, 6),
                                                      rel=1e-12)
    # with nobody sampled the model still moves: the release is noise, not the old model
    quiet = simulate(_config(PrivacyConfig(name="central", noise_multiplier=1.0,
                                           reveal_sample=True),
                             fraction_per_round=0.1, num_rounds=1, seed=1))
    assert quiet.metrics.query("metric == 'participants'")["value"].tolist() == [0]
    initial = initial_parameters(config.model, num_features=13, num_classes=2, seed=1)
    assert not np.allclose(quiet.global_vector, initial)


def test_ledgers_are_read_at_the_end_so_late_batches_are_counted(ray_local):
    # round 1's batches miss the 0.1 ms deadline (training takes milliseconds): the
    # aggregator never sees them, but the hospitals trained and spent. The summary's ε
    # comes from each hospital's ledger, and the late reports are still logged.
    result = simulate(_config(PrivacyConfig(name="local", noise_multiplier=2.0),
                              round_timeout_s=1e-4, num_rounds=3))
    accepted = result.metrics.query("metric == 'accepted'").set_index("round")["value"]
    assert accepted[1] == 0
    spent = result.summary["privacy"]["per_client_epsilon"]
    for name in ("hospital_000", "hospital_003"):
        assert spent[name] == pytest.approx(_opacus_epsilon(1.0, 1.0, 3), rel=1e-12)
    late = result.metrics.query("split == 'privacy' and round == 1")
    assert set(late["client"]) == set(spent)  # every hospital's round-1 report, collected late


def test_dpsgd_trains_with_opacus_and_accounts_per_hospital(ray_local):
    result = simulate(_config(PrivacyConfig(name="dpsgd", epsilon=6.0), local_steps=5))
    privacy = result.summary["privacy"]
    q = privacy["sample_rate"]["hospital_000"]
    sigma = privacy["per_client_noise_multiplier"]["hospital_000"]
    spent = privacy["per_client_epsilon"]["hospital_000"]
    assert spent == pytest.approx(_opacus_epsilon(sigma, q, 4 * 5), rel=1e-9)
    assert spent <= 6.0 and privacy["protects"] == "each patient record"
    assert result.summary["accuracy"] > 0.5


def test_noise_changes_the_model_and_is_seeded_unless_secure(ray_local):
    plain = simulate(_config(PrivacyConfig()))
    noisy = simulate(_config(PrivacyConfig(name="local", epsilon=2.0)))
    again = simulate(_config(PrivacyConfig(name="local", epsilon=2.0)))
    assert not np.allclose(plain.global_vector, noisy.global_vector, atol=1e-3)
    assert np.array_equal(noisy.global_vector, again.global_vector)
    assert noisy.summary["privacy"]["secure_rng"] is False
    # the same config with noise from the OS: the seed no longer regenerates it (each
    # source is tested directly in tests/test_hospital.py; this checks the actors get it)
    secure = simulate(_config(PrivacyConfig(name="local", epsilon=2.0, secure_rng=True)))
    assert not np.allclose(secure.global_vector, noisy.global_vector)
    assert secure.summary["privacy"]["secure_rng"] is True


@pytest.mark.parametrize("reveal", [False, True])
def test_by_default_the_outputs_do_not_name_central_dps_hidden_sample(ray_local, tmp_path,
                                                                      reveal):
    result = simulate(_config(PrivacyConfig(name="central", noise_multiplier=1.0,
                                            reveal_sample=reveal),
                              num_clients=6, fraction_per_round=0.5, num_rounds=4,
                              output_dir=str(tmp_path)))
    metrics = result.metrics
    trained = metrics.query("split == 'train' and metric == 'loss'")
    per_round = trained.groupby("round")["client"].nunique()
    counts = metrics.query("metric in ['participants', 'accepted', 'sampled']")
    summary = json.loads((tmp_path / "summary.json").read_text())
    written = (tmp_path / "metrics.csv").read_text()
    if reveal:  # positive control: the diagnostics name the sample (a strict subset)
        assert (per_round < 6).any() and len(counts) > 0
        assert summary["bytes_uploaded"] > 0 and summary["seconds"]["train"] > 0
    else:  # every hospital or none, no counts, no bytes, no train seconds
        assert trained.empty and counts.empty
        assert "participants" not in written and ",train,loss," not in written
        assert summary["bytes_uploaded"] is None and summary["seconds"]["train"] is None
        assert summary["rounds_completed"] == 4  # what is released stays reported
