"""Audits inside real runs: what each attacker gets from the run whose ε is reported."""

import pytest

from fedray import DatasetConfig, ModelConfig, simulate
from fedray.cli import format_result
from fedray.config import AuditConfig, EncryptionConfig, PrivacyConfig
from tests.conftest import synthetic_config

pytestmark = pytest.mark.integration


def _single_record_rounds(**overrides):
    # one SGD step on one record per round: the update the analytic attack inverts exactly
    return synthetic_config(**{**dict(
        num_records=200, model=ModelConfig(name="mlp", hidden=8),
        num_clients=4, num_rounds=1, local_steps=1, batch_size=1,
        audit=AuditConfig(inversion=True, membership=True, target=2, dlg_iterations=20)),
        **overrides})


def test_encryption_hides_the_single_update_but_not_the_sum_the_aggregator_decrypts(ray_local):
    plain = simulate(_single_record_rounds()).summary["audit"]["inversion"]
    assert plain["view"] == "plaintext" and plain["records_recovered"] == 1
    assert plain["best_relative_error"] < 1e-3
    assert plain["dlg"]["candidates"] == 1  # batch_size records (its accuracy: unit tests)
    encrypted_audit = simulate(_single_record_rounds(
        encryption=EncryptionConfig(name="ckks", preset="n4096"))).summary["audit"]
    encrypted = encrypted_audit["inversion"]
    assert encrypted["view"] == "ciphertext" and "records_recovered" not in encrypted
    # nor can the aggregator rebuild the target's own model for a membership attack
    assert encrypted_audit["membership"]["single_update"] == {"view": "ciphertext", "round": 1}
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
    # a model user who saw all 3 rounds sees the final model too: never less
    every = exposed["membership"]["every_round"]
    assert every["rounds"] == 3
    assert every["best_round_auc"] >= exposed["membership"]["calibrated"]["auc"]
    # the aggregator reading one hospital's last update in the clear sees more than a
    # model user: that hospital's own model (measured 0.70 vs 0.60; local ε = 1: 0.47)
    single = exposed["membership"]["single_update"]
    assert single["view"] == "plaintext" and single["round"] == 3
    assert single["calibrated"]["auc"] > exposed["membership"]["calibrated"]["auc"] + 0.05
    assert private["membership"]["single_update"]["calibrated"]["auc"] < 0.56
    assert (exposed["membership"]["calibrated"]["auc"]
            - private["membership"]["calibrated"]["auc"]) > 0.06
    # the canary audit has power (it refutes ε = 0 without DP) ...
    assert exposed["canary"]["epsilon_lower_bound"] > 0
    # ... and never refutes the accountant's ε (a violation would be a bug to report)
    canary = private["canary"]
    assert canary["epsilon_lower_bound"] <= canary["epsilon_accountant"] <= 1.0
    assert canary["epsilon_covering"] == canary["epsilon_accountant"]  # local: replace-one


def _canary_clients(privacy, *, count=200, noise_scale=1.0, **overrides):
    # mlp: 514 coordinates, so 200 canaries of fresh directions barely interfere
    return synthetic_config(**{**dict(
        model=ModelConfig(name="mlp"), num_clients=4, num_rounds=5, privacy=privacy,
        audit=AuditConfig(client_canary=True, client_canaries=count,
                          noise_scale=noise_scale)), **overrides})


def test_canary_clients_track_central_dp_and_catch_its_noise_removed(ray_local):
    central = PrivacyConfig(name="central", epsilon=4.0)
    audit = simulate(_canary_clients(central)).summary["audit"]["client_canary"]
    accountant = audit["epsilon_accountant"]
    assert accountant == pytest.approx(4.0, abs=0.01)
    # negative control: the lower bound stays under the accountant, the estimate near it
    assert audit["verdict"] == "not refuted"
    assert audit["epsilon_empirical_lower"] <= accountant
    assert audit["epsilon_empirical"] / accountant > 0.5
    # positive control: the same run without its noise, the accountant unchanged
    result = simulate(_canary_clients(central, noise_scale=0.0))
    broken = result.summary
    assert broken["privacy"]["noise_scale_for_audit_control"] == 0.0
    printed = format_result(result)
    assert "only 0 of the noise was added; the ε above is NOT enforced" in printed
    assert "canary clients: 200" in printed and ": violated" in printed
    caught = broken["audit"]["client_canary"]
    assert caught["epsilon_accountant"] == pytest.approx(accountant)
    assert caught["verdict"] == "violated"
    assert caught["epsilon_empirical_lower"] > 3 * accountant


def test_canary_clients_under_local_dp_are_scored_on_their_own_uploads(ray_local):
    audit = simulate(_canary_clients(PrivacyConfig(name="local", epsilon=4.0))
                     ).summary["audit"]["client_canary"]
    upload, released = audit["each canary's own upload"], audit["released model changes"]
    assert audit["deciding_view"] == "each canary's own upload"
    assert upload["gaussian_fit"]["verdict"] == "not refuted"
    assert upload["gaussian_fit"]["epsilon_lower"] <= audit["epsilon_accountant"]
    assert upload["tightness"] > 0.5  # replace-one: the out-canary sends the opposite
    # the sum of 204 noised uploads hides a canary far better than its own upload does
    assert released["gaussian_fit"]["epsilon"] < upload["gaussian_fit"]["epsilon"] / 2


def test_canary_clients_under_distributed_dp_ride_the_encrypted_sum(ray_local):
    # every client's noise share sized so that the 4 + 96 shares carry the whole noise
    audit = simulate(_canary_clients(
        PrivacyConfig(name="distributed", epsilon=4.0), count=96, min_clients=100,
        encryption=EncryptionConfig(name="ckks", preset="n4096"))
    ).summary["audit"]["client_canary"]
    assert audit["rounds_seen"] == 5 and audit["deciding_view"] == "released model changes"
    assert audit["epsilon_empirical_lower"] <= audit["epsilon_accountant"]
    assert audit["epsilon_empirical"] > 0.5  # the canaries do show through the noise


def _gradient_canaries(noise_scale=1.0):
    # mlp: 514 parameters, 512 canaries on fresh coordinates each round; 10 rounds
    return synthetic_config(
        model=ModelConfig(name="mlp"), num_clients=2, num_rounds=10,
        privacy=PrivacyConfig(name="dpsgd", epsilon=4.0),
        audit=AuditConfig(gradient_canary=True, noise_scale=noise_scale))


def test_gradient_canaries_stay_under_dpsgds_epsilon_and_catch_its_noise_removed(ray_local):
    audit = simulate(_gradient_canaries()).summary["audit"]["gradient_canary"]
    accountant = audit["epsilon_accountant"]
    assert accountant == pytest.approx(4.0, abs=0.01) and audit["canaries"] == 512
    # the aggregator reads hospital 0's upload in the clear: DP-SGD's ε is about it
    assert audit["deciding_view"] == "the target hospital's own upload"
    assert audit["rounds_seen"] == 10
    assert audit["verdict"] == "not refuted"
    assert audit["epsilon_empirical_lower"] <= accountant
    assert audit["epsilon_empirical"] > 0.5  # the canaries show through the noise
    # positive control: the same run with Opacus adding none of its noise
    result = simulate(_gradient_canaries(noise_scale=0.0))
    assert "gradient canaries: 512" in format_result(result)
    caught = result.summary["audit"]["gradient_canary"]
    assert caught["epsilon_accountant"] == pytest.approx(accountant)  # priced as before
    assert caught["verdict"] == "violated"
    assert caught["epsilon_empirical_lower"] > 1.5 * accountant  # measured 8.1 vs 4.0
