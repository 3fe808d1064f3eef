"""apple/pfl-research's simulation (pfl 0.6.0, PyTorch backend) on fedray's benchmark
work, run in pfl's own virtualenv (.venv-pfl; benchmarks/compare_simulators.py makes
it): N hospitals with 200 training and 50 test records each (13 features, 2 classes,
synthetic), MLP 13-32-2, one local epoch at batch 32, SGD lr 0.05, FedAvg over every
hospital every round, each hospital's test records evaluated every round.

    .venv-pfl/bin/python benchmarks/pfl_sim.py --clients 100 --rounds 10

The last line, ``ROUNDS_SECONDS <s>``, is the time inside pfl's training loop
(``FederatedAveraging.run``), for seconds per round. pfl simulates in this one process
(no Ray); torch gets one thread, as in the bare loop. Written for this benchmark
against pfl's documented API: PyTorchModel, FederatedDataset, SimulatedBackend,
FederatedAveraging, NNTrainHyperParams.
"""

import argparse
import dataclasses
import time

import numpy as np
import torch
from pfl.aggregate.simulate import SimulatedBackend
from pfl.algorithm import FederatedAveraging, NNAlgorithmParams
from pfl.callback.base import TrainingProcessCallback
from pfl.common_types import Population
from pfl.data.federated_dataset import FederatedDataset
from pfl.data.sampling import get_user_sampler
from pfl.hyperparam import NNEvalHyperParams, NNTrainHyperParams
from pfl.metrics import Metrics, Weighted
from pfl.model.pytorch import PyTorchModel

TRAIN, TEST, FEATURES = 200, 50, 13


class MLP(torch.nn.Module):
    """13-32-2 with the two methods pfl's PyTorchModel calls: loss and metrics."""

    def __init__(self) -> None:
        super().__init__()
        self.layers = torch.nn.Sequential(torch.nn.Linear(FEATURES, 32), torch.nn.ReLU(),
                                          torch.nn.Linear(32, 2))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layers(x)

    def loss(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return torch.nn.functional.cross_entropy(self(x), y)

    @torch.no_grad()  # pfl's evaluate does not turn off autograd itself
    def metrics(self, x: torch.Tensor, y: torch.Tensor) -> dict[str, Weighted]:
        logits = self(x)
        loss = torch.nn.functional.cross_entropy(logits, y, reduction="sum").item()
        correct = (logits.argmax(1) == y).sum().item()
        return {"loss": Weighted(loss, len(y)), "accuracy": Weighted(correct, len(y))}


def hospital(cid: int) -> tuple[tuple[torch.Tensor, ...], tuple[torch.Tensor, ...]]:
    """One hospital's (train, test) tensors; the same generator as flower_sim.py."""
    rng = np.random.default_rng(cid)
    x = rng.normal(size=(TRAIN + TEST, FEATURES)).astype(np.float32)
    y = (x[:, 0] + 0.5 * x[:, 1] + rng.normal(scale=0.5, size=len(x)) > 0).astype(np.int64)
    xt, yt = torch.from_numpy(x), torch.from_numpy(y)
    return (xt[:TRAIN], yt[:TRAIN]), (xt[TRAIN:], yt[TRAIN:])


def federated(slices: list[tuple[torch.Tensor, ...]]) -> FederatedDataset:
    # minimize_reuse cycles through the ids: a cohort of N from N users is each once.
    ids = list(range(len(slices)))
    return FederatedDataset.from_slices(slices, get_user_sampler("minimize_reuse", ids))


class FedAvgTestOnly(FederatedAveraging):
    """pfl's FedAvg, less the evaluation on each trainee's training data before and
    after its local epoch (pfl does it whenever it evaluates), so that every round
    evaluates exactly what the other systems do: each hospital's test records."""

    def get_next_central_contexts(self, *args, **kwargs):
        contexts, model, metrics = super().get_next_central_contexts(*args, **kwargs)
        if contexts is not None:
            contexts = tuple(
                dataclasses.replace(c, do_evaluation=False)
                if c.population == Population.TRAIN else c for c in contexts)
        return contexts, model, metrics


class LastAccuracy(TrainingProcessCallback):
    """Keeps the last round's test accuracy (a check that the model learns)."""

    value = float("nan")

    def after_central_iteration(self, aggregate_metrics, model, *, central_iteration):
        for name, value in aggregate_metrics.to_simple_dict().items():
            if name.startswith("Val") and "accuracy" in name:
                self.value = value
        return False, Metrics()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--clients", type=int, default=100)
    parser.add_argument("--rounds", type=int, default=10)
    args = parser.parse_args()
    torch.set_num_threads(1)
    torch.manual_seed(0)
    data = [hospital(cid) for cid in range(args.clients)]
    backend = SimulatedBackend(training_data=federated([train for train, _ in data]),
                               val_data=federated([test for _, test in data]))
    net = MLP()
    # FedAvg's server step: the averaged difference applied at learning rate 1.
    model = PyTorchModel(model=net, local_optimizer_create=torch.optim.SGD,
                         central_optimizer=torch.optim.SGD(net.parameters(), lr=1.0))
    algorithm_params = NNAlgorithmParams(
        central_num_iterations=args.rounds, evaluation_frequency=1,
        train_cohort_size=args.clients, val_cohort_size=args.clients)
    train_params = NNTrainHyperParams(local_num_epochs=1, local_learning_rate=0.05,
                                      local_batch_size=32)
    accuracy = LastAccuracy()
    start = time.perf_counter()
    FedAvgTestOnly().run(algorithm_params=algorithm_params, backend=backend, model=model,
                         model_train_params=train_params,
                         model_eval_params=NNEvalHyperParams(local_batch_size=None),
                         callbacks=[accuracy], send_metrics_to_platform=False)
    seconds = time.perf_counter() - start
    print(f"pfl: {args.clients} hospitals, {args.rounds} rounds, "
          f"test accuracy {accuracy.value:.3f}")
    print(f"ROUNDS_SECONDS {seconds:.6f}")


if __name__ == "__main__":
    main()
