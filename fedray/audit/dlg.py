"""Optimisation-based gradient inversion (DLG, Zhu et al., 2019; with the cosine
distance of Geiping et al., 2020): find records whose gradient at the round's global
model points where the update points.

The attacker knows what the protocol makes public: the model, the global vector the
hospital started from, and the batch size. It reads the update as one gradient step
(exact for one local step; an approximation otherwise). Cosine matching makes the
update's scale irrelevant: the hospital's weight, the learning rate and clipping.
Labels are optimised too, as soft labels.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from fedray.models import load_flat


def dlg_invert(model: nn.Module, start: np.ndarray, update: np.ndarray, *, num_records: int,
               num_features: int, iterations: int = 300, restarts: int = 8, seed: int = 0
               ) -> np.ndarray:
    """``num_records`` candidate records whose mean-loss gradient at ``start`` best
    matches ``-update`` (its first values, the model's parameters). Gradient matching is
    non-convex and chaotic (a rounding difference can change the minimum found): of
    ``restarts`` random starts, the one whose gradient matches best wins, a criterion
    the attacker can compute without the truth (8 starts recovered one record in 12 of
    12 update scales where 4 did in 9; tests/audit/test_attacks.py)."""
    load_flat(model, start)
    model.eval()  # the attacker evaluates; BatchNorm (never with DP-SGD) is not modelled
    params: list[torch.Tensor] = list(model.parameters())
    target = -torch.as_tensor(np.asarray(update[: sum(p.numel() for p in params)],
                                         dtype=np.float32))
    target = target / target.norm().clamp_min(1e-12)
    best, best_distance = None, np.inf
    for restart in range(restarts):
        generator = torch.Generator().manual_seed(seed * 1000 + restart)
        records, distance = _match(model, params, target, num_records=num_records,
                                   num_features=num_features, iterations=iterations,
                                   generator=generator)
        if distance < best_distance:
            best, best_distance = records, distance
    assert best is not None
    return best


def _match(model: nn.Module, params: list[torch.Tensor], target: torch.Tensor, *,
           num_records: int, num_features: int, iterations: int,
           generator: torch.Generator) -> tuple[np.ndarray, float]:
    records = torch.randn(num_records, num_features, generator=generator).requires_grad_()
    outputs = model(records[:1]).shape[1]
    soft_labels = torch.zeros(num_records, max(outputs, 2)).requires_grad_()
    optimiser = torch.optim.Adam([records, soft_labels], lr=0.05)

    def distance() -> torch.Tensor:
        logits = model(records)
        labels = torch.softmax(soft_labels, dim=1)
        if outputs == 1:  # binary logistic regression: one logit, P(y = 1) as target
            loss = nn.functional.binary_cross_entropy_with_logits(logits[:, 0], labels[:, 1])
        else:
            loss = -(labels * torch.log_softmax(logits, dim=1)).sum(dim=1).mean()
        grads = torch.autograd.grad(loss, params, create_graph=True)
        flat = torch.cat([g.reshape(-1) for g in grads])
        return 1 - flat @ target / flat.norm().clamp_min(1e-12)

    for _ in range(iterations):
        optimiser.zero_grad()
        distance().backward()
        optimiser.step()
    return records.detach().numpy().astype(np.float64), float(distance().detach())
