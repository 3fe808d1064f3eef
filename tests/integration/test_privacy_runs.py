"""Privacy modes end to end on a real local Ray: ε reported is Opacus's, budgets cap."""

import numpy as np
import pytest
from opacus.accountants import RDPAccountant

from fedray import (
    DatasetConfig, ModelConfig, PartitionConfig, SimulationConfig, simulate,
)
from fedray.config import PrivacyConfig

pytestmark = pytest.mark.integration


def _config(privacy, **overrides):
    base = dict(
        dataset=DatasetConfig(name="synthetic", num_records=800),
        partition=PartitionConfig(name="iid"), model=ModelConfig(name="logreg"),
        num_clients=4, num_rounds=4, lr=0.1, batch_size=16, progress=False, privacy=privacy,
    )
    return SimulationConfig(**{**base, **overrides})


def _opacus_epsilon(sigma, q, steps, delta=1e-5):
    accountant = RDPAccountant()
    for _ in range(steps):
        accountant.step(noise_multiplier=sigma, sample_rate=q)
    return accountant.get_epsilon(delta=delta)


def test_local_dp_reports_what_opacus_computes(ray_local):
    result = simulate(_config(PrivacyConfig(name="local", epsilon=8.0)))
    s = result.summary
    sigma = s["noise_multiplier"]
    assert s["epsilon"] == pytest.approx(_opacus_epsilon(sigma, 1.0, 4), rel=1e-12)
    assert 7.9 < s["epsilon"] <= 8.0
    per_round = result.metrics.query("split == 'privacy' and client == 'hospital_000'")
    assert per_round["value"].is_monotonic_increasing and len(per_round) == 4


def test_local_budget_cap_stops_hospitals_and_says_so(ray_local):
    # σ given, ε budget worth exactly two releases: rounds 3 and 4 must be refused
    budget = _opacus_epsilon(2.0, 1.0, 2)
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


def test_dpsgd_trains_with_opacus_and_accounts_per_hospital(ray_local):
    result = simulate(_config(PrivacyConfig(name="dpsgd", epsilon=6.0), local_steps=5))
    privacy = result.summary["privacy"]
    q = privacy["sample_rate"]["hospital_000"]
    sigma = privacy["per_client_noise_multiplier"]["hospital_000"]
    spent = privacy["per_client_epsilon"]["hospital_000"]
    assert spent == pytest.approx(_opacus_epsilon(sigma, q, 4 * 5), rel=1e-9)
    assert spent <= 6.0 and privacy["protects"] == "each patient record"
    assert result.summary["accuracy"] > 0.5


def test_noise_changes_the_model_and_is_seeded(ray_local):
    plain = simulate(_config(PrivacyConfig()))
    noisy = simulate(_config(PrivacyConfig(name="local", epsilon=2.0)))
    again = simulate(_config(PrivacyConfig(name="local", epsilon=2.0)))
    assert not np.allclose(plain.global_vector, noisy.global_vector, atol=1e-3)
    assert np.array_equal(noisy.global_vector, again.global_vector)
