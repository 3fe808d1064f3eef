"""FLamby's Fed-Heart-Disease benchmark, every method, seeds 42-46, beside FLamby's
published per-seed tables.

    .venv/bin/python experiments/flamby_heart.py [--methods fedavg fedprox ...]
                                                 [--seeds 42 43 44 45 46] [--out results]

Runs the `+experiment=flamby_heart_<method>` preset once per seed (one Ray instance for
all) and prints, per method and seed, each hospital's test accuracy and their mean
(FLamby's reported metric) next to FLamby's published numbers for the same seed
(docs/results/flamby_heart_published.csv, from owkin/FLamby's
flamby/results/results_benchmark_fed_heart_disease/heart_seed{42..46}.csv). A method
whose mean is more than 1.5 points off is flagged: a bug until docs/flamby.md explains it.
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

HOSPITALS = ("Cleveland", "Hungary", "Switzerland", "VA Long Beach")  # client_test_0..3
PUBLISHED = Path(__file__).resolve().parents[1] / "docs/results/flamby_heart_published.csv"
FLAMBY_NAMES = {  # fedray preset -> FLamby's row name
    "fedavg": "FedAvg100", "fedprox": "FedProx100", "scaffold": "Scaffold100",
    "fedadam": "FedAdam100", "fedyogi": "FedYogi100", "fedadagrad": "FedAdagrad100",
    "pooled": "Pooled Training", "local": "Local {i}",  # Local i: hospital i's own model
}
TOLERANCE = 0.015


def published() -> pd.DataFrame:
    table = pd.read_csv(PUBLISHED, comment="#")
    table = table[table["test"].str.startswith("client_test_")]
    table["hospital"] = table["test"].map(lambda t: HOSPITALS[int(t.rsplit("_", 1)[1])])
    return table


def run(method: str, seed: int, flamby: pd.DataFrame) -> list[dict]:
    """One row per (model, test hospital): the federated model, the pooled one, or
    under ``local`` each hospital's own model ("Local i"), on all four test splits."""
    config = dataclasses.replace(compose([f"+experiment=flamby_heart_{method}", f"seed={seed}"]),
                                 progress=False)
    summary = simulate(config).summary
    if method == "local":
        models = {FLAMBY_NAMES[method].format(i=i): summary["local_cross_accuracy"][h]
                  for i, h in enumerate(HOSPITALS)}
    else:
        models = {FLAMBY_NAMES[method]: summary["per_client_accuracy"]}
    rows = []
    for name, accuracy in models.items():
        theirs = flamby[(flamby["method"] == name) & (flamby["seed"] == seed)]
        theirs = dict(zip(theirs["hospital"], theirs["accuracy"]))
        rows += [{"method": name, "seed": seed, "hospital": h, "fedray": accuracy[h],
                  "flamby": theirs.get(h, float("nan"))} for h in HOSPITALS]
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--methods", nargs="+", default=list(FLAMBY_NAMES))
    parser.add_argument("--seeds", type=int, nargs="+", default=[42, 43, 44, 45, 46])
    parser.add_argument("--out", type=Path, default=Path("results"))
    args = parser.parse_args()
    flamby = published()
    ray.init(address="local", include_dashboard=False, logging_level=logging.WARNING)
    rows = []
    try:
        for method in args.methods:
            for seed in args.seeds:
                rows.extend(run(method, seed, flamby))
                print(f"{method} seed {seed} done", flush=True)
    finally:
        ray.shutdown()
    table = pd.DataFrame(rows)
    args.out.mkdir(parents=True, exist_ok=True)
    table.to_csv(args.out / "flamby_heart.csv", index=False)
    per_seed = table.groupby(["method", "seed"])[["fedray", "flamby"]].mean().reset_index()
    order = list(dict.fromkeys(table["method"]))
    summary = per_seed.groupby("method").agg(
        fedray=("fedray", "mean"), fedray_sd=("fedray", "std"),
        flamby=("flamby", "mean"), flamby_sd=("flamby", "std")).reindex(order)
    summary["difference"] = summary["fedray"] - summary["flamby"]
    exact = (table["fedray"] - table["flamby"]).abs() < 1e-9
    summary["identical_cells"] = exact.groupby(table["method"]).sum().reindex(order)
    summary["flag"] = summary["difference"].abs().map(lambda d: "OFF" if d > TOLERANCE else "")
    with pd.option_context("display.float_format", "{:.4f}".format, "display.width", 140):
        print(per_seed.to_string(index=False))
        print()
        print(summary.to_string())
    summary.to_csv(args.out / "flamby_heart_summary.csv")
    print(f"written: {args.out / 'flamby_heart.csv'}, {args.out / 'flamby_heart_summary.csv'}")


if __name__ == "__main__":
    main()
