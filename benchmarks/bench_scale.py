"""Many hospitals on one machine (issue #22, part 3), whole processes as a user runs them:

- 100,000 hospitals with 10 records each (7 train, 3 test), 1% of them a round,
  5 rounds, MLP 13-32-2: end to end, peak memory over every process (Ray's included),
  start-up against Ray's floor;
- 10,000 hospitals with 200 training and 50 test records each, every hospital every
  round, 5 rounds: seconds per round (training, the round's Ray calls, aggregation and
  every hospital's evaluation), start-up against Ray's floor.

    .venv/bin/python benchmarks/bench_scale.py [--hospitals 100000] [--everyone 10000]

Peak memory sums the resident memory of the process tree sampled every 0.2 s
(bench_sweeps.timed; shared pages counted once per process, so an upper bound).
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

from bench_sweeps import fedray, ray_floor


def sampled(hospitals: int) -> list[str]:
    return ["dataset=synthetic", "partition=iid", "model=mlp", f"num_clients={hospitals}",
            f"dataset.num_records={10 * hospitals}", "fraction_per_round=0.01",
            "num_rounds=5", "progress=false"]


def everyone(hospitals: int) -> list[str]:
    return ["dataset=synthetic", "partition=iid", "model=mlp", f"num_clients={hospitals}",
            f"dataset.num_records={250 * hospitals}", "dataset.test_fraction=0.2",
            "num_rounds=5", "progress=false"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--hospitals", type=int, default=100_000)
    parser.add_argument("--everyone", type=int, default=10_000)
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="fedray-scale-"))
    floor = ray_floor()
    print(f"Ray floor (ray.init + 2 actors importing torch): {floor:.2f} s\n")
    print("| run | end to end | peak memory | start-up (÷ Ray floor) | s/round |")
    print("|---|---|---|---|---|")
    for name, overrides in (
        (f"{args.hospitals:,} hospitals × 10 records, 1% a round, 5 rounds",
         sampled(args.hospitals)),
        (f"{args.everyone:,} hospitals × 250 records, all every round, 5 rounds",
         everyone(args.everyone)),
    ):
        got = fedray(overrides, tmp / name.split()[0].replace(",", ""))
        print(f"| {name} | {got['wall']:.1f} s | {got['peak_gib']:.2f} GiB | "
              f"{got['startup']:.1f} s ({got['startup'] / floor:.2f}×) | "
              f"{got['per_round']:.3f} s |", flush=True)


if __name__ == "__main__":
    main()
