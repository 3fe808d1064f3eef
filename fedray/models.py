"""Model registry and the loss/score rules shared by training and evaluation.

A binary task with a one-logit head (logistic regression, FLamby's baseline) uses
sigmoid + binary cross-entropy; any wider head uses softmax cross-entropy.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
from torch import nn

from fedray.config import ModelConfig

ModelBuilder = Callable[[ModelConfig, int, int], nn.Module]


def _logreg(config: ModelConfig, num_features: int, num_classes: int) -> nn.Module:
    return nn.Linear(num_features, 1 if num_classes == 2 else num_classes)


def _mlp(config: ModelConfig, num_features: int, num_classes: int) -> nn.Module:
    norm = [nn.BatchNorm1d(config.hidden)] if config.batchnorm else []
    return nn.Sequential(
        nn.Linear(num_features, config.hidden), *norm, nn.ReLU(),
        nn.Linear(config.hidden, num_classes),
    )


MODELS: dict[str, ModelBuilder] = {"logreg": _logreg, "mlp": _mlp}


def build_model(config: ModelConfig, *, num_features: int, num_classes: int) -> nn.Module:
    return MODELS[config.name](config, num_features, num_classes)


def initial_parameters(
    config: ModelConfig, *, num_features: int, num_classes: int, seed: int
) -> np.ndarray:
    """The round-0 global vector: torch's default init under ``torch.manual_seed(seed)``,
    the same draw FLamby makes when it seeds before building its model."""
    torch.manual_seed(seed)
    model = build_model(config, num_features=num_features, num_classes=num_classes)
    return flatten(model)


def _float_buffers(model: nn.Module) -> list[torch.Tensor]:
    """BatchNorm's running statistics: state of the model, not parameters."""
    return [b for b in model.buffers() if b.is_floating_point()]


def _flat_tensors(model: nn.Module) -> list[torch.Tensor]:
    return list(model.parameters()) + _float_buffers(model)


def num_trainable(model: nn.Module) -> int:
    """The flat vector's leading positions: parameters; the rest are float buffers."""
    return sum(p.numel() for p in model.parameters())


def flatten(model: nn.Module) -> np.ndarray:
    """The whole model as one float32 vector: parameters, then float buffers (BatchNorm
    running statistics), so a global model is complete and evaluates the same
    whichever hospitals shared an actor."""
    return torch.cat([t.detach().reshape(-1) for t in _flat_tensors(model)]).cpu().numpy() \
        .astype(np.float32)


def load_flat(model: nn.Module, vector: np.ndarray) -> None:
    """Copies a flat float32 vector into the model (the broadcast array stays read-only)."""
    device = next(model.parameters()).device
    flat = torch.as_tensor(np.array(vector), device=device)
    start = 0
    with torch.no_grad():
        for tensor in _flat_tensors(model):
            tensor.copy_(flat[start:start + tensor.numel()].view_as(tensor))
            start += tensor.numel()


def flat_positions(model: nn.Module, belongs: Callable[[nn.Module], bool]) -> np.ndarray:
    """A mask of the flat-vector positions held by modules for which ``belongs`` is true."""
    owners: dict[int, bool] = {}
    for module in model.modules():
        for tensor in list(module.parameters(recurse=False)) + list(module.buffers(recurse=False)):
            owners[id(tensor)] = belongs(module)
    return np.concatenate([np.full(t.numel(), owners[id(t)]) for t in _flat_tensors(model)])


def loss_fn(logits: torch.Tensor, labels: torch.Tensor, reduction: str = "mean") -> torch.Tensor:
    if logits.shape[1] == 1:
        return nn.functional.binary_cross_entropy_with_logits(
            logits[:, 0], labels.to(logits.dtype), reduction=reduction
        )
    return nn.functional.cross_entropy(logits, labels, reduction=reduction)


def predict(logits: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Predicted class and the positive-class score (binary) or max probability."""
    if logits.shape[1] == 1:
        score = torch.sigmoid(logits[:, 0])
        return (score > 0.5).long(), score
    probs = torch.softmax(logits, dim=1)
    score = probs[:, 1] if probs.shape[1] == 2 else probs.max(dim=1).values
    return probs.argmax(dim=1), score
