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


def test_a_sweep_table_gets_the_audit_as_columns():
    summary = {"config": {"num_clients": 4, "privacy": {"name": "none"}}, "clients": [{}] * 4,
               "audit": AUDIT}
    row = summary_row(summary)
    assert row["audit.canary.epsilon_lower_bound"] == 0.257
    assert row["audit.membership.calibrated.auc"] == 0.61
