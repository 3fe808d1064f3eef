"""The strategy contract: what the server broadcasts, how a hospital trains and what
it uploads, how uploads are averaged, and the server rule with its own state.

State is explicit: the server's (control variates, optimiser moments) is a dict of
arrays the aggregator holds and passes back in; a hospital's (its control variate,
its own BatchNorm layers) is a dict of arrays the hospital holds. Neither lives in
the strategy object, so saving a run is saving those dicts (``state_dict``).

Every uploaded vector rides the same privacy and encryption pipeline: a hospital's
named uploads are concatenated, clipped together, noised, weighted and encrypted as
one vector, and split again after the secure sum.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn

from fedray.strategies.traits import StrategyTraits, traits_of

State = dict[str, np.ndarray]


@dataclass(frozen=True)
class Upload:
    """One named vector a hospital sends.

    ``mean``: the weighted mean over the hospitals that arrived (FedAvg's size
    weights, or privacy's fixed weights). ``over_all``: the sum over arrivals divided
    by the number of hospitals N, whoever was sampled (SCAFFOLD's control variates).
    """

    name: str
    average: str = "mean"  # "mean" | "over_all"
    size: str = "model"  # "model": the whole flat vector; "trainable": parameters only


MODEL_UPLOAD = (Upload("model"),)


@dataclass
class ClientRound:
    """What a hospital's local training sees of the strategy in one round."""

    global_params: list[torch.Tensor]  # the broadcast model's trainable parameters
    broadcast: State  # extra server vectors (SCAFFOLD's c)
    state: State  # this hospital's own strategy state, updated in place
    cache: dict = field(default_factory=dict)  # per-round tensors a hook builds once
    number: int = 0  # the round's number (audit canary clients draw their update by it)


class Strategy(ABC):
    name: str = "base"
    uploads: tuple[Upload, ...] = MODEL_UPLOAD
    # its local step has a form over parameters stacked across hospitals
    # (fedray/batched.py): plain SGD plus ``stacked_terms``
    trains_stacked: bool = False

    @property
    def traits(self) -> StrategyTraits:
        """What the rest of fedray may know about this strategy (fedray/strategies/traits.py)."""
        return traits_of(self.name)

    # ---- server ----
    def init_server_state(self, global_vector: np.ndarray, num_trainable: int) -> State:
        return {}

    def broadcast(self, server_state: State) -> State:
        """Vectors every hospital needs besides the global model."""
        return {}

    @abstractmethod
    def server_update(self, global_vector: np.ndarray, means: State, server_state: State
                      ) -> tuple[np.ndarray, State]:
        """The next global vector and server state from the averaged uploads."""

    # ---- client ----
    def init_client_state(self, global_vector: np.ndarray, num_trainable: int) -> State:
        return {}

    def gradient_terms(self, params: list[torch.Tensor], round_: ClientRound
                       ) -> list[torch.Tensor] | None:
        """Data-independent terms added to each step's gradient (FedProx's proximal
        pull, SCAFFOLD's correction). Added after DP-SGD's clip and noise: they touch
        no record, so they are post-processing and cost no privacy."""
        return None

    def stacked_terms(self, params: dict[str, torch.Tensor], anchors: dict[str, torch.Tensor],
                      rounds: Sequence[ClientRound], cache: dict
                      ) -> dict[str, torch.Tensor] | None:
        """:meth:`gradient_terms` for parameters stacked over hospitals (first axis):
        row h is pulled towards its row of ``anchors`` (its start this round) and sees
        its own ``rounds[h]`` (broadcast and state); ``cache`` lives for one call of
        ``train_batched``, for terms fixed over the round."""
        return None

    def client_uploads(self, delta: np.ndarray, round_: ClientRound, *, steps: int, lr: float,
                       num_trainable: int) -> State:
        """The named vectors to upload, from the model's change this round."""
        return {"model": delta}

    def local_positions(self, model: nn.Module) -> np.ndarray | None:
        """Flat-vector positions each hospital keeps for itself (FedBN), or None."""
        return None


OWN_VALUES = "own_values"  # client-state key: a hospital's values at its local positions


def own_values(state: State) -> np.ndarray | None:
    """The values a hospital keeps at its local positions (FedBN, local), if any yet."""
    return state.get(OWN_VALUES)


def with_own_values(vector: np.ndarray, state: State, positions: np.ndarray | None
                    ) -> np.ndarray:
    """The model a hospital starts from: the broadcast with its own values at the
    positions it keeps. Before it has trained, its own values are the broadcast's
    there (the server never moves those positions, ``UploadLayout.kept``, so they still
    hold the initial model's values, noise-free)."""
    if positions is None:
        return vector
    vector = np.array(vector)
    if OWN_VALUES not in state:
        state[OWN_VALUES] = vector[positions].copy()
    vector[positions] = state[OWN_VALUES]
    return vector


def keep_own_values(trained: np.ndarray, delta: np.ndarray, state: State,
                    positions: np.ndarray | None) -> None:
    """After training: the hospital keeps its values at its positions and uploads
    nothing there (their change is zeroed in ``delta``, in place)."""
    if positions is None:
        return
    state[OWN_VALUES] = trained[positions].copy()
    delta[positions] = 0.0


def upload_sizes(strategy: Strategy, *, size: int, num_trainable: int) -> list[int]:
    return [size if u.size == "model" else num_trainable for u in strategy.uploads]


def concat_uploads(strategy: Strategy, uploads: State) -> np.ndarray:
    return np.concatenate([np.asarray(uploads[u.name], dtype=np.float64)
                           for u in strategy.uploads])


def split_uploads(strategy: Strategy, vector: np.ndarray, sizes: list[int]) -> State:
    bounds = np.cumsum([0, *sizes])
    return {u.name: vector[bounds[i]:bounds[i + 1]] for i, u in enumerate(strategy.uploads)}
