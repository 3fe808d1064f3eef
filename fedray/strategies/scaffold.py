"""SCAFFOLD (Karimireddy et al., 2020), option II: control variates correct each
hospital's drift. A hospital steps along g − cᵢ + c; afterwards
cᵢ⁺ = cᵢ − c + (x − yᵢ)/(K·η), and it uploads its model change and Δcᵢ = cᵢ⁺ − cᵢ.
The server moves x by ``server_lr`` times the mean model change and c by the sum of
the Δcᵢ over N (all hospitals, sampled or not). Both uploads ride the same clip,
noise and encryption pipeline."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from fedray.strategies.base import ClientRound, State, Strategy, Upload


def split_like(vector: np.ndarray, params: list[torch.Tensor]) -> list[torch.Tensor]:
    out, start = [], 0
    for p in params:
        out.append(torch.as_tensor(vector[start:start + p.numel()], dtype=p.dtype,
                                   device=p.device).view_as(p))
        start += p.numel()
    return out


def control_variate_update(c_local: np.ndarray, c_global: np.ndarray, param_delta: np.ndarray,
                           *, steps: int, lr: float) -> np.ndarray:
    """Option II: cᵢ⁺ = cᵢ − c + (x − yᵢ)/(K·η), with param_delta = yᵢ − x."""
    return c_local - c_global - param_delta / (steps * lr)


class Scaffold(Strategy):
    name = "scaffold"
    trains_stacked = True  # its correction c − cᵢ is a constant row per hospital

    def __init__(self, *, server_lr: float = 1.0, control_weights: str = "uniform") -> None:
        """``control_weights``: ``uniform``, the paper's c ← c + Σ Δcᵢ / N (every
        hospital counts alike); ``size``, c moves by the size-weighted mean of the Δcᵢ,
        so c stays the size-weighted mean of the cᵢ, as FLamby's implementation keeps it."""
        self.server_lr = server_lr
        average = "over_all" if control_weights == "uniform" else "mean"
        self.uploads = (Upload("model"), Upload("control", average=average, size="trainable"))

    def init_server_state(self, global_vector: np.ndarray, num_trainable: int) -> State:
        return {"control": np.zeros(num_trainable)}

    def broadcast(self, server_state: State) -> State:
        return {"control": server_state["control"]}

    def server_update(self, global_vector: np.ndarray, means: State, server_state: State
                      ) -> tuple[np.ndarray, State]:
        new_global = (global_vector + self.server_lr * means["model"]).astype(np.float32)
        return new_global, {"control": server_state["control"] + means["control"]}

    def init_client_state(self, global_vector: np.ndarray, num_trainable: int) -> State:
        return {"control": np.zeros(num_trainable)}

    def gradient_terms(self, params: list[torch.Tensor], round_: ClientRound
                       ) -> list[torch.Tensor] | None:
        correction = round_.cache.get("correction")
        if correction is None:  # c − cᵢ is fixed for the round: build it once
            correction = split_like(round_.broadcast["control"] - round_.state["control"],
                                    params)
            round_.cache["correction"] = correction
        return correction

    def stacked_terms(self, params: dict[str, torch.Tensor], anchors: dict[str, torch.Tensor],
                      rounds: Sequence[ClientRound], cache: dict
                      ) -> dict[str, torch.Tensor] | None:
        if "correction" not in cache:  # (hospitals × values), fixed for the round
            rows = np.stack([r.broadcast["control"] - r.state["control"] for r in rounds])
            correction, offset = {}, 0
            for name, p in params.items():
                size = p[0].numel()
                correction[name] = torch.as_tensor(rows[:, offset:offset + size],
                                                   dtype=p.dtype).view_as(p)
                offset += size
            cache["correction"] = correction
        return cache["correction"]

    def client_uploads(self, delta: np.ndarray, round_: ClientRound, *, steps: int, lr: float,
                       num_trainable: int) -> State:
        c_local = round_.state["control"]
        c_new = control_variate_update(c_local, round_.broadcast["control"],
                                       delta[:num_trainable], steps=steps, lr=lr)
        round_.state["control"] = c_new
        return {"model": delta, "control": c_new - c_local}
