"""fedray against a bare sequential PyTorch loop on the same training work.

Work (issue #2): N synthetic hospitals with 200 training records each, 13 features,
MLP 13-32-2, one local epoch at batch 32, plain SGD, every hospital every round.
The bare loop runs in this process with one torch thread; fedray runs its default
local Ray (all cores, one hospital actor per core). Both times start after imports
and include building the data; fedray's also include starting Ray and its actors.

    .venv/bin/python benchmarks/bench_speed.py [--clients 10 100] [--rounds 10 50]

Flower's simulation engine, measured on this machine class for the 10-round N=100
work, took 19-31 s (issue #2); its row is quoted, not re-run (Flower is not a
dependency).
"""

from __future__ import annotations

import argparse
import logging
import time

import numpy as np
import torch

from fedray import DatasetConfig, ModelConfig, PartitionConfig, SimulationConfig, simulate
from fedray.data import build_hospitals, plan_federation
from fedray.models import build_model, flatten, initial_parameters, load_flat

RECORDS_PER_HOSPITAL = 250  # 200 train + 50 test at test_fraction 0.2
FLOWER_10_ROUNDS_N100 = (19.0, 31.0)


def work(clients: int, rounds: int) -> SimulationConfig:
    return SimulationConfig(
        dataset=DatasetConfig(name="synthetic", num_records=RECORDS_PER_HOSPITAL * clients,
                              test_fraction=0.2),
        partition=PartitionConfig(name="iid"),
        model=ModelConfig(name="mlp", hidden=32),
        num_clients=clients, num_rounds=rounds, local_epochs=1, batch_size=32, lr=0.05,
        eval_every=rounds, progress=False,
    )


def bare_loop(config: SimulationConfig) -> dict[str, float]:
    """What a researcher writes without a framework: one process, hospitals in turn."""
    torch.set_num_threads(1)
    start = time.perf_counter()
    plan = plan_federation(config.dataset, config.partition, num_clients=config.num_clients,
                           seed=config.seed)
    hospitals = build_hospitals(config.dataset, list(plan.hospitals), seed=config.seed)
    data = [(torch.as_tensor(h.x_train), torch.as_tensor(h.y_train)) for h in hospitals]
    sizes = np.array([len(y) for _, y in data], dtype=np.float64)
    weights = sizes / sizes.sum()
    model = build_model(config.model, num_features=plan.num_features,
                        num_classes=plan.num_classes)
    global_vector = initial_parameters(config.model, num_features=plan.num_features,
                                       num_classes=plan.num_classes, seed=config.seed)
    loss = torch.nn.CrossEntropyLoss()
    generator = torch.Generator().manual_seed(config.seed)
    round_times = []
    for _ in range(config.num_rounds):
        round_start = time.perf_counter()
        mean_update = np.zeros_like(global_vector)
        for (x, y), weight in zip(data, weights):
            load_flat(model, global_vector)
            optimizer = torch.optim.SGD(model.parameters(), lr=config.lr)
            order = torch.randperm(len(y), generator=generator)
            for i in range(0, len(y), config.batch_size):
                batch = order[i:i + config.batch_size]
                optimizer.zero_grad()
                loss(model(x[batch]), y[batch]).backward()
                optimizer.step()
            mean_update += weight * (flatten(model) - global_vector)
        global_vector = global_vector + mean_update
        round_times.append(time.perf_counter() - round_start)
    return {"wall": time.perf_counter() - start, "round": float(np.median(round_times[1:]))}


def fedray_run(config: SimulationConfig) -> dict[str, float]:
    start = time.perf_counter()
    result = simulate(config)
    wall = time.perf_counter() - start
    seconds = result.metrics.query("split == 'round' and metric == 'seconds'")["value"]
    return {"wall": wall, "startup": result.summary["startup_seconds"],
            "round": float(np.median(seconds.iloc[1:]))}


class EmptyActor:
    def ready(self) -> bool:
        return True


class TorchActor:
    def __init__(self) -> None:
        import torch  # noqa: F401  (what any PyTorch worker process pays once)

    def ready(self) -> bool:
        return True


def ray_floor(actor_class: type) -> float:
    """A bare ray.init plus two ready actors: the start-up any Ray tool pays."""
    import ray

    start = time.perf_counter()
    ray.init(address="local", include_dashboard=False, logging_level=logging.WARNING)
    remote = ray.remote(num_cpus=1)(actor_class)
    actors = [remote.remote() for _ in range(2)]
    ray.get([a.ready.remote() for a in actors])
    floor = time.perf_counter() - start
    ray.shutdown()
    return floor


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--clients", type=int, nargs="+", default=[10, 100])
    parser.add_argument("--rounds", type=int, nargs="+", default=[10, 50])
    args = parser.parse_args()

    floor = ray_floor(EmptyActor)
    torch_floor = ray_floor(TorchActor)
    print(f"Ray floor (ray.init + 2 empty actors ready):          {floor:.2f} s")
    print(f"Ray floor (ray.init + 2 actors that import torch):    {torch_floor:.2f} s\n")
    header = (f"{'N':>4} {'rounds':>6} {'bare s':>8} {'fedray s':>9} {'start-up':>9} "
              f"{'bare s/rnd':>11} {'fedray s/rnd':>13} {'round ratio':>12} {'wall ratio':>11}")
    print(header)
    print("-" * len(header))
    for clients in args.clients:
        for rounds in args.rounds:
            config = work(clients, rounds)
            bare = bare_loop(config)
            fed = fedray_run(config)
            print(f"{clients:>4} {rounds:>6} {bare['wall']:>8.2f} {fed['wall']:>9.2f} "
                  f"{fed['startup']:>9.2f} {bare['round']:>11.4f} {fed['round']:>13.4f} "
                  f"{fed['round'] / bare['round']:>12.2f} {fed['wall'] / bare['wall']:>11.2f}",
                  flush=True)
            if clients == 100 and rounds == 10:
                low, high = FLOWER_10_ROUNDS_N100
                print(f"{'':>4} {'':>6} Flower (quoted): {low:.0f}-{high:.0f} s -> fedray is "
                      f"{low / fed['wall']:.1f}-{high / fed['wall']:.1f}x faster", flush=True)
    print("\nround ratio = fedray steady s/round / bare s/round (median, first round excluded);"
          "\nwall ratio = fedray end to end / bare end to end; start-up = planning the"
          "\nhospitals + Ray + actors ready, to compare with the floors above.")


if __name__ == "__main__":
    main()
