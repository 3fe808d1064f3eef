"""Run outputs: metrics.csv, summary.json and plots in the run directory."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pandas as pd

from fedray.outputs.metrics import GLOBAL, MetricsLog
from fedray.outputs.plots import plot_accuracy

__all__ = ["GLOBAL", "MetricsLog", "plot_accuracy", "write_run"]


def write_run(directory: Path, *, metrics: pd.DataFrame, summary: dict[str, Any]) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    metrics.to_csv(directory / "metrics.csv", index=False)
    (directory / "summary.json").write_text(json.dumps(summary, indent=2, default=float) + "\n")
    plot_accuracy(metrics, directory / "accuracy.png")
