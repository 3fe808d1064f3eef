"""Distributed DP on integers (fedray/privacy/skellam.py): what the Skellam mechanism
costs against the Gaussian it replaces, in ε, accuracy, bytes and wrap-around.

    .venv/bin/python experiments/distributed_skellam.py [--seeds 3] [--only epsilon,...]
        [--out docs/results/distributed_skellam]

Four tables, each written to <out>_<name>.csv and printed:

- ``epsilon``: the ε cross-check. For each target ε ∈ {1, 4, 8}, bits and sampling: the
  σ the Skellam mechanism needs, the σ dp-accounting's Gaussian RDP needs (the
  continuous mechanism it tends to), and the ε dp-accounting gives the Gaussian at the
  Skellam σ (never above the Skellam's own).
- ``bits``: B ∈ {8, 12, 16, 20} → the σ, lanes per CKKS slot and bytes per parameter
  measured on a real encrypted 100,000-value update (20 hospitals), and the accuracy of
  the default heart-disease MLP run (ε = 4; seed 0).
- ``accuracy``: distributed (Skellam, 16 bits, CKKS) against central DP at the same ε ∈
  {1, 4, 8}, on the default heart-disease run (4 hospitals, logistic regression) and on
  20 synthetic hospitals (MLP 13-32-2), over ``--seeds`` seeds: mean ± std of the
  pooled test accuracy.
- ``wrap``: the share of the released sum's coordinates that wrap around the field,
  measured on the mechanism itself (20 hospitals' clipped updates, aligned — the worst
  case the scale is set for — and random), against the 1e-4 the scale is set for.
"""

from __future__ import annotations

import argparse
import logging
import math
import time
from pathlib import Path

import dp_accounting
import numpy as np
import pandas as pd

from fedray.privacy.skellam import (
    ORDERS,
    SkellamPlanError,
    calibrate_skellam,
    centre,
    conditional_round,
    rotate,
    skellam_noise,
)

DELTA = 1e-5
ROUNDS = 20


def gaussian_epsilon(sigma: float, q: float, rounds: int) -> float:
    accountant = dp_accounting.rdp.RdpAccountant(orders=[float(a) for a in ORDERS])
    event = dp_accounting.GaussianDpEvent(sigma)
    if q < 1:
        event = dp_accounting.PoissonSampledDpEvent(q, event)
    accountant.compose(event, rounds)
    return accountant.get_epsilon(DELTA)


def gaussian_sigma(epsilon: float, q: float, rounds: int) -> float:
    low, high = 0.1, 100.0
    for _ in range(60):
        middle = (low + high) / 2
        low, high = (middle, high) if gaussian_epsilon(middle, q, rounds) > epsilon \
            else (low, middle)
    return high


def skellam(epsilon: float, *, bits: int, q: float = 1.0, summands: int = 20,
            size: int = 514):
    weight = 1.0 / (q * summands)
    plan = calibrate_skellam(epsilon=epsilon, delta=DELTA, rounds=ROUNDS, sample_rate=q,
                             bits=bits, summands=summands, min_shares=summands, colluders=0,
                             clip=weight, size=size, seed=0)
    return plan, math.sqrt(plan.variance) / (plan.scale * weight)


def epsilon_table() -> pd.DataFrame:
    rows = []
    for epsilon in (1.0, 4.0, 8.0):
        for bits in (12, 16, 20):
            for q in (1.0, 0.5):
                try:
                    plan, sigma = skellam(epsilon, bits=bits, q=q)
                except SkellamPlanError as err:
                    rows.append({"epsilon_target": epsilon, "bits": bits, "sample_rate": q,
                                 "refused": str(err)})
                    continue
                rows.append({
                    "epsilon_target": epsilon, "bits": bits, "sample_rate": q,
                    "skellam_sigma": sigma,
                    "skellam_epsilon": plan.epsilon(rounds=ROUNDS, sample_rate=q, delta=DELTA),
                    "gaussian_sigma_dp_accounting": gaussian_sigma(epsilon, q, ROUNDS),
                    "gaussian_epsilon_at_skellam_sigma": gaussian_epsilon(sigma, q, ROUNDS),
                })
    return pd.DataFrame(rows)


def bytes_per_parameter(bits: int, *, size: int = 100_000, hospitals: int = 20) -> dict:
    from fedray.crypto.ckks import PRESETS, new_key_set
    from fedray.crypto.lanes import IntegerLanes, IntegerLanesCodec

    keys = new_key_set(PRESETS["n8192"])
    lanes = IntegerLanes(bits, hospitals)
    codec = IntegerLanesCodec(keys.secret_context, keys.fingerprint, lanes)
    integers = np.random.default_rng(0).integers(0, 1 << bits, size=size)
    start = time.perf_counter()
    payload = codec.encode(integers.astype(np.float64))
    return {"lanes_per_slot": lanes.lanes, "lane_bits": lanes.lane_width,
            "bytes_per_parameter_100k": codec.nbytes(payload) / size,
            "encode_seconds_100k": time.perf_counter() - start}


def run_accuracy(dataset: str, mode: str, epsilon: float, seed: int, bits: int = 16) -> float:
    from fedray import DatasetConfig, ModelConfig, PartitionConfig, SimulationConfig, simulate
    from fedray.config import EncryptionConfig, PrivacyConfig

    extra: dict = {}
    if dataset == "heart_disease":
        extra = dict(model=ModelConfig(name="logreg"), num_clients=4)
    else:
        extra = dict(dataset=DatasetConfig(name="synthetic", num_records=2000),
                     partition=PartitionConfig(name="iid"), model=ModelConfig(name="mlp"),
                     num_clients=20)
    if mode == "distributed":
        clients = 4 if dataset == "heart_disease" else 20
        extra.update(encryption=EncryptionConfig(name="ckks", preset="n4096"),
                     min_clients=clients)
    config = SimulationConfig(privacy=PrivacyConfig(name=mode, epsilon=epsilon, bits=bits),
                              seed=seed, progress=False, **extra)
    return float(simulate(config).summary["accuracy"])


def bits_table() -> pd.DataFrame:
    rows = []
    for bits in (8, 12, 16, 20):
        row: dict = {"bits": bits, **bytes_per_parameter(bits)}
        try:
            _, row["sigma_epsilon4_20_hospitals_mlp"] = skellam(4.0, bits=bits)
        except SkellamPlanError as err:
            row["refused"] = str(err)
        try:
            row["heart_accuracy_epsilon4_seed0"] = run_accuracy("heart_disease", "distributed",
                                                                4.0, 0, bits)
        except Exception as err:  # a refusal is a result here
            row["heart_refused"] = str(err).splitlines()[0]
        rows.append(row)
    return pd.DataFrame(rows)


def accuracy_table(seeds: int) -> pd.DataFrame:
    rows = []
    for dataset in ("heart_disease", "synthetic_20"):
        for epsilon in (1.0, 4.0, 8.0):
            scores = {mode: [run_accuracy(dataset, mode, epsilon, seed) for seed in range(seeds)]
                      for mode in ("central", "distributed")}
            central, distributed = np.array(scores["central"]), np.array(scores["distributed"])
            rows.append({"dataset": dataset, "epsilon": epsilon, "seeds": seeds,
                         "central_mean": central.mean(), "central_std": central.std(ddof=1),
                         "distributed_mean": distributed.mean(),
                         "distributed_std": distributed.std(ddof=1),
                         "gap_points": 100 * (distributed.mean() - central.mean())})
    return pd.DataFrame(rows)


def wrap_table(trials: int = 100) -> pd.DataFrame:
    rows = []
    rng = np.random.default_rng(0)
    hospitals, size = 20, 514
    for bits in (12, 16, 20):
        plan, _ = skellam(4.0, bits=bits, summands=hospitals, size=size)
        weight = 1.0 / hospitals
        for layout in ("aligned", "random"):
            wrapped = total = 0
            for _ in range(trials):
                if layout == "aligned":  # every hospital the same update: the worst case
                    one = rng.normal(size=size)
                    updates = [weight * one / np.linalg.norm(one)] * hospitals
                else:
                    updates = [weight * u / np.linalg.norm(u)
                               for u in rng.normal(size=(hospitals, size))]
                exact = np.zeros(plan.length, dtype=np.int64)
                for u in updates:
                    rounded = conditional_round(rotate(u, plan.seed) * plan.scale, plan.l2, rng)
                    exact += rounded + skellam_noise(plan.length, plan.share_variance, rng)
                wrapped += int(np.count_nonzero(centre(exact, bits) != exact))
                total += plan.length
            rows.append({"bits": bits, "updates": layout, "coordinates": total,
                         "wrapped": wrapped, "wrap_rate": wrapped / total,
                         "planned_rate": 1e-4})
    return pd.DataFrame(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--only", default="epsilon,bits,accuracy,wrap")
    parser.add_argument("--out", type=Path, default=Path("docs/results/distributed_skellam"))
    args = parser.parse_args()
    wanted = args.only.split(",")
    if {"bits", "accuracy"} & set(wanted):
        import ray

        ray.init(address="local", include_dashboard=False, logging_level=logging.WARNING)
    tables = {"epsilon": epsilon_table, "bits": bits_table,
              "accuracy": lambda: accuracy_table(args.seeds), "wrap": wrap_table}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    for name in wanted:
        table = tables[name]()
        table.to_csv(f"{args.out}_{name}.csv", index=False)
        print(f"\n{name}\n" + table.to_string(index=False, float_format=lambda v: f"{v:.4g}"))


if __name__ == "__main__":
    main()
