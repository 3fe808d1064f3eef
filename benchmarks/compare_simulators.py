"""The same federated work on five runners, alternated in one run: a bare PyTorch loop,
apple/pfl-research 0.6.0, Flower 1.42's simulation, and fedray as a user runs it with
hospitals trained batched and one by one (issue #22).

    .venv/bin/python benchmarks/compare_simulators.py [--clients 10 100 1000]
        [--repeats 2] [--systems bare pfl flower fedray-batched fedray-loop]
        [--quick] [--out rows.csv]

The work, the same on every side: N synthetic hospitals with 200 training and 50 test
records each (13 features, 2 classes), MLP 13-32-2, one local epoch at batch 32, plain
SGD lr 0.05, FedAvg over every hospital every round, each hospital's test records
evaluated after every round, 10 rounds (--quick: N=10, 1 repeat, 2 rounds).

Each run is a whole process, timed from start to exit around subprocess.run: imports,
data, any Ray start-up, the rounds and shutting down. Within each N and repeat every
system runs once, the order rotated from one repeat to the next so that no system
always goes first (or last) on a machine that warms up. Seconds per round come from
each process's own clock over its rounds: fedray's summary.json, and the
``ROUNDS_SECONDS`` line that the bare loop, benchmarks/pfl_sim.py and
benchmarks/flower_sim.py print. pfl and Flower run in their own virtualenvs, made on
first use (benchmarks/_venvs.py); a system whose venv cannot be made is skipped.
"""

from __future__ import annotations

import argparse
import csv
import json
import re
import statistics
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from _venvs import FLOWER, PFL, ROOT, SideVenv, try_ensure
from bench_sweeps import work

if TYPE_CHECKING:  # torch and numpy load in the bare loop's process only
    import numpy as np
    import torch

    Pairs = list[tuple[torch.Tensor, torch.Tensor]]

BENCH = ROOT / "benchmarks"
PYTHON = ROOT / ".venv" / "bin" / "python"
BASELINE = "fedray-batched"  # the ratios' denominator


# ---- the bare loop: runs in a child process of .venv --------------------------------

def bare_rounds(clients: int, rounds: int) -> None:
    """bench_speed.bare_loop's one-process loop over fedray's own hospitals, plus what
    the other systems also do and bare_loop skips: each hospital's test records
    evaluated after every round. Prints ``ROUNDS_SECONDS``."""
    import torch
    from bench_speed import work as speed_work

    from fedray.data import build_hospitals, plan_federation
    from fedray.models import build_model, initial_parameters

    torch.set_num_threads(1)  # as bare_loop: one process, one thread
    config = speed_work(clients, rounds)
    plan = plan_federation(config.dataset, config.partition, num_clients=clients,
                           seed=config.seed)
    hospitals = build_hospitals(config.dataset, list(plan.hospitals), seed=config.seed)
    model = build_model(config.model, num_features=plan.num_features,
                        num_classes=plan.num_classes)
    vector = initial_parameters(config.model, num_features=plan.num_features,
                                num_classes=plan.num_classes, seed=config.seed)
    train = [(torch.as_tensor(h.x_train), torch.as_tensor(h.y_train)) for h in hospitals]
    test = [(torch.as_tensor(h.x_test), torch.as_tensor(h.y_test)) for h in hospitals]
    generator = torch.Generator().manual_seed(config.seed)
    accuracy = 0.0
    # The first optimiser imports torch._dynamo (~1 s): paid before the clock, as pfl
    # (its central optimiser) and fedray's loop (worker start-up) pay it.
    torch.optim.SGD(model.parameters(), lr=config.lr)
    start = time.perf_counter()
    for _ in range(rounds):
        vector = bare_round(model, vector, train, lr=config.lr,
                            batch_size=config.batch_size, generator=generator)
        accuracy = bare_evaluate(model, vector, test)
    seconds = time.perf_counter() - start
    print(f"bare: {clients} hospitals, {rounds} rounds, test accuracy {accuracy:.3f}")
    print(f"ROUNDS_SECONDS {seconds:.6f}")


def bare_round(model: torch.nn.Module, vector: np.ndarray, train: Pairs, *, lr: float,
               batch_size: int, generator: torch.Generator) -> np.ndarray:
    """One FedAvg round, hospitals in turn (bare_loop's loop body); the new vector."""
    import numpy as np
    import torch

    from fedray.models import flatten, load_flat

    loss = torch.nn.CrossEntropyLoss()
    sizes = np.array([len(y) for _, y in train], dtype=np.float64)
    mean_update = np.zeros_like(vector)
    for (x, y), weight in zip(train, sizes / sizes.sum()):
        load_flat(model, vector)
        optimizer = torch.optim.SGD(model.parameters(), lr=lr)
        order = torch.randperm(len(y), generator=generator)
        for i in range(0, len(y), batch_size):
            batch = order[i:i + batch_size]
            optimizer.zero_grad()
            loss(model(x[batch]), y[batch]).backward()
            optimizer.step()
        mean_update += weight * (flatten(model) - vector)
    return vector + mean_update


def bare_evaluate(model: torch.nn.Module, vector: np.ndarray, test: Pairs) -> float:
    """Loss and accuracy on each hospital's test records (as fedray, pfl and Flower
    compute both); the pooled accuracy."""
    import torch

    from fedray.models import load_flat

    load_flat(model, vector)
    correct = 0
    with torch.no_grad():
        for x, y in test:
            logits = model(x)
            torch.nn.functional.cross_entropy(logits, y).item()
            correct += int((logits.argmax(1) == y).sum())
    return correct / sum(len(y) for _, y in test)


# ---- the systems: how each is started and where its rounds' time is read ------------

@dataclass(frozen=True)
class System:
    """One runner: its virtualenv (None: fedray's .venv), its command line, and how
    its seconds over all rounds are read from its output or its run directory."""

    name: str
    venv: SideVenv | None
    argv: Callable[[Path, int, int, Path], list[str]]  # python, clients, rounds, run dir
    rounds_seconds: Callable[[str, Path], float]  # output, run dir


def printed_seconds(output: str, _run_dir: Path) -> float:
    found = re.findall(r"^ROUNDS_SECONDS ([0-9.eE+-]+)$", output, flags=re.MULTILINE)
    if not found:
        raise ValueError("no ROUNDS_SECONDS line in the output")
    return float(found[-1])


def fedray_seconds(_output: str, run_dir: Path) -> float:
    summary = json.loads((run_dir / "summary.json").read_text())
    return float(summary["seconds_per_round"] * summary["rounds_completed"])


def fedray_argv(batched: str) -> Callable[[Path, int, int, Path], list[str]]:
    def argv(python: Path, clients: int, rounds: int, run_dir: Path) -> list[str]:
        return [str(python), "-m", "fedray", *work(clients, rounds),
                f"training.batched={batched}", f"hydra.run.dir={run_dir}"]
    return argv


def script_argv(script: str) -> Callable[[Path, int, int, Path], list[str]]:
    def argv(python: Path, clients: int, rounds: int, _run_dir: Path) -> list[str]:
        return [str(python), str(BENCH / script), "--clients", str(clients),
                "--rounds", str(rounds)]
    return argv


def bare_argv(python: Path, clients: int, rounds: int, _run_dir: Path) -> list[str]:
    code = (f"import sys; sys.path.insert(0, {str(BENCH)!r}); "
            f"from compare_simulators import bare_rounds; bare_rounds({clients}, {rounds})")
    return [str(python), "-c", code]


SYSTEMS = {s.name: s for s in (
    System("bare", None, bare_argv, printed_seconds),
    System("pfl", PFL, script_argv("pfl_sim.py"), printed_seconds),
    System("flower", FLOWER, script_argv("flower_sim.py"), printed_seconds),
    System("fedray-batched", None, fedray_argv("true"), fedray_seconds),
    System("fedray-loop", None, fedray_argv("false"), fedray_seconds),
)}


# ---- running and timing --------------------------------------------------------------

@dataclass(frozen=True)
class Run:
    """One whole process: its wall time, start to exit, and its rounds' own time."""

    system: str
    clients: int
    rounds: int
    repeat: int
    wall_s: float
    rounds_s: float

    @property
    def per_round_s(self) -> float:
        return self.rounds_s / self.rounds


def run_once(system: System, python: Path, *, clients: int, rounds: int, repeat: int,
             tmp: Path, timeout: float) -> Run | None:
    """Times one process; a failure is a message and None, so the others go on."""
    run_dir = tmp / f"{system.name}-{clients}-{repeat}"
    command = system.argv(python, clients, rounds, run_dir)
    start = time.perf_counter()
    try:
        done = subprocess.run(command, cwd=tmp, capture_output=True, text=True,
                              timeout=timeout)
    except subprocess.TimeoutExpired:
        print(f"  {system.name} N={clients}: no exit within {timeout:.0f} s", flush=True)
        return None
    wall = time.perf_counter() - start
    output = done.stdout + done.stderr
    try:
        if done.returncode != 0:
            raise ValueError(f"exited {done.returncode}")
        seconds = system.rounds_seconds(output, run_dir)
    except (ValueError, OSError, KeyError) as error:
        tail = "\n    ".join(output.strip().splitlines()[-8:])
        print(f"  {system.name} N={clients}: failed ({error}):\n    {tail}", flush=True)
        return None
    print(f"  {system.name:<15} N={clients:<5} whole {wall:7.2f} s   rounds {seconds:7.2f} s",
          flush=True)
    return Run(system.name, clients, rounds, repeat, wall, seconds)


def schedule(names: list[str], clients: list[int], repeats: int
             ) -> Iterator[tuple[int, int, str]]:
    """(N, repeat, system): every system once per N and repeat, the order rotated."""
    turn = 0
    for n in clients:
        for repeat in range(repeats):
            shift = turn % len(names)
            for name in names[shift:] + names[:shift]:
                yield n, repeat, name
            turn += 1


def pythons(names: list[str]) -> dict[str, Path]:
    """Each system's python; those whose venv cannot be made are left out."""
    found: dict[str, Path] = {}
    for name in names:
        venv = SYSTEMS[name].venv
        python = PYTHON if venv is None else try_ensure(venv)
        if python is not None:
            found[name] = python
    return found


# ---- reporting -----------------------------------------------------------------------

def table(runs: list[Run], names: list[str], clients: list[int]) -> str:
    """Markdown: per system and N, whole process min–max, median s/round, and the
    medians' ratios to fedray batched (above 1: slower than fedray batched)."""
    lines = ["| system | N | whole process (s, min–max) | s/round | whole ÷ fedray batched "
             "| s/round ÷ fedray batched |", "|---|---:|---:|---:|---:|---:|"]
    for n in clients:
        base = [r for r in runs if r.clients == n and r.system == BASELINE]
        for name in names:
            mine = [r for r in runs if r.clients == n and r.system == name]
            if not mine:
                continue
            wall = [r.wall_s for r in mine]
            per_round = statistics.median(r.per_round_s for r in mine)
            ratios = ("–", "–")
            if base:
                base_wall = statistics.median(r.wall_s for r in base)
                base_round = statistics.median(r.per_round_s for r in base)
                ratios = (f"{statistics.median(wall) / base_wall:.2f}",
                          f"{per_round / base_round:.2f}")
            lines.append(f"| {name} | {n} | {min(wall):.1f}–{max(wall):.1f} | "
                         f"{per_round:.3f} | {ratios[0]} | {ratios[1]} |")
    return "\n".join(lines)


def write_csv(runs: list[Run], path: Path) -> None:
    with path.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=[*asdict(runs[0]), "per_round_s"])
        writer.writeheader()
        for run in runs:
            writer.writerow({**asdict(run), "per_round_s": run.per_round_s})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clients", type=int, nargs="+", default=[10, 100, 1000])
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--systems", nargs="+", choices=list(SYSTEMS), default=list(SYSTEMS))
    parser.add_argument("--quick", action="store_true", help="N=10, 1 repeat, 2 rounds")
    parser.add_argument("--timeout", type=float, default=3600,
                        help="seconds one process may take before it counts as failed")
    parser.add_argument("--out", type=Path, help="also write one CSV row per run")
    args = parser.parse_args()
    if args.quick:
        args.clients, args.repeats, args.rounds = [10], 1, 2
    found = pythons(args.systems)
    names = [name for name in args.systems if name in found]
    tmp = Path(tempfile.mkdtemp(prefix="fedray-compare-"))
    runs: list[Run] = []
    for n, repeat, name in schedule(names, args.clients, args.repeats):
        run = run_once(SYSTEMS[name], found[name], clients=n, rounds=args.rounds,
                       repeat=repeat, tmp=tmp, timeout=args.timeout)
        if run is not None:
            runs.append(run)
    print(f"\n{args.rounds} rounds; whole process: start to exit; s/round: the process's "
          "own clock over its rounds; ratios: medians over repeats.\n")
    print(table(runs, names, args.clients))
    if args.out and runs:
        write_csv(runs, args.out)
        print(f"\nrows: {args.out}")


if __name__ == "__main__":
    main()
