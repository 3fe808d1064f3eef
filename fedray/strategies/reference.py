"""The two reference runs every FL table needs beside the federated methods.

``local``: every hospital trains alone on its own data and keeps its own model (all
positions are its own, nothing is shared); at the end each hospital's model is also
tested on every other hospital's test split, as FLamby reports its "Local i" rows.
``pooled``: one model trained on the union of the hospitals' training data (what
the hospitals hold, pooled in one place: the upper reference), tested on each
hospital's own test split.
"""

from __future__ import annotations

import numpy as np
from torch import nn

from fedray.models import flatten
from fedray.strategies.base import State, Strategy
from fedray.strategies.fedavg import FedAvg


class Local(Strategy):
    name = "local"
    trains_stacked = True  # plain SGD, each hospital from its own row

    def server_update(self, global_vector: np.ndarray, means: State, server_state: State
                      ) -> tuple[np.ndarray, State]:
        return global_vector, server_state  # nothing is shared

    def local_positions(self, model: nn.Module) -> np.ndarray | None:
        return np.ones(flatten(model).shape[0], dtype=bool)


class Pooled(FedAvg):
    """FedAvg over one participant, the pooled trainer: its model is the global one."""

    name = "pooled"
