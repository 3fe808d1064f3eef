"""Hospitals trained together: one round of local SGD for many hospitals in stacked
tensors (issue #22's batched path; the per-hospital loop in fedray/training.py stays
the reference).

Each hospital keeps its own parameters (a slice of every stacked tensor), its own
batch order (its own generator, drawn exactly as ``training.batch_indices`` draws it)
and its own step count; ragged sizes are padded and masked. The model's functional
form (``torch.func.functional_call``), vmapped over the stacked parameters, gives every
hospital's mean batch loss in one call, and one backward pass of their sum gives each
hospital the gradient of its own loss (no loss reads another's slice), so a step costs
one batched matrix product per layer instead of one Python loop iteration per hospital.
(Not ``torch.func.grad``: its first call imports torch._dynamo, ~1 s in every worker.)
A hospital past its last step, or with nothing in its batch, does not move.

What can run here (``batched_unsupported`` says why not): SGD, no BatchNorm (a batch
statistic couples a hospital's records in a way the padding would change), a strategy
whose data-independent gradient terms have a stacked form (``Strategy.stacked_terms``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torch import nn

from fedray.models import loss_fn
from fedray.strategies import build_strategy
from fedray.strategies.base import ClientRound, Strategy
from fedray.training import LocalTraining


def batched_unsupported(model: nn.Module, settings: LocalTraining, strategy: Strategy
                        ) -> str | None:
    """Why this model, optimiser and strategy cannot be trained batched, or None."""
    if settings.optimizer != "sgd":
        return f"optimizer {settings.optimizer!r} keeps per-hospital state (sgd only)"
    if any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in model.modules()):
        return "BatchNorm couples a batch's records"
    if not strategy.trains_stacked:
        return f"strategy {strategy.name!r} has no stacked form of its local step"
    return None


AUTO_MIN_HOSPITALS = 16  # auto: fewer a worker, the loop is as fast (bench_batched_round.py)


def batched_choice(config: Any, model: nn.Module, *, clips_each_record: bool,
                   hosted: int = AUTO_MIN_HOSPITALS) -> tuple[bool, str | None]:
    """Whether a hospital worker hosting ``hosted`` hospitals trains them together
    (``training.batched``: auto, true, false), and why not when it does not. ``auto``
    also leaves small groups to the loop: stacking pays for itself from about ten
    hospitals (1.8× at 10, 7.6× at 100; slower than the loop at 4)."""
    settings = LocalTraining(epochs=config.local_epochs, steps=config.local_steps,
                             batch_size=config.batch_size, lr=config.lr,
                             optimizer=config.optimizer)
    reason = batched_unsupported(model, settings, build_strategy(config.strategy))
    if reason is None and clips_each_record:
        reason = "DP-SGD clips each record's gradient inside its hospital (Opacus)"
    if reason is None and config.ray.num_gpus_per_actor > 0:
        reason = "GPU workers still train one hospital at a time"
    if config.training.choice == "false":
        return False, "training.batched=false"
    if reason is None and config.training.choice == "auto" and hosted < AUTO_MIN_HOSPITALS:
        reason = (f"{hosted} hospitals a worker: below {AUTO_MIN_HOSPITALS} the loop is as "
                  "fast (training.batched=true insists)")
    return reason is None, reason


def _batch_plan(sizes: Sequence[int], steps: Sequence[int], batch_size: int,
                generators: Sequence[torch.Generator]) -> tuple[torch.Tensor, torch.Tensor]:
    """Every hospital's batches for the round, as ``training.batch_indices`` draws them
    from its generator (one permutation an epoch, cut into batches, the last one
    short): indices (H, T, B) and a mask of the real ones."""
    rounds = max(steps, default=0)
    index = torch.zeros((len(sizes), rounds, batch_size), dtype=torch.long)
    mask = torch.zeros((len(sizes), rounds, batch_size), dtype=torch.bool)
    for h, (size, count, generator) in enumerate(zip(sizes, steps, generators)):
        if size == 0 or count == 0:
            continue  # (the loop draws nothing for it either)
        per_epoch = -(-size // batch_size)  # batches an epoch
        epochs = -(-count // per_epoch)
        padded = torch.full((epochs, per_epoch * batch_size), -1, dtype=torch.long)
        for e in range(epochs):
            padded[e, :size] = torch.randperm(size, generator=generator)
        batches = padded.view(epochs * per_epoch, batch_size)[:count]
        index[h, :count] = batches.clamp(min=0)
        mask[h, :count] = batches >= 0
    return index, mask


def train_batched(model: nn.Module, data: Sequence[tuple[torch.Tensor, torch.Tensor]],
                  starts: np.ndarray, *, settings: LocalTraining,
                  generators: Sequence[torch.Generator], strategy: Strategy,
                  anchors: np.ndarray | None = None,
                  planned: Sequence[int | None] | None = None,
                  rounds: Sequence[ClientRound] | None = None,
                  ) -> tuple[np.ndarray, np.ndarray, list[int]]:
    """One round of local SGD for every hospital in ``data`` ((x, y) each), from its row
    of ``starts`` (hospitals × the model's trainable values, in ``model.parameters()``
    order), drawing its batches from its generator (advanced as the per-hospital loop
    would). ``anchors``: the rows the strategy's terms pull towards (FedProx: the
    round's global model; default ``starts``). ``planned``: each hospital's planned
    record count, which sets its step count (``training.train_local``'s rule).
    ``rounds``: each hospital's strategy round (broadcast and own state: SCAFFOLD's c
    and cᵢ); default empty ones.
    Returns the trained rows, each hospital's mean training loss and its steps."""
    from torch.func import functional_call, vmap

    if (reason := batched_unsupported(model, settings, strategy)) is not None:
        raise ValueError(f"cannot train batched: {reason}")
    hospitals = len(data)
    shapes = [(name, p.shape, p.numel()) for name, p in model.named_parameters()]
    rows = torch.as_tensor(np.asarray(starts), dtype=torch.float32)

    def stacked(matrix: torch.Tensor) -> dict[str, torch.Tensor]:
        out, offset = {}, 0
        for name, shape, size in shapes:
            out[name] = matrix[:, offset:offset + size].reshape(hospitals, *shape).clone()
            offset += size
        return out

    params = stacked(rows)
    anchor = stacked(rows if anchors is None
                     else torch.as_tensor(np.asarray(anchors), dtype=torch.float32))
    sizes = [len(y) for _, y in data]
    counts = [settings.num_steps((planned[h] if planned else None) or sizes[h])
              for h in range(hospitals)]
    index, mask = _batch_plan(sizes, counts, settings.batch_size, generators)
    width = max(sizes)
    x_all = torch.zeros((hospitals, width, data[0][0].shape[1]), dtype=data[0][0].dtype)
    y_all = torch.zeros((hospitals, width), dtype=data[0][1].dtype)
    for h, (x, y) in enumerate(data):
        x_all[h, :len(y)], y_all[h, :len(y)] = x, y

    def batch_loss(p: dict[str, torch.Tensor], x: torch.Tensor, y: torch.Tensor,
                   real: torch.Tensor) -> torch.Tensor:
        per_record = loss_fn(functional_call(model, p, (x,)), y, reduction="none")
        return (per_record * real).sum() / real.sum().clamp(min=1.0)

    if rounds is None:
        rounds = [ClientRound([], {}, {}) for _ in range(hospitals)]
    cache: dict = {}
    step = vmap(batch_loss)
    for tensor in params.values():
        tensor.requires_grad_()
    who = torch.arange(hospitals)[:, None]
    losses = torch.zeros(hospitals, dtype=torch.float64)
    model.train()
    for t in range(index.shape[1]):
        picked, real = index[:, t], mask[:, t]
        loss = step(params, x_all[who, picked], y_all[who, picked], real.to(x_all.dtype))
        grads = dict(zip(params, torch.autograd.grad(loss.sum(), list(params.values()))))
        moving = real.any(dim=1)
        terms = strategy.stacked_terms(params, anchor, rounds, cache)
        with torch.no_grad():
            for name, _, _ in shapes:
                update = grads[name] if terms is None else grads[name] + terms[name]
                scale = (settings.lr * moving).to(update.dtype)
                params[name] -= scale.view(-1, *[1] * (update.dim() - 1)) * update
        losses += torch.where(moving, loss.detach().double(), 0.0)
    trained = torch.cat([params[name].detach().reshape(hospitals, -1)
                         for name, _, _ in shapes], dim=1)
    mean_loss = losses.numpy() / np.maximum(np.asarray(counts), 1)
    return trained.numpy(), mean_loss, counts
