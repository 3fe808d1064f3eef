"""A hospital's local training loop: plain PyTorch over in-memory tensors.

No DataLoader: at 4-record batches its per-batch overhead dominates the maths.
Batches follow seeded permutations; with ``steps`` set the loop cycles through
epochs until that many optimizer steps are done (FLamby's "local updates").
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass

import torch
from torch import nn

from fedray.models import loss_fn
from fedray.strategies.base import ClientRound, Strategy


@dataclass(frozen=True)
class LocalTraining:
    epochs: int = 1
    steps: int | None = None
    batch_size: int = 32
    lr: float = 0.05
    optimizer: str = "sgd"  # "adam": torch's Adam, its state kept by the hospital

    def num_steps(self, num_records: int) -> int:
        if self.steps is not None:
            return self.steps
        return self.epochs * math.ceil(num_records / self.batch_size)


def batch_indices(
    num_records: int, *, batch_size: int, num_steps: int, generator: torch.Generator
) -> Iterator[torch.Tensor]:
    """Index batches over fresh permutations; the last batch of an epoch may be short."""
    done = 0
    while done < num_steps:
        order = torch.randperm(num_records, generator=generator)
        for start in range(0, num_records, batch_size):
            if done == num_steps:
                return
            yield order[start:start + batch_size]
            done += 1


def train_local(
    model: nn.Module, x: torch.Tensor, y: torch.Tensor, *, settings: LocalTraining,
    generator: torch.Generator, strategy: Strategy, round_: ClientRound | None = None,
    optimizer_state: dict | None = None, planned_records: int | None = None,
) -> float:
    """Runs SGD (or Adam) in place on ``model``, each gradient plus the strategy's
    data-independent terms; returns the mean training loss over the steps.
    ``optimizer_state``: Adam's moments, read and updated in place (one per hospital,
    since one model copy trains several hospitals in turn)."""
    model.train()
    params: list[torch.Tensor] = list(model.parameters())
    if round_ is None:  # a strategy without round state (FedAvg)
        round_ = ClientRound([p.detach().clone() for p in params], {}, {})
    adam = _adam(params, settings.lr, optimizer_state) if settings.optimizer == "adam" else None
    # BatchNorm cannot normalise a batch of one record (an epoch's short last batch)
    normalises = any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in model.modules())
    # epochs count steps over the planned records: audit canaries on top of them must not
    # change how long a hospital trains (the aggregator sees when it answers)
    total, steps = 0.0, settings.num_steps(planned_records or len(y))
    for batch in batch_indices(
        len(y), batch_size=settings.batch_size, num_steps=steps, generator=generator
    ):
        if normalises and len(batch) < 2:
            continue
        batch = batch.to(x.device)
        loss = loss_fn(model(x[batch]), y[batch])
        grads = torch.autograd.grad(loss, params)
        extra = strategy.gradient_terms(params, round_)
        if extra is not None:
            grads = tuple(g + e for g, e in zip(grads, extra))
        if adam is None:
            sgd_step(params, grads, lr=settings.lr)
        else:
            for p, g in zip(params, grads):
                p.grad = g
            adam.step()
        total += float(loss.detach())
    if adam is not None and optimizer_state is not None:
        optimizer_state.clear()
        optimizer_state.update(adam.state_dict())
    return total / max(steps, 1)


def _adam(params: list[torch.Tensor], lr: float, state: dict | None) -> torch.optim.Adam:
    """torch's Adam, resumed from a hospital's saved state. (Imported on use: torch.optim
    costs a fresh worker 1.5 s, which SGD runs never pay.)"""
    adam = torch.optim.Adam(params, lr=lr)
    if state:
        adam.load_state_dict(state)
    return adam


def sgd_step(params: list[torch.Tensor], grads: tuple[torch.Tensor, ...], *, lr: float) -> None:
    """Plain SGD, w <- w - lr * g.

    Not torch.optim.SGD: its first construction in a process imports torch._dynamo
    (1.5 s measured here), paid again by every new Ray worker.
    """
    with torch.no_grad():
        torch._foreach_add_(params, grads, alpha=-lr)
