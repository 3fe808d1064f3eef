"""FedBN (Li et al., 2021): FedAvg on everything but BatchNorm. Each hospital keeps
its own BatchNorm scale, shift and running statistics ("its scanner's statistics");
the server never sees them and hospitals evaluate with their own."""

from __future__ import annotations

import numpy as np
from torch import nn

from fedray.models import flat_positions
from fedray.strategies.fedavg import FedAvg


class FedBN(FedAvg):
    name = "fedbn"

    def local_positions(self, model: nn.Module) -> np.ndarray | None:
        norms = (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d)
        return flat_positions(model, lambda module: isinstance(module, norms))
