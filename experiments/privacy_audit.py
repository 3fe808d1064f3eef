"""What an attacker recovers, beside the ε the accountant reports, per privacy mode.

    .venv/bin/python experiments/privacy_audit.py [--epsilon 4] [--out docs/results/privacy_audit]

Every run is a real simulation with ``audit=[inversion,membership,canary]`` (fedray/audit/):
the aggregator inverts the target hospital's first update as it received it, a model
user attacks the released model (membership: loss and calibrated scores; 200 canary
records, one-run ε lower bound at 95% confidence). Three settings:

- heart disease (4 hospitals, logistic regression, 20 rounds): the default run;
- synthetic, overfitting (2 hospitals of 100 training records, MLP 256, 30 local
  epochs, 3 rounds): a model that memorises, so attacks have something to find;
- synthetic, single-record rounds (MLP 32, batch 1, one step per round): the update the
  analytic and the optimisation-based (DLG) inversions recover.

Modes: none, local, central, dpsgd (ε as given), with and without CKKS encryption
(central with CKKS is refused: distributed is its encrypted form, run instead).
Writes privacy_audit.csv and privacy_audit.png; prints the table.
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import pandas as pd
import ray

from fedray import DatasetConfig, ModelConfig, PartitionConfig, SimulationConfig, simulate
from fedray.config import AuditConfig, EncryptionConfig, PrivacyConfig

AUDIT = AuditConfig(inversion=True, membership=True, canary=True, canaries=200)
SETTINGS = {
    "heart disease": SimulationConfig(num_rounds=20, audit=AUDIT, progress=False),
    "synthetic, overfitting": SimulationConfig(
        dataset=DatasetConfig(name="synthetic", num_records=400, test_fraction=0.5),
        partition=PartitionConfig(name="iid"), model=ModelConfig(name="mlp", hidden=256),
        num_clients=2, num_rounds=3, local_epochs=30, lr=0.1, audit=AUDIT, progress=False),
    "synthetic, single-record rounds": SimulationConfig(
        dataset=DatasetConfig(name="synthetic", num_records=400),
        partition=PartitionConfig(name="iid"), model=ModelConfig(name="mlp", hidden=32),
        num_clients=4, num_rounds=5, local_steps=1, batch_size=1, audit=AUDIT,
        progress=False),
}
MODES = [("none", False), ("none", True), ("local", False), ("local", True),
         ("central", False), ("distributed", True), ("dpsgd", False), ("dpsgd", True)]


def audit_row(setting: str, config: SimulationConfig) -> dict:
    s = simulate(config).summary
    audit = s["audit"]
    inversion, canary = audit["inversion"], audit["canary"]
    return {
        "setting": setting, "mode": config.privacy.name,
        "encryption": config.encryption.name, "accuracy": s["accuracy"],
        "epsilon_accountant": canary["epsilon_accountant"],
        "epsilon_covering": canary["epsilon_covering"],
        "epsilon_lower_bound": canary["epsilon_lower_bound"],
        "canary_correct": f"{canary['correct']}/{canary['guesses']}",
        "membership_auc_loss": audit["membership"]["loss"]["auc"],
        "membership_auc_calibrated": audit["membership"]["calibrated"]["auc"],
        "membership_advantage": audit["membership"]["calibrated"]["advantage"],
        "inversion_view": inversion["view"],
        "inversion_relative_error": inversion.get("best_relative_error"),
        "inversion_cosine": inversion.get("best_cosine"),
        "records_recovered": inversion.get("records_recovered"),
        "dlg_relative_error": inversion.get("dlg", {}).get("best_relative_error"),
        "dlg_cosine": inversion.get("dlg", {}).get("best_cosine"),
    }


def plot(table: pd.DataFrame, path: Path) -> None:
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.2))
    labels = table["mode"] + table["encryption"].map({"ckks": "+ckks", "none": ""})
    for ax, (setting, rows) in zip(axes, table[table["setting"] != "synthetic, single-record "
                                              "rounds"].groupby("setting", sort=False)):
        x = range(len(rows))
        ax.bar([i - 0.2 for i in x], rows["epsilon_accountant"].fillna(0), width=0.4,
               label="accountant's ε (none: no claim)")
        ax.bar([i + 0.2 for i in x], rows["epsilon_lower_bound"], width=0.4,
               label="empirical ε lower bound (95%)")
        for i, auc in zip(x, rows["membership_auc_calibrated"]):
            ax.annotate(f"AUC {auc:.2f}", (i, 0.05), ha="center", rotation=90, fontsize=8)
        ax.set_xticks(list(x), labels[rows.index], rotation=30)
        ax.set_title(setting)
        ax.set_ylabel("ε")
    axes[0].legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--epsilon", type=float, default=4.0)
    parser.add_argument("--out", type=Path, default=Path("docs/results/privacy_audit"))
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    rows = []
    ray.init(address="local", include_dashboard=False, logging_level=logging.WARNING)
    try:
        for setting, base in SETTINGS.items():
            for mode, encrypted in MODES:
                privacy = (PrivacyConfig() if mode == "none"
                           else PrivacyConfig(name=mode, epsilon=args.epsilon))
                encryption = EncryptionConfig(name="ckks" if encrypted else "none")
                config = dataclasses.replace(base, privacy=privacy, encryption=encryption)
                rows.append(audit_row(setting, config))
                print(pd.DataFrame(rows[-1:]).to_string(index=False, header=len(rows) == 1),
                      flush=True)
    finally:
        ray.shutdown()
    table = pd.DataFrame(rows)
    table.to_csv(args.out / "privacy_audit.csv", index=False)
    plot(table, args.out / "privacy_audit.png")
    with pd.option_context("display.width", 200, "display.max_columns", 20):
        print(table.round(3).to_string(index=False))


if __name__ == "__main__":
    main()
