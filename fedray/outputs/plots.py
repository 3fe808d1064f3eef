"""PNG plots of a run (matplotlib, headless)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from fedray.outputs.metrics import GLOBAL


def plot_accuracy(metrics: pd.DataFrame, path: Path, title: str = "") -> Path:
    """Test accuracy per round: one line per hospital, the pooled test set in bold."""
    import matplotlib

    matplotlib.use("Agg")  # headless; imported here so workers never pay for it
    import matplotlib.pyplot as plt

    acc = metrics[(metrics["split"] == "test") & (metrics["metric"] == "accuracy")]
    fig, ax = plt.subplots(figsize=(7, 4.5))
    hospitals = [c for c in acc["client"].unique() if c != GLOBAL]
    many = len(hospitals) > 12
    for name in hospitals:
        rows = acc[acc["client"] == name]
        ax.plot(rows["round"], rows["value"], lw=0.8, alpha=0.35 if many else 0.9,
                label=None if many else name)
    pooled = acc[acc["client"] == GLOBAL]
    ax.plot(pooled["round"], pooled["value"], color="black", lw=2.2, label="pooled test")
    ax.set_xlabel("round")
    ax.set_ylabel("test accuracy")
    ax.set_ylim(0, 1)
    ax.grid(alpha=0.3)
    ax.set_title(title or "Global model accuracy per hospital")
    ax.legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path
