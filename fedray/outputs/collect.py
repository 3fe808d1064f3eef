"""Gathers a multirun (one summary.json or error.json per run) into one table.

    python -m fedray.outputs.collect multirun/2026-11-27/12-00-00

One row per run, swept keys first: the config keys that differ between runs, then
``hospitals``, ``epsilon`` and ``heterogeneity`` in words a plot can use, ``status``
(ok or failed) and ``error``, the headline results, and the rest of the config. A
failed run is a row with its error, never a gap. Writes runs.csv and runs.parquet
beside the runs, and the sweep's plots (fedray/outputs/sweep_plots.py).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import pandas as pd

from fedray.outputs import ERROR_FILE

RESULT_KEYS = ("accuracy", "mean_client_accuracy", "auc", "loss", "epsilon_spent", "delta",
               "noise_multiplier", "rounds_completed", "bytes_uploaded", "startup_seconds",
               "wall_seconds", "warm_workers", "worst_client_accuracy",
               "client_accuracy_std", "client_accuracy_gap", "model_sha256")
LABELS = ("hospitals", "epsilon", "heterogeneity", "status", "error")


def _flatten(values: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for key, value in values.items():
        if isinstance(value, dict):
            flat.update(_flatten(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def _labels(config: dict[str, Any]) -> dict[str, Any]:
    """The three axes of a sweep, as words: the budget ('none' without DP) and the
    heterogeneity (Dirichlet's α, or the partition's name)."""
    privacy, partition = config.get("privacy", {}), config.get("partition", {})
    mode = privacy.get("name", "none")
    epsilon = privacy.get("epsilon")
    return {
        "epsilon": "none" if mode == "none" else ("σ given" if epsilon is None else epsilon),
        "heterogeneity": (f"α={partition.get('alpha')}" if partition.get("name") == "dirichlet"
                          else partition.get("name", "?")),
    }


def summary_row(summary: dict[str, Any]) -> dict[str, Any]:
    row = _flatten(summary["config"])
    row.update(_labels(summary["config"]))
    row.update(hospitals=len(summary["clients"]), status="ok", error=None)
    row.update({key: summary.get(key) for key in RESULT_KEYS if key != "epsilon_spent"})
    row["epsilon_spent"] = summary.get("epsilon")
    if summary.get("audit"):  # audit.canary.epsilon_lower_bound, audit.membership.…
        row.update(_flatten(summary["audit"], "audit."))
    return row


def error_row(failure: dict[str, Any]) -> dict[str, Any]:
    config = failure["config"]
    row = _flatten(config)
    row.update(_labels(config))
    row.update(hospitals=config.get("num_clients"), status="failed",
               error=f"{failure['type']}: {failure['message']}")
    return row


def collect(sweep_dir: Path) -> pd.DataFrame:
    rows = []
    for run_dir in _run_dirs(Path(sweep_dir)):
        summary, failure = run_dir / "summary.json", run_dir / ERROR_FILE
        row = (summary_row(json.loads(summary.read_text())) if summary.exists()
               else error_row(json.loads(failure.read_text())))
        row["run_dir"] = str(run_dir)
        rows.append(row)
    if not rows:
        raise FileNotFoundError(f"no summary.json or {ERROR_FILE} under {sweep_dir}")
    table = pd.DataFrame(rows)
    for key in RESULT_KEYS:
        if key not in table:
            table[key] = None
    fixed = set(RESULT_KEYS) | set(LABELS) | {"run_dir", "output_dir"}
    swept = [c for c in table.columns if c not in fixed and table[c].astype(str).nunique() > 1]
    rest = [c for c in table.columns if c not in swept and c not in fixed]
    return table[swept + list(LABELS) + list(RESULT_KEYS) + rest + ["run_dir"]]


def _run_dirs(sweep_dir: Path) -> list[Path]:
    found = {p.parent for p in sweep_dir.rglob("summary.json")}
    found |= {p.parent for p in sweep_dir.rglob(ERROR_FILE)}
    return sorted(found, key=lambda p: (len(p.parts), _job_number(p), str(p)))


def _job_number(run_dir: Path) -> int:
    head = run_dir.name.split("_", 1)[0]
    return int(head) if head.isdigit() else -1


def write_tables(table: pd.DataFrame, sweep_dir: Path) -> list[Path]:
    """runs.csv and runs.parquet (a column parquet cannot type, e.g. ε as 1.0 or
    'none', is written as text)."""
    import pyarrow as pa

    csv, parquet = sweep_dir / "runs.csv", sweep_dir / "runs.parquet"
    table.to_csv(csv, index=False)
    typed = table.copy()
    # an elementwise comparison of pandas dtypes, not a type test
    for column in typed.columns[typed.dtypes == object]:  # noqa: E721
        try:
            pa.array(typed[column], from_pandas=True)
        except (pa.ArrowInvalid, pa.ArrowTypeError):
            typed[column] = [None if v is None else str(v) for v in typed[column]]
    typed.to_parquet(parquet, index=False)
    return [csv, parquet]


def gather(sweep_dir: Path) -> tuple[pd.DataFrame, list[Path]]:
    """Collects a sweep and writes its tables and plots; returns the table and files."""
    from fedray.outputs.sweep_plots import plot_sweep

    table = collect(sweep_dir)
    files = write_tables(table, sweep_dir) + plot_sweep(table, sweep_dir)
    return table, files


def main() -> None:
    parser = argparse.ArgumentParser(description="Gather a fedray multirun into one table.")
    parser.add_argument("sweep_dir", type=Path)
    args = parser.parse_args()
    table, files = gather(args.sweep_dir)
    print(table.head(50).to_string(index=False, max_colwidth=40))
    print(f"{len(table)} runs -> " + ", ".join(str(f) for f in files))


if __name__ == "__main__":
    main()
