"""PNG plots of a run (matplotlib, headless)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from fedray.outputs.metrics import GLOBAL

MAX_LINES = 12  # more hospitals than this: their spread as bands, not one line each


def plot_accuracy(metrics: pd.DataFrame, path: Path, title: str = "") -> Path:
    """Test accuracy per round, the pooled test set in bold: one line per hospital, or
    for many hospitals their median, interquartile and min-max bands. Rounds evaluated
    alone (e.g. ``eval_every=num_rounds``) get markers, so one evaluation is a point."""
    import matplotlib

    matplotlib.use("Agg")  # headless; imported here so workers never pay for it
    import matplotlib.pyplot as plt

    acc = metrics[(metrics["split"] == "test") & (metrics["metric"] == "accuracy")]
    hospitals = acc[acc["client"] != GLOBAL]
    rounds = sorted(acc["round"].unique())
    marker = "o" if len(rounds) <= 20 else None
    fig, ax = plt.subplots(figsize=(7, 4.5))
    count = hospitals["client"].nunique()
    if count > MAX_LINES:
        spread = hospitals.groupby("round")["value"].quantile([0.0, 0.25, 0.5, 0.75, 1.0])
        q = spread.unstack()
        if len(rounds) == 1:  # a band of one round has no width: draw it as a bar
            ax.vlines(q.index, q[0.0], q[1.0], color="tab:blue", alpha=0.3, lw=2,
                      label=f"{count} hospitals: min-max")
            ax.vlines(q.index, q[0.25], q[0.75], color="tab:blue", alpha=0.6, lw=8,
                      label="interquartile")
        else:
            ax.fill_between(q.index, q[0.0], q[1.0], color="tab:blue", alpha=0.15,
                            label=f"{count} hospitals: min-max")
            ax.fill_between(q.index, q[0.25], q[0.75], color="tab:blue", alpha=0.35,
                            label="interquartile")
        ax.plot(q.index, q[0.5], color="tab:blue", lw=1.2, marker=marker, ms=3,
                label="median hospital")
    else:
        for name, rows in hospitals.groupby("client", sort=False):
            ax.plot(rows["round"], rows["value"], lw=0.8, marker=marker, ms=3, label=name)
    pooled = acc[acc["client"] == GLOBAL]
    ax.plot(pooled["round"], pooled["value"], color="black", lw=2.2, marker=marker,
            label="pooled test")
    ax.set_xlabel("round")
    ax.set_ylabel("test accuracy")
    ax.set_ylim(0, 1)
    # the default locator is an AutoLocator (a MaxNLocator); the stubs type it as Locator
    ax.xaxis.get_major_locator().set_params(integer=True)  # type: ignore[call-arg]
    if len(rounds) == 1:
        ax.set_xlim(rounds[0] - 1, rounds[0] + 1)
    ax.grid(alpha=0.3)
    ax.set_title(title or "Global model accuracy per hospital")
    ax.legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path
