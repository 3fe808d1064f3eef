"""Analytic gradient inversion of a first fully connected layer with bias.

For a record x through y = Wx + b, the loss gradient of neuron j is dL/dW_j = g_j·x
and dL/db_j = g_j, so W_j's update divided by b_j's gives x back exactly when the
update comes from one record (Phong et al., 2017; Geiping et al., 2020). An update of
several records or steps gives, per neuron, a weighted mean of the records it saw;
noise added to the update (local DP) perturbs both and the ratio falls apart.
"""

from __future__ import annotations

from typing import Any

import numpy as np

MIN_BIAS_SHARE = 1e-6  # neurons whose bias moved less than this (relative) carry nothing


def invert_first_layer(update: np.ndarray, *, inputs: int, outputs: int) -> np.ndarray:
    """Candidate records (one per neuron that moved) from a flat update whose first
    ``outputs × inputs`` values are the first layer's weight and the next ``outputs``
    its bias (torch's order for nn.Linear)."""
    weight = np.asarray(update[: outputs * inputs], dtype=np.float64).reshape(outputs, inputs)
    bias = np.asarray(update[outputs * inputs: outputs * inputs + outputs], dtype=np.float64)
    moved = np.abs(bias) > MIN_BIAS_SHARE * max(float(np.max(np.abs(bias))), 1e-300)
    return weight[moved] / bias[moved, None]


def score_reconstruction(candidates: np.ndarray, records: np.ndarray) -> dict[str, Any]:
    """How close the attacker came: for its best candidate (the one nearest to any true
    record), the cosine similarity and the relative L2 error to that record, and how
    many records were recovered to 1e-3 relative error."""
    if len(candidates) == 0:
        return {"candidates": 0, "best_cosine": None, "best_relative_error": None,
                "records_recovered": 0}
    c = candidates / np.maximum(np.linalg.norm(candidates, axis=1, keepdims=True), 1e-300)
    r = records / np.maximum(np.linalg.norm(records, axis=1, keepdims=True), 1e-300)
    cosine = c @ r.T
    errors = (np.linalg.norm(candidates[:, None, :] - records[None, :, :], axis=2)
              / np.maximum(np.linalg.norm(records, axis=1)[None, :], 1e-300))
    best = np.unravel_index(int(np.argmin(errors)), errors.shape)
    return {"candidates": len(candidates),
            "best_cosine": float(np.max(cosine)),
            "best_relative_error": float(errors[best]),
            "records_recovered": int(np.sum(np.min(errors, axis=0) < 1e-3))}
