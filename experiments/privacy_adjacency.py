"""Each privacy mode's neighbouring relation, the σ it needs, and its ε cross-checked.

    .venv/bin/python experiments/privacy_adjacency.py [--rounds 15] [--out results]

For ε ∈ {1, 4, 8} (δ = 1e-5, RDP, heart-disease sizes, ``rounds`` rounds): the σ fedray
calibrates now and the σ an add/remove calibration would give (what fedray did before
adjacency was explicit), fedray's reported ε for that σ, and Google's dp-accounting
PLD ε for the mode's relation and, where the relations differ, for add/remove.
Writes privacy_adjacency.csv; prints the table. Needs the test extra (dp-accounting).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import dp_accounting
import pandas as pd

from fedray.config import EncryptionConfig, ModelConfig, PrivacyConfig, SimulationConfig
from fedray.models import build_model
from fedray.privacy import RUN, Adjacency, calibrate_noise_multiplier, make_privacy_plan

SIZES = [199, 172, 30, 85]  # heart-disease train sizes (docs/data.md)
RELATION = {
    Adjacency.REPLACE_ONE: dp_accounting.NeighboringRelation.REPLACE_ONE,
    Adjacency.ADD_REMOVE: dp_accounting.NeighboringRelation.ADD_OR_REMOVE_ONE,
    Adjacency.ZERO_OUT: dp_accounting.NeighboringRelation.REPLACE_SPECIAL,
}
CASES = [  # mode, fraction per round, party whose ε is shown
    ("local", 1.0, 0), ("central", 1.0, RUN), ("central", 0.5, RUN),
    ("distributed", 1.0, RUN), ("distributed", 0.5, RUN), ("dpsgd", 1.0, 2),
]


def pld_epsilon(sigma: float, q: float, steps: int, adjacency: Adjacency, delta: float) -> float:
    event = dp_accounting.GaussianDpEvent(sigma)
    if q < 1:
        event = dp_accounting.PoissonSampledDpEvent(q, event)
    accountant = dp_accounting.pld.PLDAccountant(neighboring_relation=RELATION[adjacency],
                                                 value_discretization_interval=1e-4)
    accountant.compose(dp_accounting.SelfComposedDpEvent(event, steps))
    return float(accountant.get_epsilon(delta))


def row(mode: str, fraction: float, party: int, epsilon: float, rounds: int) -> dict:
    extra = {"encryption": EncryptionConfig(name="ckks")} if mode == "distributed" else {}
    config = SimulationConfig(privacy=PrivacyConfig(name=mode, epsilon=epsilon),
                              num_rounds=rounds, fraction_per_round=fraction, **extra)
    model = build_model(ModelConfig(), num_features=13, num_classes=2)
    plan = make_privacy_plan(config, train_sizes=SIZES, model=model)
    spec = plan.party(party)
    steps = rounds * spec.steps_per_round
    ledger = plan.ledger(party)
    ledger.record(steps)
    before = calibrate_noise_multiplier(epsilon=epsilon, delta=config.privacy.delta,
                                        sample_rate=spec.sample_rate, steps=steps,
                                        accountant="rdp")
    adjacency = plan.adjacency
    assert adjacency is not None
    delta = config.privacy.delta
    return {
        "mode": mode, "q": spec.sample_rate, "adjacency": adjacency.value,
        "target_epsilon": epsilon, "sigma_before": before, "sigma_now": spec.noise_multiplier,
        "fedray_epsilon": ledger.epsilon,
        "pld_epsilon": pld_epsilon(spec.noise_multiplier, spec.sample_rate, steps, adjacency,
                                   delta),
        "pld_epsilon_add_remove": pld_epsilon(spec.noise_multiplier, spec.sample_rate, steps,
                                              Adjacency.ADD_REMOVE, delta),
        "before_sigma_pld_epsilon": pld_epsilon(before, spec.sample_rate, steps, adjacency,
                                                delta),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--out", type=Path, default=Path("results"))
    args = parser.parse_args()
    rows = [row(mode, fraction, party, epsilon, args.rounds)
            for mode, fraction, party in CASES for epsilon in (1.0, 4.0, 8.0)]
    table = pd.DataFrame(rows)
    args.out.mkdir(parents=True, exist_ok=True)
    table.to_csv(args.out / "privacy_adjacency.csv", index=False)
    with pd.option_context("display.width", 200, "display.max_columns", 20):
        print(table.round(3).to_string(index=False))


if __name__ == "__main__":
    main()
