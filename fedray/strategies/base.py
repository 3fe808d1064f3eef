"""The strategy interface: a client hook (how a hospital trains) and a server rule
(how the averaged update becomes the next global model)."""

from __future__ import annotations

from abc import ABC, abstractmethod

import numpy as np
import torch
from torch import nn


class Strategy(ABC):
    """FedProx, SCAFFOLD and FedOpt fill the same two hooks."""

    name: str = "base"

    def local_loss(
        self, loss: torch.Tensor, model: nn.Module, global_params: list[torch.Tensor]
    ) -> torch.Tensor:
        """Client hook: the objective a hospital minimises (default: its plain loss)."""
        return loss

    @abstractmethod
    def server_update(self, global_vector: np.ndarray, mean_update: np.ndarray) -> np.ndarray:
        """Server rule: the next global vector from the weighted mean of the updates."""
