"""Audits inside real runs: what each attacker gets from the run whose ε is reported."""

import pytest

from fedray import DatasetConfig, ModelConfig, simulate
from fedray.config import AuditConfig, EncryptionConfig, PrivacyConfig
from tests.conftest import synthetic_config

pytestmark = pytest.mark.integration


def _single_record_rounds(**overrides):
    # one SGD step on one record per round: the update the analytic attack inverts exactly
    return synthetic_config(**{**dict(
        num_records=200, model=ModelConfig(name="mlp", hidden=8),
        num_clients=4, num_rounds=1, local_steps=1, batch_size=1,
        audit=AuditConfig(inversion=True, target=2, dlg_iterations=20)), **overrides})


def test_encryption_hides_the_single_update_but_not_the_sum_the_aggregator_decrypts(ray_local):
    plain = simulate(_single_record_rounds()).summary["audit"]["inversion"]
    assert plain["view"] == "plaintext" and plain["records_recovered"] == 1
    assert plain["best_relative_error"] < 1e-3
    assert plain["dlg"]["candidates"] == 1  # batch_size records (its accuracy: unit tests)
    encrypted = simulate(_single_record_rounds(
        encryption=EncryptionConfig(name="ckks", preset="n4096"))).summary["audit"]["inversion"]
    assert encrypted["view"] == "ciphertext" and "records_recovered" not in encrypted
    # ...but the released sum of four single-record updates still gives records away:
    # secure aggregation hides the updates, not what their sum reveals
    released = encrypted["released_sum"]
    assert released["records_recovered"] >= 1 and released["best_relative_error"] < 1e-3
    assert plain["released_sum"]["records_recovered"] >= 1


def _overfitting(privacy):
    # few records, a wide MLP, many local epochs: without DP the model memorises
    return synthetic_config(
        dataset=DatasetConfig(name="synthetic", num_records=400, test_fraction=0.5),
        model=ModelConfig(name="mlp", hidden=256),
        num_clients=2, num_rounds=3, local_epochs=30, lr=0.1, privacy=privacy,
        audit=AuditConfig(membership=True, canary=True, canaries=200))


def test_membership_advantage_falls_with_epsilon_and_canaries_stay_below_it(ray_local):
    exposed = simulate(_overfitting(PrivacyConfig())).summary["audit"]
    private = simulate(_overfitting(PrivacyConfig(name="local", epsilon=1.0))).summary["audit"]
    # 200 members and 200 held-out records: AUC std ~0.03; measured 0.60 vs 0.50
    assert exposed["membership"]["calibrated"]["auc"] > 0.57
    assert (exposed["membership"]["calibrated"]["auc"]
            - private["membership"]["calibrated"]["auc"]) > 0.06
    # the canary audit has power (it refutes ε = 0 without DP) ...
    assert exposed["canary"]["epsilon_lower_bound"] > 0
    # ... and never refutes the accountant's ε (a violation would be a bug to report)
    canary = private["canary"]
    assert canary["epsilon_lower_bound"] <= canary["epsilon_accountant"] <= 1.0
    assert canary["epsilon_covering"] == canary["epsilon_accountant"]  # local: replace-one
