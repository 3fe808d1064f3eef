"""The accountant gaps docs/privacy.md states, recomputed: fedray's ε under RDP and PRV
against Google's dp-accounting PLD ε, for the σ fedray plans for a target ε (RDP
calibration), 20 rounds (fedray's default), δ = 1e-5, heart-disease sizes.

The expected percentages are hard-coded from the docs paragraph that states them ("At
fedray's default 20 rounds, δ = 1e-5 …", written from experiments/accountant_gaps.py,
docs/results/accountant_gaps.csv): if an accountant, the calibration or the planner's
rule changes, these fail and the paragraph must be measured again."""

from dataclasses import replace

import dp_accounting
import pytest

from fedray.config import ModelConfig, PrivacyConfig, SimulationConfig
from fedray.models import build_model
from fedray.privacy import RUN, Adjacency, make_privacy_plan

SIZES = [199, 172, 30, 85]  # heart-disease train sizes
# DP-SGD plans each hospital from its own size alone: plan only the 30-record one (the
# experiment plans all four; hospital 2's σ, q and steps are the same, in a third the time)
DPSGD_SIZES = [30]
DELTA = 1e-5
ROUNDS = 20
TOLERANCE = 0.3  # percentage points
RELATION = {
    Adjacency.REPLACE_ONE: dp_accounting.NeighboringRelation.REPLACE_ONE,
    Adjacency.ADD_REMOVE: dp_accounting.NeighboringRelation.ADD_OR_REMOVE_ONE,
}


pytestmark = pytest.mark.filterwarnings("ignore:divide by zero:RuntimeWarning")  # Opacus PRV


def _gaps(mode, party, epsilon):
    """(PRV vs PLD, RDP vs PLD) in % of PLD's ε, σ planned by fedray for ``epsilon``."""
    config = SimulationConfig(privacy=PrivacyConfig(name=mode, epsilon=epsilon, delta=DELTA),
                              num_rounds=ROUNDS)
    model = build_model(ModelConfig(), num_features=13, num_classes=2)
    sizes = DPSGD_SIZES if mode == "dpsgd" else SIZES
    plan = make_privacy_plan(config, train_sizes=sizes, model=model)
    spec = plan.party(party)
    steps = ROUNDS * spec.steps_per_round
    rdp = plan.ledger(party)
    rdp.record(steps)
    prv = replace(rdp, accountant="prv")
    event = dp_accounting.GaussianDpEvent(spec.noise_multiplier)
    if spec.sample_rate < 1:
        event = dp_accounting.PoissonSampledDpEvent(spec.sample_rate, event)
    pld = dp_accounting.pld.PLDAccountant(neighboring_relation=RELATION[plan.adjacency],
                                          value_discretization_interval=1e-4)
    pld.compose(dp_accounting.SelfComposedDpEvent(event, steps))
    reference = pld.get_epsilon(DELTA)
    return (100 * (prv.epsilon - reference) / reference,
            100 * (rdp.epsilon - reference) / reference)


# docs/privacy.md states these (PRV vs PLD, central q = 1): +2.21% at ε = 0.5,
# +1.10% at ε = 1, +0.14% at ε = 8 — Opacus's PRV upper bound, ~0.01 above PLD's ε
@pytest.mark.parametrize("epsilon, documented", [(0.5, 2.21), (1.0, 1.10), (8.0, 0.14)])
def test_prv_gap_to_pld_is_the_documented_one(epsilon, documented):
    prv_gap, _ = _gaps("central", RUN, epsilon)
    assert prv_gap == pytest.approx(documented, abs=TOLERANCE)


# docs/privacy.md states these (RDP vs PLD): central q = 1 9.89% (ε = 0.5) and 7.56%
# (ε = 8); DP-SGD at the 30-record hospital (q = 16/30, 40 steps) 9.49% (ε = 1) (its 8.59%
# at ε = 8 is left to the experiment: 3.4 s of PLD over 40 subsampled steps)
@pytest.mark.parametrize("mode, party, epsilon, documented", [
    ("central", RUN, 0.5, 9.89),
    ("central", RUN, 8.0, 7.56),
    ("dpsgd", 0, 1.0, 9.49),  # DPSGD_SIZES[0]: the 30-record hospital
])
def test_rdp_gap_to_pld_is_the_documented_one(mode, party, epsilon, documented):
    _, rdp_gap = _gaps(mode, party, epsilon)
    assert rdp_gap == pytest.approx(documented, abs=TOLERANCE)


def test_local_replace_one_gaps_are_centrals_at_q_1():
    # docs/privacy.md: local (replace-one, σ doubled) has central q = 1's gaps exactly
    local = _gaps("local", 0, 4.0)
    central = _gaps("central", RUN, 4.0)
    assert local == pytest.approx(central, abs=0.01)
    assert local[1] == pytest.approx(8.17, abs=TOLERANCE)
