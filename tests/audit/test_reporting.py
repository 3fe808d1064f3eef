"""How an audit reaches the researcher: the CLI's lines and a sweep table's columns."""

from fedray.cli import _audit_lines
from fedray.outputs.collect import summary_row

AUDIT = {
    "target_hospital": "Cleveland",
    "inversion": {"view": "plaintext", "best_relative_error": 2e-7, "records_recovered": 1,
                  "dlg": {"best_relative_error": 0.086}},
    "membership": {"loss": {"auc": 0.6, "advantage": 0.2},
                   "calibrated": {"auc": 0.61, "advantage": 0.19}},
    "canary": {"canaries": 200, "correct": 65, "guesses": 100, "epsilon_lower_bound": 0.257,
               "confidence": 0.95, "epsilon_accountant": None, "epsilon_ceiling": 3.49,
               "verdict": "no ε claimed"},
}


def test_the_cli_prints_one_line_per_attack():
    lines = _audit_lines(AUDIT)
    assert lines[0] == "audit (target Cleveland):" and len(lines) == 4
    assert "1 record recovered; optimisation-based: 0.086" in lines[1]
    assert "AUC 0.600 (loss), 0.610 (calibrated)" in lines[2]
    assert ("200 inserted (each with probability 1/2), 65/100 guesses right, empirical ε "
            "≥ 0.257 at 95% (no ε claimed); the most these canaries could show: ε 3.49"
            in lines[3])
    assert _audit_lines(None) == []
    encrypted = _audit_lines({"target_hospital": "x", "inversion": {"view": "ciphertext"}})
    assert encrypted[1] == "  inversion: the aggregator saw ciphertext"
    summed = _audit_lines({"target_hospital": "x", "inversion": {
        "view": "ciphertext", "released_sum": {"best_relative_error": 1.2e-4,
                                               "records_recovered": 2}}})
    assert summed[1] == ("  inversion: the aggregator saw ciphertext; from the released sum: "
                         "2 recovered (best 0.00012)")


def test_the_cli_prints_the_canary_clients_deciding_estimate_and_the_one_run_bound():
    import numpy as np

    from fedray.audit.client_canary import CanaryClients, client_canary_audit

    canaries = CanaryClients(count=40, first=4, dimension=100, norm=1.0, seed=3)
    included = canaries.included()
    scores = {"released": np.where(included, 5.0, 0.0) + np.linspace(0, 0.1, 40),
              "uploads": None, "rounds": 5, "uploads_seen": 0}
    audit = client_canary_audit(canaries.included(), scores, claimed=4.0, delta=1e-5,
                                confidence=0.95, per_upload=False)
    lines = _audit_lines({"target_hospital": "x", "client_canary": audit})
    assert lines[1].startswith(f"  canary clients: 40 ({included.sum()} in), scored on "
                               "released model changes over 5 rounds: empirical ε ")
    assert lines[1].endswith("against the accountant's ε 4.000: violated")
    assert "one-run bound ε ≥" in lines[2] and "20/20 guesses right" in lines[2]


def test_a_sweep_table_gets_the_audit_as_columns():
    summary = {"config": {"num_clients": 4, "privacy": {"name": "none"}}, "clients": [{}] * 4,
               "audit": AUDIT}
    row = summary_row(summary)
    assert row["audit.canary.epsilon_lower_bound"] == 0.257
    assert row["audit.membership.calibrated.auc"] == 0.61
