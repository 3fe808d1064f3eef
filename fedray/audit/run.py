"""The audit of one run, from each attacker's vantage point (docs/privacy.md,
"Auditing"): the aggregator inverts what it received of the target hospital's first
update (fedray/runtime/actors.py: AggregatorWorker.inversion_view), and a model user
attacks the released global model (membership, canaries). The auditor alone holds the
truth the attacks are scored against: it rebuilds the hospitals' records here, in the
driver, once the run is over."""

from __future__ import annotations

import dataclasses
from typing import Any, Optional

import numpy as np
import torch

from fedray.audit.canary import audit_guesses, epsilon_lower_bound, make_canaries
from fedray.audit.inversion import score_reconstruction
from fedray.audit.membership import membership_attacks
from fedray.data import HospitalData, build_hospitals
from fedray.models import build_model, load_flat, loss_fn


def canaries_for(config: Any, x_train: np.ndarray, num_classes: int
                 ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    return make_canaries(x_train, num_classes=num_classes, count=config.audit.canaries,
                         seed=config.seed)


def with_canaries(config: Any, index: int, data: HospitalData, num_classes: int
                  ) -> HospitalData:
    """audit.canary: the target hospital trains on its records plus the included
    canaries (fedray/audit/canary.py). Planned sizes, weights, an epoch's steps and
    DP-SGD's sample rate and batch denominator stay those of its own records (the
    hospital gets ``planned_train``), so the mechanism is the one the accountant priced."""
    if not (config.audit.canary and index == config.audit.target):
        return data
    features, labels, included = canaries_for(config, data.x_train, num_classes)
    return dataclasses.replace(
        data, x_train=np.concatenate([data.x_train, features[included]]),
        y_train=np.concatenate([data.y_train, labels[included].astype(data.y_train.dtype)]))


def run_audit(config: Any, federation: Any, initial: np.ndarray, final: np.ndarray, *,
              inversion_view: Optional[dict[str, Any]], epsilon: Optional[float],
              delta: Optional[float], epsilon_covering: Optional[float] = None
              ) -> dict[str, Any]:
    """``epsilon``: the accountant's ε of the party the canaries sit in;
    ``epsilon_covering``: the ε that covers one canary record under the mode's relation
    (docs/privacy.md, "Auditing"; ``epsilon`` when None)."""
    audit = config.audit
    hospitals = build_hospitals(config.dataset, list(federation.hospitals), seed=config.seed)
    model = build_model(config.model, num_features=federation.num_features,
                        num_classes=federation.num_classes)

    def losses(vector: np.ndarray, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        load_flat(model, vector)
        model.eval()
        with torch.no_grad():
            return loss_fn(model(torch.as_tensor(x)), torch.as_tensor(y),
                           reduction="none").numpy().astype(np.float64)

    result: dict[str, Any] = {"target_hospital": hospitals[audit.target].name}
    if audit.membership:
        x = np.concatenate([h.x_train for h in hospitals] + [h.x_test for h in hospitals])
        y = np.concatenate([h.y_train for h in hospitals] + [h.y_test for h in hospitals])
        members = np.zeros(len(x), dtype=bool)
        members[: sum(len(h.x_train) for h in hospitals)] = True
        result["membership"] = membership_attacks(members, losses(final, x, y),
                                                  losses(initial, x, y))
    if audit.canary:
        target = hospitals[audit.target]
        features, labels, included = canaries_for(config, target.x_train,
                                                  federation.num_classes)
        scores = losses(initial, features, labels) - losses(final, features, labels)
        guesses = audit_guesses(scores, included, len(features) // 4)
        audit_delta = delta if delta is not None else 1e-5
        result["canary"] = {
            "canaries": len(features), "included": int(included.sum()), **guesses,
            "confidence": audit.confidence, "delta": audit_delta,
            "epsilon_lower_bound": epsilon_lower_bound(
                canaries=len(features), delta=audit_delta, confidence=audit.confidence,
                **guesses),
            "epsilon_accountant": epsilon,
            "epsilon_covering": epsilon if epsilon_covering is None else epsilon_covering,
        }
    if audit.inversion:
        view = inversion_view or {"view": "nothing received"}
        scored: dict[str, Any] = {"view": view["view"]}
        if view.get("not_applicable"):
            scored["not_applicable"] = view["not_applicable"]
        if view.get("candidates") is not None:
            # scored against what the target trained on (its included canaries too)
            records = with_canaries(config, audit.target, hospitals[audit.target],
                                    federation.num_classes).x_train
            scored.update(score_reconstruction(view["candidates"], records))
            if view.get("dlg_candidates") is not None:
                scored["dlg"] = score_reconstruction(view["dlg_candidates"], records)
        result["inversion"] = scored
    return result
