"""summary.json's privacy section: what was promised, to whom, and what was spent."""

from __future__ import annotations

from typing import Any

from fedray.privacy.adjacency import DESCRIPTIONS
from fedray.privacy.modes import RUN
from fedray.privacy.plan import PrivacyPlan
from fedray.privacy.skellam import WRAP_PROBABILITY


def privacy_summary(privacy: PrivacyPlan, *, names: list[str], epsilon: dict[int, float],
                    exhausted: dict[int, int], stopped_early: str | None) -> dict[str, Any]:
    """``epsilon``: each party's ε spent (hospital index, or ``RUN``); ``exhausted``:
    hospital -> first round its budget refused."""
    if not privacy.enabled:
        return {"epsilon": None, "delta": None, "noise_multiplier": None}
    sigmas = {p: plan.noise_multiplier for p, plan in privacy.parties.items()}
    per_hospital = privacy.mechanism.per_hospital
    adjacency = privacy.adjacency
    assert adjacency is not None
    return {
        # the largest ε any protected party (hospital, or the run) has spent
        "epsilon": max(epsilon.values(), default=0.0),
        "delta": privacy.delta,
        "noise_multiplier": max(sigmas.values()),
        "privacy": {
            "mode": privacy.mode,
            "adjacency": adjacency.value,
            "adjacency_means": DESCRIPTIONS[adjacency],
            # how far one unit moves its clipped update (2C replace-one, else C); the
            # released sum's is this times the weight (C/(qN) under central DP)
            "update_sensitivity": adjacency.sensitivity * privacy.clip,
            "accountant": ("skellam-rdp" if privacy.skellam is not None
                           else privacy.accountant),
            # distributed: the Skellam mechanism on integers (fedray/privacy/skellam.py)
            "mechanism": _mechanism(privacy),
            "epsilon_budget": privacy.budget,
            "clip": privacy.clip,
            "protects": ("each patient record" if privacy.mechanism.unit == "record"
                         else "each hospital's whole contribution"),
            "secure_rng": privacy.secure_rng,
            "colluders_tolerated": privacy.colluders if privacy.self_sampling else None,
            "per_client_epsilon": (
                {names[i]: epsilon.get(i, 0.0) for i in range(len(names))}
                if per_hospital else None
            ),
            "per_client_noise_multiplier": (
                {names[i]: sigmas[i] for i in range(len(names))} if per_hospital else None
            ),
            "sample_rate": {  # the hospitals' and the run's (not audit canary clients')
                (names[p] if p != RUN else "run"): plan.sample_rate
                for p, plan in privacy.parties.items() if p < len(names)
            },
            # audit.noise_scale < 1: only this share of the noise was added, so the ε
            # above was not enforced (the audit's positive control)
            "noise_scale_for_audit_control": privacy.noise_scale,
            "budget_exhausted": [
                {"client": names[i], "round": r} for i, r in sorted(exhausted.items())
            ],
            "stopped_early": stopped_early,
        },
    }


def _mechanism(privacy: PrivacyPlan) -> dict[str, Any]:
    """What the noise is and what is released: Gaussian noise on floats, or distributed
    DP's Skellam shares on integers, whose exact sum modulo 2^bits is released."""
    skellam = privacy.skellam
    if skellam is None:
        return {"noise": "gaussian", "released": "floats"}
    return {"noise": "skellam", "released": f"the integer sum modulo 2^{skellam.bits}",
            "bits": skellam.bits, "scale": skellam.scale, "rotation_length": skellam.length,
            "sensitivity_l2": skellam.l2, "sensitivity_l1": skellam.l1,
            "noise_variance": skellam.variance, "share_variance": skellam.share_variance,
            "wrap_probability_per_coordinate": WRAP_PROBABILITY}


def wrap_report(wrapped: dict[int, int], length: int) -> dict[str, Any]:
    """Distributed DP's wrap-around, counted by the decryptor per released round over
    ``length`` coordinates (fedray/crypto/lanes.py): per round, in total, and the rate
    against the 1e-4 per coordinate the field's scale is set for."""
    rounds = sorted(wrapped)
    total = sum(wrapped.values())
    return {"wrapped_per_round": [wrapped[r] for r in rounds],
            "wrapped_rounds": rounds, "wrapped_total": total,
            "wrap_rate": total / (len(rounds) * length) if rounds else None}
