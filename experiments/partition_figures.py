"""What each partition and the feature-shift transform do to the hospitals, in one PNG.

    .venv/bin/python experiments/partition_figures.py [--dataset synthetic]
        [--num-clients 10] [--num-classes 10] [--seed 0] [--out docs/results/partitions.png]

Top and middle: records per hospital, stacked by label, for partition=iid,
dirichlet (α = 0.1 and 1), quantity (α = 1) and shards (``--shards-per-client``).
Bottom: each hospital's mean of every (train) feature under partition=iid, without and
with ``partition.feature_shift`` (and then ``partition.masked_features`` too; masked
features are grey).
Everything comes from the library's planner and builders; no Ray is started. For
synthetic data the generator's own ``dataset.feature_shift`` is set to
``--dataset-shift`` (default 0), so the bottom panels show the transform alone.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from fedray.config import DatasetConfig, PartitionConfig
from fedray.data import build_hospitals, load_records, plan_federation


def label_counts(dataset: DatasetConfig, partition: PartitionConfig, *, num_clients: int,
                 seed: int) -> np.ndarray:
    """(hospitals, classes) record counts, from the plan's rows (train + test)."""
    table = load_records(dataset, seed)
    plan = plan_federation(dataset, partition, num_clients=num_clients, seed=seed)
    return np.stack([
        np.bincount(table.labels[np.concatenate([h.train_rows, h.test_rows])],
                    minlength=table.num_classes)
        for h in plan.hospitals
    ])


def feature_means(dataset: DatasetConfig, partition: PartitionConfig, *, num_clients: int,
                  seed: int) -> np.ma.MaskedArray:
    """(hospitals, features) mean of each hospital's train features, as it builds them;
    the features its scanner does not measure are masked."""
    plan = plan_federation(dataset, partition, num_clients=num_clients, seed=seed)
    hospitals = build_hospitals(dataset, list(plan.hospitals), seed=seed)
    means = np.stack([h.x_train.mean(axis=0) for h in hospitals])
    unmeasured = np.stack([
        p.shift.scanner(hospital=p.index, num_features=plan.num_features).masked
        for p in plan.hospitals
    ])
    return np.ma.masked_array(means, mask=unmeasured)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--dataset", choices=("synthetic", "heart_disease"), default="synthetic")
    parser.add_argument("--num-clients", type=int, default=10)
    parser.add_argument("--num-records", type=int, default=2000, help="synthetic only")
    parser.add_argument("--num-classes", type=int, default=10, help="synthetic only")
    parser.add_argument("--dataset-shift", type=float, default=0.0, help="synthetic only")
    parser.add_argument("--shards-per-client", type=int, default=2)
    parser.add_argument("--feature-shift", type=float, default=1.0)
    parser.add_argument("--masked-features", type=float, default=0.3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=Path("docs/results/partitions.png"))
    args = parser.parse_args()

    dataset = DatasetConfig(name=args.dataset, num_records=args.num_records,
                            num_classes=args.num_classes, feature_shift=args.dataset_shift)
    sizes = dict(num_clients=args.num_clients, seed=args.seed)
    histograms = {
        "iid": PartitionConfig(name="iid"),
        "dirichlet α = 0.1": PartitionConfig(name="dirichlet", alpha=0.1),
        "dirichlet α = 1": PartitionConfig(name="dirichlet", alpha=1.0),
        "quantity α = 1": PartitionConfig(name="quantity", alpha=1.0),
        f"shards, {args.shards_per_client} per hospital":
            PartitionConfig(name="shards", shards_per_client=args.shards_per_client),
    }
    s, m = args.feature_shift, args.masked_features
    shifts = {
        "no feature shift": PartitionConfig(name="iid"),
        f"feature_shift = {s:g}": PartitionConfig(name="iid", feature_shift=s),
        f"feature_shift = {s:g}, masked_features = {m:g}":
            PartitionConfig(name="iid", feature_shift=s, masked_features=m),
    }
    counts = {title: label_counts(dataset, p, **sizes) for title, p in histograms.items()}
    means = {title: feature_means(dataset, p, **sizes) for title, p in shifts.items()}
    plot(counts, means, args.out, title=f"{args.dataset}, {args.num_clients} hospitals, "
         f"seed {args.seed}")
    print(f"wrote {args.out}")


def plot(counts: dict[str, np.ndarray], means: dict[str, np.ma.MaskedArray], path: Path, *,
         title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(3, 3, figsize=(13, 11), layout="constrained")
    panels = list(axes.flat)
    num_classes = next(iter(counts.values())).shape[1]
    colours = plt.get_cmap("tab10" if num_classes <= 10 else "tab20")
    for ax, (name, table) in zip(panels, counts.items()):
        bottom = np.zeros(len(table))
        for c in range(num_classes):
            ax.bar(np.arange(len(table)), table[:, c], bottom=bottom, color=colours(c),
                   label=f"label {c}")
            bottom += table[:, c]
        ax.set_title(name, fontsize=10)
        ax.set_xlabel("hospital")
        ax.set_ylabel("records")
        ax.set_xticks(np.arange(len(table)))
    legend = panels[len(counts)]
    legend.axis("off")
    legend.legend(*panels[0].get_legend_handles_labels(), loc="center", ncol=2,
                  title="label", fontsize=9)
    limit = max(float(np.abs(m).max()) for m in means.values())
    cmap = plt.get_cmap("RdBu_r").with_extremes(bad="0.55")
    for ax, (name, table) in zip(panels[len(counts) + 1:], means.items()):
        image = ax.imshow(table, cmap=cmap, vmin=-limit, vmax=limit, aspect="auto")
        ax.set_title(f"iid, feature means\n{name}", fontsize=10)
        ax.set_xlabel("feature")
        ax.set_ylabel("hospital")
    fig.colorbar(image, ax=panels[-3:], shrink=0.8,
                 label="mean of train feature (grey: masked)")
    fig.suptitle(f"Partitions and feature shift ({title})")
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)


if __name__ == "__main__":
    main()
