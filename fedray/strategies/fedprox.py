"""FedProx (Li et al., 2020): FedAvg whose hospitals minimise their loss plus
(μ/2)·‖w − w_global‖², pulling local training back towards the global model."""

from __future__ import annotations

from collections.abc import Sequence

import torch

from fedray.strategies.base import ClientRound
from fedray.strategies.fedavg import FedAvg


def proximal_gradient(params: list[torch.Tensor], global_params: list[torch.Tensor],
                      mu: float) -> list[torch.Tensor]:
    """∇ (μ/2)‖w − w_g‖² = μ (w − w_g)."""
    return [mu * (p.detach() - g) for p, g in zip(params, global_params)]


class FedProx(FedAvg):
    name = "fedprox"

    def __init__(self, *, mu: float, server_lr: float = 1.0) -> None:
        super().__init__(server_lr=server_lr)
        self.mu = mu

    def gradient_terms(self, params: list[torch.Tensor], round_: ClientRound
                       ) -> list[torch.Tensor] | None:
        return proximal_gradient(params, round_.global_params, self.mu)

    def stacked_terms(self, params: dict[str, torch.Tensor], anchors: dict[str, torch.Tensor],
                      rounds: Sequence[ClientRound], cache: dict
                      ) -> dict[str, torch.Tensor] | None:
        return {name: self.mu * (p.detach() - anchors[name]) for name, p in params.items()}
