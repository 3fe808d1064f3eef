"""Differential privacy: mechanisms (pure), accounting (Opacus), plans, DP-SGD."""

from fedray.privacy.accounting import (
    PrivacyLedger, calibrate_noise_multiplier, epsilon_spent,
)
from fedray.privacy.mechanisms import add_gaussian_noise, clip_to_norm
from fedray.privacy.plan import RUN, PartyPlan, PrivacyPlan, make_privacy_plan

__all__ = [
    "RUN", "PartyPlan", "PrivacyLedger", "PrivacyPlan", "add_gaussian_noise",
    "calibrate_noise_multiplier", "clip_to_norm", "epsilon_spent", "make_privacy_plan",
]
