"""The standard plots of a sweep: accuracy against ε (one line per heterogeneity),
accuracy against the number of hospitals, and the worst hospital's accuracy against
it (one panel per budget). Failed runs are in the table, not in the plots; a mean
over repeated runs (seeds) is one point. A plot whose x axis never varies is skipped."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd


def plot_sweep(table: pd.DataFrame, sweep_dir: Path) -> list[Path]:
    done = table[table["status"] == "ok"].copy()
    if done.empty:
        return []
    done["epsilon_order"] = [_epsilon_order(e) for e in done["epsilon"]]
    written = []
    if done["epsilon"].astype(str).nunique() > 1:
        written.append(_lines(done, x="epsilon", y="accuracy", panel="hospitals",
                              path=sweep_dir / "accuracy_vs_epsilon.png",
                              ylabel="pooled test accuracy"))
    if done["hospitals"].nunique() > 1:
        written.append(_lines(done, x="hospitals", y="accuracy", panel="epsilon",
                              path=sweep_dir / "accuracy_vs_hospitals.png",
                              ylabel="pooled test accuracy"))
        written.append(_lines(done, x="hospitals", y="worst_client_accuracy", panel="epsilon",
                              path=sweep_dir / "worst_hospital_accuracy.png",
                              ylabel="worst hospital's test accuracy"))
    return written


def _epsilon_order(epsilon: Any) -> float:
    """Budgets left to right, loosest last: no DP is the right-most point."""
    try:
        return float(epsilon)
    except (TypeError, ValueError):
        return float("inf")


def _lines(done: pd.DataFrame, *, x: str, y: str, panel: str, path: Path, ylabel: str) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    sort_key = "epsilon_order" if panel == "epsilon" else panel
    panels = (done.sort_values(sort_key)[panel].astype(str).unique().tolist())
    fig, axes = plt.subplots(1, len(panels), figsize=(4.2 * len(panels), 3.8), squeeze=False,
                             sharey=True)
    for ax, value in zip(axes[0], panels):
        rows = done[done[panel].astype(str) == value]
        order = "epsilon_order" if x == "epsilon" else x
        # ε is categorical ('none' is no number): one slot per budget in the panel, so a
        # line missing a budget (a failed run) leaves a gap rather than shifting left.
        budgets = (rows.groupby(order, sort=True)[x].first() if x == "epsilon" else None)
        for label, group in rows.groupby("heterogeneity", sort=True):
            means = group.groupby(order, sort=True)[y].mean()
            positions = ([budgets.index.get_loc(k) for k in means.index] if budgets is not None
                         else means.index.tolist())
            ax.plot(positions, means.values, marker="o", label=str(label))
        if budgets is not None:
            ax.set_xticks(range(len(budgets)), [str(t) for t in budgets])
        ax.set_title(f"{panel} = {value}", fontsize=10)
        ax.set_xlabel("ε (none: no DP)" if x == "epsilon" else "hospitals")
        ax.grid(alpha=0.3)
        ax.set_ylim(0, 1)
    axes[0][0].set_ylabel(ylabel)
    axes[0][-1].legend(title="heterogeneity", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
