"""Privacy–utility on the four heart-disease hospitals: accuracy against ε.

    .venv/bin/python experiments/privacy_utility.py [--seeds 0 1 2] [--out results]

Sweeps ε ∈ {0.5, 1, 2, 4, 8, ∞} × privacy ∈ {local, central, distributed, dpsgd} ×
seeds, with the default heart-disease run otherwise (20 rounds, FedAvg, logistic
regression; ε = ∞ is privacy=none; distributed runs under CKKS with min_clients=4).
Each run is the CLI's config for the same overrides,
all in one Ray instance. Writes privacy_utility.csv (one row per run),
privacy_utility_summary.csv (mean ± sd per mode and ε) and privacy_utility.png.
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
from pathlib import Path

import pandas as pd
import ray

from fedray import simulate
from fedray.cli import compose
from fedray.outputs.collect import summary_row

EPSILONS = (0.5, 1.0, 2.0, 4.0, 8.0)
MODES = ("local", "central", "distributed", "dpsgd")
EXTRA = {"distributed": ["encryption=ckks", "min_clients=4"]}  # all four shares per sum


def run(overrides: list[str]) -> dict:
    config = dataclasses.replace(compose(overrides), progress=False)
    return summary_row(simulate(config).summary)


def plot(summary: pd.DataFrame, baseline: float, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.5, 4.2))
    for mode, rows in summary.groupby("mode"):
        ax.errorbar(rows["target_epsilon"], rows["mean"], yerr=rows["sd"], marker="o",
                    capsize=3, label=mode)
    ax.axhline(baseline, color="black", ls="--", lw=1, label="no privacy (ε = ∞)")
    ax.set_xscale("log", base=2)
    ax.set_xlabel("ε (δ = 1e-5), whole run")
    ax.set_ylabel("mean hospital test accuracy")
    ax.set_title("Heart disease, 4 hospitals, FedAvg: privacy vs utility")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--out", type=Path, default=Path("results"))
    args = parser.parse_args()
    grid = [(["privacy=none"], "none", float("inf"))]
    grid += [([f"privacy={m}", f"privacy.epsilon={e}", *EXTRA.get(m, [])], m, e)
             for m in MODES for e in EPSILONS]
    rows = []
    ray.init(address="local", include_dashboard=False, logging_level=logging.WARNING)
    try:
        for overrides, mode, epsilon in grid:
            for seed in args.seeds:
                row = run([*overrides, f"seed={seed}"])
                row.update(mode=mode, target_epsilon=epsilon)
                rows.append(row)
                print(f"{mode:>8} ε={epsilon:<4} seed={seed}: mean client acc "
                      f"{row['mean_client_accuracy']:.3f}, ε spent {row['epsilon_spent']}",
                      flush=True)
    finally:
        ray.shutdown()
    table = pd.DataFrame(rows)
    args.out.mkdir(parents=True, exist_ok=True)
    table.to_csv(args.out / "privacy_utility.csv", index=False)
    summary = (table.groupby(["mode", "target_epsilon"])
               .agg(mean=("mean_client_accuracy", "mean"), sd=("mean_client_accuracy", "std"),
                    pooled=("accuracy", "mean"), epsilon_spent=("epsilon_spent", "max"),
                    sigma=("noise_multiplier", "mean"))
               .reset_index())
    summary.to_csv(args.out / "privacy_utility_summary.csv", index=False)
    baseline = float(summary.loc[summary["mode"] == "none", "mean"].iloc[0])
    plot(summary[summary["mode"] != "none"], baseline, args.out / "privacy_utility.png")
    with pd.option_context("display.float_format", "{:.3f}".format, "display.width", 120):
        print(summary.to_string(index=False))
    print(f"written: {args.out}/privacy_utility.csv, privacy_utility_summary.csv, "
          "privacy_utility.png")


if __name__ == "__main__":
    main()
