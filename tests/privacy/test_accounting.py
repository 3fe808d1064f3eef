"""ε as a reviewer computes it: fedray's numbers against Opacus's accountants used
directly, and Opacus's PRV against Google's dp-accounting PLD accountant."""

import dp_accounting
import pytest
from opacus.accountants import PRVAccountant, RDPAccountant

from fedray.privacy import PrivacyLedger, calibrate_noise_multiplier, epsilon_spent


def _opacus_step_by_step(accountant, sigma, q, steps, delta):
    for _ in range(steps):
        accountant.step(noise_multiplier=sigma, sample_rate=q)
    return accountant.get_epsilon(delta=delta)


@pytest.mark.parametrize("sigma, q, steps", [(1.1, 1.0, 15), (0.8, 0.05, 300), (3.0, 0.5, 40)])
def test_rdp_epsilon_equals_opacus_stepping(sigma, q, steps):
    ours = epsilon_spent(((sigma, q, steps),), delta=1e-5, accountant="rdp")
    theirs = _opacus_step_by_step(RDPAccountant(), sigma, q, steps, 1e-5)
    assert ours == pytest.approx(theirs, rel=1e-12)


@pytest.mark.parametrize("sigma, q, steps", [(1.1, 1.0, 15), (0.9, 0.1, 100)])
def test_prv_epsilon_equals_opacus_and_agrees_with_pld(sigma, q, steps):
    delta = 1e-5
    ours = epsilon_spent(((sigma, q, steps),), delta=delta, accountant="prv")
    theirs = _opacus_step_by_step(PRVAccountant(), sigma, q, steps, delta)
    assert ours == pytest.approx(theirs, rel=1e-9)
    gaussian = dp_accounting.GaussianDpEvent(sigma)
    event = gaussian if q == 1.0 else dp_accounting.PoissonSampledDpEvent(q, gaussian)
    pld = dp_accounting.pld.PLDAccountant(value_discretization_interval=1e-4)
    pld.compose(dp_accounting.SelfComposedDpEvent(event, steps))
    assert ours == pytest.approx(pld.get_epsilon(delta), rel=0.01)


@pytest.mark.parametrize("epsilon", [1.0, 4.0, 8.0])
@pytest.mark.parametrize("accountant", ["rdp", "prv"])
def test_calibrated_sigma_meets_the_budget_tightly(epsilon, accountant):
    sigma = calibrate_noise_multiplier(epsilon=epsilon, delta=1e-5, sample_rate=1.0, steps=15,
                                       accountant=accountant)
    spent = epsilon_spent(((sigma, 1.0, 15),), delta=1e-5, accountant=accountant)
    assert spent <= epsilon
    assert spent > epsilon - 0.05  # not wastefully over-noised


def test_ledger_refuses_steps_beyond_the_budget():
    ledger = PrivacyLedger(noise_multiplier=1.0, sample_rate=1.0, delta=1e-5, accountant="rdp",
                           budget=epsilon_spent(((1.0, 1.0, 3),), delta=1e-5, accountant="rdp"))
    assert ledger.epsilon == 0.0
    for _ in range(3):
        assert ledger.can_afford(1)
        ledger.record(1)
    assert not ledger.can_afford(1)
    assert ledger.epsilon == pytest.approx(ledger.budget)


def test_ledger_without_budget_only_reports():
    ledger = PrivacyLedger(noise_multiplier=2.0, sample_rate=0.1, delta=1e-5, accountant="rdp")
    ledger.record(1000)
    assert ledger.can_afford(10**6)
    assert ledger.epsilon > 0
