"""Flower's simulation engine on fedray's benchmark work, run in Flower's own virtualenv
(Flower pins its own Ray): N clients with 200 training and 50 test records each (13
features, 2 classes, synthetic), MLP 13-32-2, one local epoch at batch 32, SGD lr 0.05,
FedAvg over every client every round, evaluation on each client after every round.

    .venv-flower/bin/python benchmarks/flower_sim.py --clients 100 --rounds 10

Written for this benchmark against Flower 1.42's documented API (ClientApp/ServerApp,
NumPyClient, FedAvg); benchmarks/bench_sweeps.py and compare_simulators.py time it as a
whole process. The last line, ``ROUNDS_SECONDS <s>``, is the time from the first round's
configure_fit to the last round's aggregate_evaluate, for seconds per round.
"""

import argparse
import logging
import time

import numpy as np
import torch
from flwr.client import ClientApp, NumPyClient
from flwr.common import Context
from flwr.server import ServerApp, ServerAppComponents, ServerConfig
from flwr.server.strategy import FedAvg
from flwr.simulation import run_simulation

TRAIN, TEST, FEATURES = 200, 50, 13
CLOCK: dict[str, float] = {}  # the server app runs in a thread of this process


def model() -> torch.nn.Module:
    return torch.nn.Sequential(torch.nn.Linear(FEATURES, 32), torch.nn.ReLU(),
                               torch.nn.Linear(32, 2))


def data(cid: int) -> tuple[torch.Tensor, ...]:
    rng = np.random.default_rng(cid)
    x = rng.normal(size=(TRAIN + TEST, FEATURES)).astype(np.float32)
    y = (x[:, 0] + 0.5 * x[:, 1] + rng.normal(scale=0.5, size=len(x)) > 0).astype(np.int64)
    x, y = torch.from_numpy(x), torch.from_numpy(y)
    return x[:TRAIN], y[:TRAIN], x[TRAIN:], y[TRAIN:]


class Hospital(NumPyClient):
    def __init__(self, cid: int) -> None:
        torch.set_num_threads(1)
        self.net = model()
        self.x, self.y, self.x_test, self.y_test = data(cid)

    def _load(self, parameters: list[np.ndarray]) -> None:
        for p, v in zip(self.net.parameters(), parameters):
            p.data = torch.from_numpy(np.array(v))

    def _weights(self) -> list[np.ndarray]:
        return [p.detach().numpy().copy() for p in self.net.parameters()]

    def fit(self, parameters, config):
        self._load(parameters)
        opt = torch.optim.SGD(self.net.parameters(), lr=0.05)
        order = torch.randperm(TRAIN)
        for start in range(0, TRAIN, 32):
            idx = order[start:start + 32]
            opt.zero_grad()
            torch.nn.functional.cross_entropy(self.net(self.x[idx]), self.y[idx]).backward()
            opt.step()
        return self._weights(), TRAIN, {}

    def evaluate(self, parameters, config):
        self._load(parameters)
        with torch.no_grad():
            logits = self.net(self.x_test)
            loss = torch.nn.functional.cross_entropy(logits, self.y_test).item()
            accuracy = (logits.argmax(1) == self.y_test).float().mean().item()
        return loss, TEST, {"accuracy": accuracy}


class TimedFedAvg(FedAvg):
    """FedAvg that notes when the rounds begin and when the last evaluation is in."""

    def configure_fit(self, server_round, parameters, client_manager):
        CLOCK.setdefault("start", time.perf_counter())
        return super().configure_fit(server_round, parameters, client_manager)

    def aggregate_evaluate(self, server_round, results, failures):
        CLOCK["end"] = time.perf_counter()
        return super().aggregate_evaluate(server_round, results, failures)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--clients", type=int, default=100)
    parser.add_argument("--rounds", type=int, default=10)
    args = parser.parse_args()
    logging.getLogger("flwr").setLevel(logging.WARNING)
    initial = [p.detach().numpy() for p in model().parameters()]

    def client_fn(context: Context):
        return Hospital(int(context.node_config["partition-id"])).to_client()

    def server_fn(context: Context) -> ServerAppComponents:
        from flwr.common import ndarrays_to_parameters

        strategy = TimedFedAvg(fraction_fit=1.0, fraction_evaluate=1.0,
                               min_fit_clients=args.clients,
                               min_evaluate_clients=args.clients,
                               min_available_clients=args.clients,
                               initial_parameters=ndarrays_to_parameters(initial))
        return ServerAppComponents(strategy=strategy,
                                   config=ServerConfig(num_rounds=args.rounds))

    run_simulation(server_app=ServerApp(server_fn=server_fn),
                   client_app=ClientApp(client_fn=client_fn), num_supernodes=args.clients,
                   backend_config={"client_resources": {"num_cpus": 1, "num_gpus": 0.0},
                                   # a fresh Ray, as fedray's: a bare ray.init() joins
                                   # whatever local cluster /tmp/ray last recorded
                                   "init_args": {"address": "local"}})
    print(f"ROUNDS_SECONDS {CLOCK['end'] - CLOCK['start']:.6f}")


if __name__ == "__main__":
    main()
