"""Differential privacy: mechanisms (pure), accounting (Opacus), plans, DP-SGD."""

from fedray.privacy.accounting import PrivacyLedger, calibrate_noise_multiplier, epsilon_spent
from fedray.privacy.adjacency import Adjacency
from fedray.privacy.mechanisms import add_gaussian_noise, clip_to_norm
from fedray.privacy.modes import MODES, RUN, PrivacyMode
from fedray.privacy.plan import PartyPlan, PrivacyPlan, make_privacy_plan
from fedray.privacy.randomness import Randomness, make_randomness

__all__ = [
    "MODES", "RUN", "Adjacency", "PartyPlan", "PrivacyLedger", "PrivacyMode", "PrivacyPlan",
    "Randomness",
    "add_gaussian_noise", "calibrate_noise_multiplier", "clip_to_norm", "epsilon_spent",
    "make_privacy_plan", "make_randomness",
]
