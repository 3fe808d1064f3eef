"""Gathers a Hydra multirun (one summary.json per run) into one table.

    python -m fedray.outputs.collect multirun/2026-11-27/12-00-00 [-o table.csv]

One row per run: the config flattened to dotted keys (the swept keys among them)
and the headline results.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import pandas as pd

RESULT_KEYS = ("accuracy", "mean_client_accuracy", "auc", "loss", "epsilon", "delta",
               "noise_multiplier", "rounds_completed", "bytes_uploaded", "wall_seconds",
               "worst_client_accuracy", "client_accuracy_std", "client_accuracy_gap")


def _flatten(values: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for key, value in values.items():
        if isinstance(value, dict):
            flat.update(_flatten(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def summary_row(summary: dict[str, Any]) -> dict[str, Any]:
    row = _flatten(summary["config"])
    row.update({key: summary.get(key) for key in RESULT_KEYS})
    return row


def collect(sweep_dir: Path) -> pd.DataFrame:
    rows = []
    for path in sorted(Path(sweep_dir).rglob("summary.json")):
        row = summary_row(json.loads(path.read_text()))
        row["run_dir"] = str(path.parent)
        rows.append(row)
    if not rows:
        raise FileNotFoundError(f"no summary.json under {sweep_dir}")
    table = pd.DataFrame(rows)
    varying = [c for c in table.columns if c not in RESULT_KEYS + ("run_dir", "output_dir")
               and table[c].astype(str).nunique() > 1]
    return table[varying + [c for c in table.columns if c not in varying]]


def main() -> None:
    parser = argparse.ArgumentParser(description="Gather a fedray multirun into one table.")
    parser.add_argument("sweep_dir", type=Path)
    parser.add_argument("-o", "--output", type=Path, help="CSV path (default: SWEEP/runs.csv)")
    args = parser.parse_args()
    table = collect(args.sweep_dir)
    out = args.output or args.sweep_dir / "runs.csv"
    table.to_csv(out, index=False)
    print(table.head(50).to_string(index=False, max_colwidth=40))
    print(f"{len(table)} runs -> {out}")


if __name__ == "__main__":
    main()
