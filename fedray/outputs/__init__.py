"""Run outputs: metrics.csv, summary.json and plots in the run directory, and a
sweep's table (collect.py). Light on import: the CLI reads the sweep helpers before
it imports torch, so the names below load on first use."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

__all__ = ["ERROR_FILE", "GLOBAL", "MetricsLog", "plot_accuracy", "write_run"]

ERROR_FILE = "error.json"  # a failed run of a sweep: its config and one-line error


def __getattr__(name: str) -> Any:
    if name in ("GLOBAL", "MetricsLog"):
        from fedray.outputs import metrics

        return getattr(metrics, name)
    if name == "plot_accuracy":
        from fedray.outputs.plots import plot_accuracy

        return plot_accuracy
    raise AttributeError(f"module 'fedray.outputs' has no attribute {name!r}")


def write_run(directory: Path, *, metrics: Any, summary: dict[str, Any]) -> None:
    from fedray.outputs.plots import plot_accuracy

    directory.mkdir(parents=True, exist_ok=True)
    metrics.to_csv(directory / "metrics.csv", index=False)
    (directory / "summary.json").write_text(json.dumps(summary, indent=2, default=float) + "\n")
    plot_accuracy(metrics, directory / "accuracy.png")
