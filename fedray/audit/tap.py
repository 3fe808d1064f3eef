"""audit.inversion's and audit.membership's seats at the aggregator: what the
attacker there received.

The aggregator hands every round's arrivals to its tap, and the change it released;
the tap keeps the target hospital's first update and the global model it started from,
and the first released change of the global model (under CKKS the decrypted sum is
what the aggregator sees), and ``view`` runs the inversions where the attacker sits.
Without audit.inversion the tap is a null one that keeps nothing. The upload tap
keeps the target's latest upload for the membership attack on a single update."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from fedray.audit.dlg import dlg_invert
from fedray.audit.inversion import invert_first_layer
from fedray.messages import Update


class NoTap:
    """No inversion audit: the aggregator keeps nothing of what it received."""

    def observe(self, updates: list[Update], global_vector: np.ndarray) -> None:
        """Nothing to keep."""

    def observe_release(self, before: np.ndarray, after: np.ndarray) -> None:
        """Nothing to keep."""

    def view(self) -> dict[str, Any]:
        return {"view": "nothing received", "candidates": None}


class InversionTap:
    """Keeps the target hospital's first update as the aggregator received it."""

    def __init__(self, *, target: int, model: torch.nn.Module, batch_size: int,
                 dlg_iterations: int, seed: int) -> None:
        self.target = target
        self.model, self.batch_size = model, batch_size
        self.dlg_iterations, self.seed = dlg_iterations, seed
        first = next(m for m in model.modules() if isinstance(m, torch.nn.Linear))
        self.first_layer = (first.in_features, first.out_features)
        self.payload: Any = None
        self.start: np.ndarray | None = None  # the global model it started from
        self.released: np.ndarray | None = None  # the first released change of the model

    def observe(self, updates: list[Update], global_vector: np.ndarray) -> None:
        if self.payload is None:
            self.payload = next((u.payload for u in updates if u.hospital == self.target),
                                None)
            self.start = np.array(global_vector)

    def observe_release(self, before: np.ndarray, after: np.ndarray) -> None:
        if self.released is None:
            self.released = np.asarray(after, dtype=np.float64) - np.asarray(before)

    def view(self) -> dict[str, Any]:
        """Analytic inversion of the target's first update (candidate records), and
        optimisation-based inversion beside it; nothing when it was a ciphertext."""
        payload = self.payload
        if payload is None:
            return NoTap().view()
        if any(isinstance(m, torch.nn.modules.batchnorm._BatchNorm) for m in self.model.modules()):
            return {"view": "plaintext" if isinstance(payload, np.ndarray) else "ciphertext",
                    "candidates": None, "not_applicable":
                    "the first layer feeds a BatchNorm, which cancels its bias gradient"}
        inputs, outputs = self.first_layer
        # the released sum is there whatever the encryption: what it inverts to
        released = (None if self.released is None else
                    invert_first_layer(self.released, inputs=inputs, outputs=outputs))
        if not isinstance(payload, np.ndarray):
            return {"view": "ciphertext", "candidates": None, "released_candidates": released}
        dlg = (dlg_invert(self.model, self.start, payload, num_records=self.batch_size,
                          num_features=inputs, iterations=self.dlg_iterations, seed=self.seed)
               if self.dlg_iterations and self.start is not None else None)
        return {"view": "plaintext",
                "candidates": invert_first_layer(payload, inputs=inputs, outputs=outputs),
                "dlg_candidates": dlg, "released_candidates": released}


class NoUploadTap:
    """No single-update membership attack: nothing kept."""

    def observe(self, updates: list[Update], global_vector: np.ndarray,
                weights: dict[int, float], round_: int) -> None:
        """Nothing to keep."""

    def view(self) -> dict[str, Any]:
        return {"view": "nothing received", "local_model": None}


class UploadTap:
    """audit.membership's seat at the aggregator: the target hospital's latest upload and
    the global model it started from. Where the upload arrives in the clear, the
    aggregator rebuilds the target's own model of that round (start + upload ÷ its
    public round weight, the payload being pre-scaled by it), which a membership attack
    then scores: what one visible update gives away."""

    def __init__(self, target: int) -> None:
        self.target = target
        self.latest: tuple[Any, np.ndarray, float, int] | None = None

    def observe(self, updates: list[Update], global_vector: np.ndarray,
                weights: dict[int, float], round_: int) -> None:
        mine = next((u.payload for u in updates if u.hospital == self.target), None)
        if mine is not None and weights.get(self.target):
            self.latest = (mine, np.asarray(global_vector), weights[self.target], round_)

    def view(self) -> dict[str, Any]:
        if self.latest is None:
            return NoUploadTap().view()
        payload, start, weight, round_ = self.latest
        if not isinstance(payload, np.ndarray):
            return {"view": "ciphertext", "local_model": None, "round": round_}
        local = start + np.asarray(payload, dtype=np.float64)[:len(start)] / weight
        return {"view": "plaintext", "local_model": local, "round": round_}


def make_tap(*, inversion: bool, target: int, model: torch.nn.Module, batch_size: int,
             dlg_iterations: int, seed: int) -> NoTap | InversionTap:
    if not inversion:
        return NoTap()
    return InversionTap(target=target, model=model, batch_size=batch_size,
                        dlg_iterations=dlg_iterations, seed=seed)


def make_upload_tap(*, membership: bool, target: int) -> NoUploadTap | UploadTap:
    return UploadTap(target) if membership else NoUploadTap()
