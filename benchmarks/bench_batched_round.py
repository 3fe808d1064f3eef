"""One round of local training, per hospital in a loop against hospitals trained
together (fedray/batched.py), in one process (no Ray, no pipeline: the training alone).

    .venv/bin/python benchmarks/bench_batched_round.py [--hospitals 10 100 1000] [--repeat 3]

The work is issue #22's: N hospitals × 200 records, MLP 13-32-2, one epoch at batch 32
(7 steps), plain SGD, every hospital every round. The loop is what a hospital worker
does today for each hospital (load the global vector, ``train_local``, flatten); the
batched path trains them all from the same global vector. Prints seconds per round
(the best of ``--repeat``), the ratio, and the largest difference between the two
paths' models.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from fedray.batched import train_batched
from fedray.config import ModelConfig
from fedray.models import build_model, flatten, load_flat, num_trainable
from fedray.strategies import FedAvg
from fedray.training import LocalTraining, train_local

RECORDS, FEATURES = 200, 13
SETTINGS = LocalTraining(epochs=1, batch_size=32, lr=0.05)


def one_round(hospitals: int, batched: bool) -> tuple[float, np.ndarray]:
    torch.manual_seed(0)
    model = build_model(ModelConfig(name="mlp"), num_features=FEATURES, num_classes=2)
    start = flatten(model)
    g = torch.Generator().manual_seed(1)
    data = [(torch.randn(RECORDS, FEATURES, generator=g),
             torch.randint(0, 2, (RECORDS,), generator=g)) for _ in range(hospitals)]
    generators = [torch.Generator().manual_seed(100 + h) for h in range(hospitals)]
    begin = time.perf_counter()
    if batched:
        rows = np.tile(start[:num_trainable(model)], (hospitals, 1))
        trained, _, _ = train_batched(model, data, rows, settings=SETTINGS, strategy=FedAvg(),
                                      generators=generators)
    else:
        out = []
        for (x, y), generator in zip(data, generators):
            load_flat(model, start)
            train_local(model, x, y, settings=SETTINGS, generator=generator, strategy=FedAvg())
            out.append(flatten(model))
        trained = np.stack(out)
    return time.perf_counter() - begin, trained


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hospitals", type=int, nargs="+", default=[10, 100, 1000])
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    torch.set_num_threads(max(1, torch.get_num_threads()))
    print(f"{'hospitals':>9} {'loop s/round':>13} {'batched s/round':>16} {'loop/batched':>13} "
          f"{'max |diff|':>11}")
    for n in args.hospitals:
        loop = min(one_round(n, False)[0] for _ in range(args.repeat))
        batched = min(one_round(n, True)[0] for _ in range(args.repeat))
        difference = float(np.abs(one_round(n, True)[1] - one_round(n, False)[1]).max())
        print(f"{n:>9} {loop:>13.4f} {batched:>16.4f} {loop / batched:>13.1f} {difference:>11.2e}")


if __name__ == "__main__":
    main()
