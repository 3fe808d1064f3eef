"""How far fedray's ε (RDP, PRV) sits from Google's dp-accounting PLD ε, same σ.

    .venv/bin/python experiments/accountant_gaps.py [--rounds 20] [--out docs/results]

For target ε ∈ {0.5, 1, 2, 4, 8} at δ = 1e-5 and ``rounds`` rounds (fedray's default,
20), σ is what fedray plans for that ε with its default RDP calibration
(``make_privacy_plan``, heart-disease sizes). σ, q and steps are then fixed and only the
accountant changes: fedray's ledger under ``accountant=rdp`` and ``accountant=prv``
(Opacus), and dp-accounting's PLD accountant for the mode's stated relation
(discretisation 1e-4, as tests/privacy/test_adjacency.py uses). Gaps are signed and
relative to PLD: 100·(ε_fedray − ε_PLD)/ε_PLD, in %.

Cases: central q = 1 and q = 0.5 (add/remove one hospital), local q = 1 (replace-one),
and DP-SGD at the 30-record hospital (batch 16, so q = 16/30 and ceil(30/16) = 2 steps
per round, the planner's rule; add/remove one record). distributed is left out: for the
Poisson-subsampled Gaussian its zero-out relation (REPLACE_SPECIAL) gives central's PLD
and σ (docs/privacy.md, privacy_adjacency.csv), so its rows would repeat central's.
Writes accountant_gaps.csv; prints a markdown table. Needs the test extra (dp-accounting).
"""

from __future__ import annotations

import argparse
import warnings
from dataclasses import replace
from pathlib import Path

import dp_accounting
import pandas as pd

from fedray.config import ModelConfig, PrivacyConfig, SimulationConfig
from fedray.models import build_model
from fedray.privacy import RUN, Adjacency, make_privacy_plan

SIZES = [199, 172, 30, 85]  # heart-disease train sizes (docs/data.md)
EPSILONS = (0.5, 1.0, 2.0, 4.0, 8.0)
DELTA = 1e-5
RELATION = {
    Adjacency.REPLACE_ONE: dp_accounting.NeighboringRelation.REPLACE_ONE,
    Adjacency.ADD_REMOVE: dp_accounting.NeighboringRelation.ADD_OR_REMOVE_ONE,
    Adjacency.ZERO_OUT: dp_accounting.NeighboringRelation.REPLACE_SPECIAL,
}
CASES = {  # name: (mode, fraction per round, party whose ε is shown)
    "central q=1": ("central", 1.0, RUN),
    "central q=0.5": ("central", 0.5, RUN),
    "local q=1 (replace-one)": ("local", 1.0, 0),
    "dpsgd 30 records, batch 16": ("dpsgd", 1.0, 2),
}


def pld_epsilon(sigma: float, q: float, steps: int, adjacency: Adjacency, delta: float) -> float:
    """dp-accounting's PLD ε for ``steps`` Poisson(q)-subsampled Gaussians of multiplier σ
    under ``adjacency`` (σ as fedray configures it: noise std / C)."""
    # dp-accounting's REPLACE_ONE Gaussian already takes the sensitivity as 2 (a value
    # replaced by another within the clip), so it is given fedray's σ as is
    event = dp_accounting.GaussianDpEvent(sigma)
    if q < 1:
        event = dp_accounting.PoissonSampledDpEvent(q, event)
    accountant = dp_accounting.pld.PLDAccountant(neighboring_relation=RELATION[adjacency],
                                                 value_discretization_interval=1e-4)
    accountant.compose(dp_accounting.SelfComposedDpEvent(event, steps))
    return float(accountant.get_epsilon(delta))


def gaps(case: str, epsilon: float, rounds: int = 20) -> dict:
    """One row: σ fedray plans for ``epsilon`` (RDP), and ε under RDP, PRV and PLD."""
    mode, fraction, party = CASES[case]
    config = SimulationConfig(privacy=PrivacyConfig(name=mode, epsilon=epsilon, delta=DELTA),
                              num_rounds=rounds, fraction_per_round=fraction)
    model = build_model(ModelConfig(), num_features=13, num_classes=2)
    plan = make_privacy_plan(config, train_sizes=SIZES, model=model)
    spec = plan.party(party)
    steps = rounds * spec.steps_per_round
    rdp = plan.ledger(party)
    rdp.record(steps)
    prv = replace(rdp, accountant="prv")
    assert plan.adjacency is not None
    pld = pld_epsilon(spec.noise_multiplier, spec.sample_rate, steps, plan.adjacency, DELTA)
    return {
        "case": case, "relation": plan.adjacency.value, "q": spec.sample_rate, "steps": steps,
        "target_epsilon": epsilon, "sigma": spec.noise_multiplier,
        "rdp_epsilon": rdp.epsilon, "prv_epsilon": prv.epsilon, "pld_epsilon": pld,
        "prv_vs_pld_pct": 100 * (prv.epsilon - pld) / pld,
        "rdp_vs_pld_pct": 100 * (rdp.epsilon - pld) / pld,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--out", type=Path, default=Path("docs/results"))
    args = parser.parse_args()
    # Opacus's PRV takes log(0) at q < 1 on its way (harmless; numpy warns)
    warnings.filterwarnings("ignore", "divide by zero", RuntimeWarning)
    table = pd.DataFrame([gaps(case, epsilon, args.rounds)
                          for case in CASES for epsilon in EPSILONS])
    args.out.mkdir(parents=True, exist_ok=True)
    table.to_csv(args.out / "accountant_gaps.csv", index=False, float_format="%.6g")
    print(f"{args.rounds} rounds, δ = {DELTA:g}, σ = fedray's RDP calibration for the "
          "target ε; gaps = 100·(ε − ε_PLD)/ε_PLD\n")
    print("| case | relation | q | steps | target ε | σ | RDP ε | PRV ε | PLD ε "
          "| PRV vs PLD | RDP vs PLD |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for r in table.itertuples():
        print(f"| {r.case} | {r.relation} | {r.q:.3g} | {r.steps} | {r.target_epsilon:g} "
              f"| {r.sigma:.3f} | {r.rdp_epsilon:.4f} | {r.prv_epsilon:.4f} "
              f"| {r.pld_epsilon:.4f} | {r.prv_vs_pld_pct:+.2f}% | {r.rdp_vs_pld_pct:+.2f}% |")


if __name__ == "__main__":
    main()
