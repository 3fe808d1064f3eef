"""FedAvg (McMahan et al., 2017): hospitals run plain local SGD; the server adds the
weighted mean of their updates, scaled by ``server_lr`` (1.0 = classic)."""

from __future__ import annotations

import numpy as np

from fedray.strategies.base import State, Strategy


class FedAvg(Strategy):
    name = "fedavg"
    trains_stacked = True

    def __init__(self, *, server_lr: float = 1.0) -> None:
        self.server_lr = server_lr

    def server_update(self, global_vector: np.ndarray, means: State, server_state: State
                      ) -> tuple[np.ndarray, State]:
        return (global_vector + self.server_lr * means["model"]).astype(np.float32), server_state
