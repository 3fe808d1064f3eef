"""Whole processes, measured side by side in one run: fedray against Flower's
simulation and a bare loop, start-up against Ray's floor, a sweep warm against cold,
and peak memory at 1,000 and 10,000 hospitals.

    .venv/bin/python benchmarks/bench_sweeps.py [--quick]

The work (issue #9): N synthetic hospitals with 200 training and 50 test records each,
MLP 13-32-2, one local epoch at batch 32, SGD lr 0.05, FedAvg over every hospital every
round, each hospital evaluated after every round, 10 rounds. fedray runs as a user runs
it (`fedray …`, a fresh local Ray); Flower 1.42 runs benchmarks/flower_sim.py in its own
virtualenv (.venv-flower, made here on first use: Flower pins its own Ray); the bare
loop is benchmarks/bench_speed.py's one-process loop. Every time is a whole process,
start to exit. Peak memory sums the resident memory of the process and all its
descendants (Ray's GCS, raylet and workers), sampled every 0.2 s; shared pages are
counted once per process, so it is an upper bound.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import subprocess
import tempfile
import threading
import time
from pathlib import Path

from _venvs import FLOWER, ensure

ROOT = Path(__file__).resolve().parents[1]
PYTHON = ROOT / ".venv" / "bin" / "python"
FLOWER_ISSUE_S = 37.6  # Flower's median when issue #9 was filed (same machine class)


def work(clients: int, rounds: int = 10) -> list[str]:
    return ["dataset=synthetic", "partition=iid", "model=mlp", f"num_clients={clients}",
            f"num_rounds={rounds}", f"dataset.num_records={250 * clients}",
            "dataset.test_fraction=0.2", "batch_size=32", "lr=0.05", "progress=false"]


def _descendants_rss(pid: int) -> int:
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = Path(f"/proc/{entry}/stat").read_text()
                ppid = int(stat.rsplit(")", 1)[1].split()[1])
                children.setdefault(ppid, []).append(int(entry))
            except (OSError, ValueError, IndexError):
                continue
    total, stack = 0, [pid]
    while stack:
        current = stack.pop()
        stack.extend(children.get(current, []))
        try:
            for line in Path(f"/proc/{current}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1]) * 1024
        except OSError:
            pass
    return total


def timed(command: list[str], *, cwd: Path, timeout: float = 900) -> dict[str, float]:
    """Runs a whole process; its wall time, peak memory over its process tree, rc."""
    start = time.perf_counter()
    proc = subprocess.Popen(command, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True)
    peak = [0]
    done = threading.Event()

    def sample() -> None:
        while not done.wait(0.2):
            peak[0] = max(peak[0], _descendants_rss(proc.pid))

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    out, _ = proc.communicate(timeout=timeout)
    wall = time.perf_counter() - start
    done.set()
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(command[:4])}… exited {proc.returncode}:\n{out[-2000:]}")
    return {"wall": wall, "peak_gib": peak[0] / 2**30}


def fedray(overrides: list[str], run_dir: Path) -> dict[str, float]:
    result = timed([str(PYTHON), "-m", "fedray", *overrides, f"hydra.run.dir={run_dir}"],
                   cwd=run_dir.parent)
    summary = json.loads((run_dir / "summary.json").read_text())
    rounds = summary["rounds_completed"]
    loop = summary["seconds_per_round"] * rounds
    result.update(startup=summary["startup_seconds"], per_round=summary["seconds_per_round"],
                  rest=result["wall"] - summary["wall_seconds"])
    result["loop"] = loop
    return result


def flower_python() -> Path:
    return ensure(FLOWER)  # .venv-flower, made on first use (benchmarks/_venvs.py)


def bare(clients: int) -> dict[str, float]:
    code = ("import sys; sys.path.insert(0, 'benchmarks'); from bench_speed import bare_loop, "
            f"work; bare_loop(work({clients}, 10))")
    return timed([str(PYTHON), "-c", code], cwd=ROOT)


FLOOR = """
import logging, time
start = time.perf_counter()
import ray
ray.init(address="local", include_dashboard=False, logging_level=logging.WARNING)
class TorchActor:
    def __init__(self):
        import torch  # what any PyTorch worker process pays once
    def ready(self):
        return True
actors = [ray.remote(num_cpus=1)(TorchActor).remote() for _ in range(2)]
ray.get([a.ready.remote() for a in actors])
print(time.perf_counter() - start)
"""


def ray_floor() -> float:
    """Ray's own floor in a fresh process: ray.init and two actors that import torch
    (the start-up any Ray tool that trains with PyTorch pays)."""
    out = subprocess.run([str(PYTHON), "-c", FLOOR], cwd=ROOT, capture_output=True, text=True,
                         check=True, timeout=300).stdout
    return float(out.strip().splitlines()[-1])


def sweep_laptop_overrides() -> list[list[str]]:
    import yaml

    preset = yaml.safe_load((ROOT / "conf" / "experiment" / "sweep_laptop.yaml").read_text())
    params = preset["hydra"]["sweeper"]["params"]
    keys = list(params)
    values = [str(params[k]).split(",") for k in keys]
    return [["+experiment=sweep_laptop", *(f"{k}={v}" for k, v in zip(keys, combo))]
            for combo in itertools.product(*values)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true",
                        help="skip the cold sweep and the 10,000-hospital run")
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="fedray-bench-"))
    rows: list[tuple[str, str]] = []

    def row(name: str, value: str) -> None:
        rows.append((name, value))
        print(f"{name:<68}{value}", flush=True)

    floor = ray_floor()
    row("Ray floor: ray.init + 2 actors importing torch", f"{floor:.2f} s")
    flower = flower_python()
    for clients in (10, 100):
        ours = fedray(work(clients), tmp / f"fedray{clients}")
        theirs = timed([str(flower), str(ROOT / "benchmarks" / "flower_sim.py"), "--clients",
                        str(clients), "--rounds", "10"], cwd=tmp)
        loop = bare(clients)
        row(f"N={clients}: fedray / Flower / bare loop, end to end",
            f"{ours['wall']:.1f} / {theirs['wall']:.1f} / {loop['wall']:.1f} s")
        row(f"N={clients}: fedray ÷ Flower", f"{ours['wall'] / theirs['wall']:.2f}")
        row(f"N={clients}: fedray ÷ bare loop", f"{ours['wall'] / loop['wall']:.2f}")
        row(f"N={clients}: fedray start-up − Ray floor",
            f"{ours['startup']:.2f} − {floor:.2f} = {ours['startup'] - floor:+.2f} s")
        row(f"N={clients}: fedray seconds per round (with evaluation)",
            f"{ours['per_round']:.3f} s")
        row(f"N={clients}: fedray outside simulate() (imports; outputs, Ray down, exit)",
            f"{ours['rest']:.2f} s")
    if not args.quick:
        warm = timed([str(PYTHON), "-m", "fedray", "-m", "+experiment=sweep_laptop",
                      "progress=false", f"hydra.sweep.dir={tmp / 'warm'}"], cwd=tmp)
        start = time.perf_counter()
        runs = sweep_laptop_overrides()
        for i, overrides in enumerate(runs):
            timed([str(PYTHON), "-m", "fedray", *overrides, "progress=false",
                   f"hydra.run.dir={tmp / 'cold' / str(i)}"], cwd=tmp)
        cold = time.perf_counter() - start
        row(f"sweep_laptop ({len(runs)} runs): warm multirun / cold processes",
            f"{warm['wall']:.1f} / {cold:.1f} s ({cold / warm['wall']:.1f}× faster warm)")
    for clients in ((1000,) if args.quick else (1000, 10000)):
        big = fedray(["dataset=synthetic", "partition=iid", f"num_clients={clients}",
                      f"dataset.num_records={100 * clients}", "fraction_per_round=0.01",
                      "num_rounds=5", "progress=false"], tmp / f"big{clients}")
        row(f"N={clients} (1% a round, 5 rounds): end to end, peak memory",
            f"{big['wall']:.1f} s, {big['peak_gib']:.2f} GiB")
        row(f"N={clients}: start-up ÷ Ray floor",
            f"{big['startup']:.2f} / {floor:.2f} = {big['startup'] / floor:.2f}")
        row(f"N={clients}: outside simulate() (imports; outputs, Ray down, exit)",
            f"{big['rest']:.2f} s")
    print(f"\n(Flower's median when issue #9 was filed: {FLOWER_ISSUE_S} s at N=100; "
          "the numbers above are this run's.)")


if __name__ == "__main__":
    main()
