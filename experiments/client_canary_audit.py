"""The audits' table: mode × ε → the accountant's ε, the empirical ε of the canary
clients (fedray/audit/client_canary.py; client-level modes) or of DP-SGD's gradient
canaries (fedray/audit/gradient_canary.py), its lower bound, the one-run bound's
ceiling, canaries used, seconds; and the two positive controls of each.

    .venv/bin/python experiments/client_canary_audit.py [--rounds 10] [--canaries 1000]
        [--out docs/results/client_canary_audit]

Every row is a real simulation (synthetic, 4 hospitals, MLP 13-32-2: 514 coordinates;
every hospital every round, so the adversary sees every round) with
``audit.client_canary``. Distributed DP runs under CKKS with ``min_clients`` = every
client, so that all shares together carry the planned noise, and fewer canaries (each is
encrypted and registered like a hospital). The controls run central DP at ε = 4 with
``audit.noise_scale`` 0 (noise off, accountant on) and 0.01 (σ → 0). DP-SGD rows plant
2,000 gradient canaries in hospital 0 of an MLP 13-128-2 (2,050 parameters), scored on
that hospital's uploads, which the aggregator reads in the clear; their controls run
DP-SGD at ε = 4 with the same two noise scales.
Writes <out>.csv and prints the table.
"""

from __future__ import annotations

import argparse
import logging
import time
from pathlib import Path

import pandas as pd
import ray

from fedray import DatasetConfig, ModelConfig, PartitionConfig, SimulationConfig, simulate
from fedray.config import AuditConfig, EncryptionConfig, PrivacyConfig

EPSILONS = (1.0, 2.0, 4.0, 8.0)
GRADIENT_CANARIES = 2000


def config_for(mode: str, epsilon: float | None, *, rounds: int, canaries: int,
               noise_scale: float = 1.0) -> SimulationConfig:
    privacy = PrivacyConfig() if mode == "none" else PrivacyConfig(name=mode, epsilon=epsilon)
    extra: dict = {}
    if mode == "distributed":
        canaries = canaries * 2 // 5 // 4 * 4
        extra = dict(encryption=EncryptionConfig(name="ckks", preset="n4096"),
                     min_clients=4 + canaries)
    model = ModelConfig(name="mlp")
    audit = AuditConfig(client_canary=True, client_canaries=canaries, noise_scale=noise_scale)
    if mode == "dpsgd":  # record-level: gradient canaries in a model with room for them
        model = ModelConfig(name="mlp", hidden=128)
        audit = AuditConfig(gradient_canary=True, gradient_canaries=GRADIENT_CANARIES,
                            noise_scale=noise_scale)
    return SimulationConfig(
        dataset=DatasetConfig(name="synthetic", num_records=600),
        partition=PartitionConfig(name="iid"), model=model,
        num_clients=4, num_rounds=rounds, privacy=privacy, progress=False, audit=audit,
        **extra)


def row(label: str, config: SimulationConfig) -> dict:
    start = time.perf_counter()
    audits = simulate(config).summary["audit"]
    audit = audits.get("client_canary") or audits["gradient_canary"]
    view = audit[audit["deciding_view"]]
    return {
        "row": label, "mode": config.privacy.name,
        "epsilon_accountant": audit["epsilon_accountant"],
        "epsilon_empirical": view["gaussian_fit"]["epsilon"],
        "epsilon_empirical_lower_95": view["gaussian_fit"]["epsilon_lower"],
        "tightness": view["tightness"], "verdict": audit["verdict"],
        "one_run_lower_bound": view["one_run"]["epsilon_lower_bound"],
        "one_run_ceiling": view["one_run"]["epsilon_ceiling"],
        "canaries": audit["canaries"], "rounds_seen": audit["rounds_seen"],
        "view": audit["deciding_view"], "seconds": time.perf_counter() - start,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--canaries", type=int, default=1000)
    parser.add_argument("--out", type=Path, default=Path("docs/results/client_canary_audit"))
    args = parser.parse_args()
    ray.init(address="local", include_dashboard=False, logging_level=logging.WARNING)
    size = dict(rounds=args.rounds, canaries=args.canaries)
    rows = [row("no DP (ε = ∞)", config_for("none", None, **size))]
    for mode in ("central", "local", "distributed", "dpsgd"):
        rows += [row(f"{mode} ε={e:g}", config_for(mode, e, **size)) for e in EPSILONS]
    for mode in ("central", "dpsgd"):
        for scale, name in ((0.0, "noise off"), (0.01, "σ → 0 (noise × 0.01)")):
            rows.append(row(f"control: {mode} ε=4, {name}",
                            config_for(mode, 4.0, noise_scale=scale, **size)))
    table = pd.DataFrame(rows)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    table.to_csv(args.out.with_suffix(".csv"), index=False)
    print(table.to_string(index=False, float_format=lambda v: f"{v:.3g}"))


if __name__ == "__main__":
    main()
