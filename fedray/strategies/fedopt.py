"""Adaptive server optimisers (Reddi et al., 2021): FedAdam, FedYogi, FedAdagrad.

Hospitals run plain local SGD; the server treats the averaged update Δ as a
pseudo-gradient (a step direction) and applies an adaptive step with its own
moments, which live in the server state:

    m ← β1·m + (1 − β1)·Δ
    v ← β2·v + (1 − β2)·Δ²                  (Adam)
    v ← v − (1 − β2)·Δ²·sign(v − Δ²)        (Yogi)
    v ← v + Δ²                              (Adagrad)
    x ← x + η·m / (√v + τ)

on the model's parameters; BatchNorm running statistics (buffers) move by the plain
average. Under encryption the server optimiser only ever sees the decrypted aggregate.
"""

from __future__ import annotations

import numpy as np

from fedray.strategies.base import State, Strategy


def second_moment(rule: str, v: np.ndarray, delta: np.ndarray, beta2: float) -> np.ndarray:
    squared = delta * delta
    if rule == "adam":
        return beta2 * v + (1.0 - beta2) * squared
    if rule == "yogi":
        return v - (1.0 - beta2) * squared * np.sign(v - squared)
    return v + squared  # adagrad


class FedOpt(Strategy):
    rule = "adam"
    trains_stacked = True  # the adaptive rule is the server's; hospitals run plain SGD

    def __init__(self, *, server_lr: float, beta1: float, beta2: float, tau: float) -> None:
        self.server_lr, self.beta1, self.beta2, self.tau = server_lr, beta1, beta2, tau

    def init_server_state(self, global_vector: np.ndarray, num_trainable: int) -> State:
        # both moments start at zero, as in FLamby's FedOpt (no bias correction); they
        # cover the parameters only: BatchNorm running statistics are averaged plainly
        return {"m": np.zeros(num_trainable), "v": np.zeros(num_trainable)}

    def server_update(self, global_vector: np.ndarray, means: State, server_state: State
                      ) -> tuple[np.ndarray, State]:
        n = server_state["m"].shape[0]
        delta = means["model"]
        m = self.beta1 * server_state["m"] + (1.0 - self.beta1) * delta[:n]
        v = second_moment(self.rule, server_state["v"], delta[:n], self.beta2)
        step = np.concatenate([self.server_lr * m / (np.sqrt(v) + self.tau), delta[n:]])
        return (global_vector + step).astype(np.float32), {"m": m, "v": v}


class FedAdam(FedOpt):
    name, rule = "fedadam", "adam"


class FedYogi(FedOpt):
    name, rule = "fedyogi", "yogi"


class FedAdagrad(FedOpt):
    name, rule = "fedadagrad", "adagrad"
