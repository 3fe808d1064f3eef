"""Privacy audits (docs/privacy.md, "Auditing"): what an attacker recovers from the
same run whose ε the accountant reports. The maths here is pure (numpy); the run's
side is in fedray/audit/run.py."""

from fedray.audit.canary import epsilon_lower_bound, make_canaries, one_run_p_value
from fedray.audit.inversion import invert_first_layer, score_reconstruction
from fedray.audit.membership import attack_summary

__all__ = ["attack_summary", "epsilon_lower_bound", "invert_first_layer", "make_canaries",
           "one_run_p_value", "score_reconstruction"]
