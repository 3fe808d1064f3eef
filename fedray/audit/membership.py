"""Membership inference on a released model, from per-record losses.

Two attacks, no shadow models: the loss threshold (Yeom et al., 2018: training
records have lower loss) and a calibrated likelihood-ratio-style score, the drop of a
record's loss from the public initial model to the released one (difficulty
calibration, Watson et al., 2022): easy records score low under both and stop
masquerading as members.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from sklearn.metrics import roc_auc_score, roc_curve


def attack_summary(is_member: np.ndarray, scores: np.ndarray) -> dict[str, float]:
    """ROC-AUC and advantage (the best TPR − FPR over thresholds) of ``scores``
    (higher: more likely a member)."""
    labels = np.asarray(is_member, dtype=int)
    fpr, tpr, _ = roc_curve(labels, scores)
    return {"auc": float(roc_auc_score(labels, scores)),
            "advantage": float(np.max(tpr - fpr))}


def membership_attacks(is_member: np.ndarray, loss_final: np.ndarray,
                       loss_initial: np.ndarray) -> dict[str, Any]:
    return {"members": int(np.sum(is_member)), "non_members": int(np.sum(~is_member)),
            "loss": attack_summary(is_member, -loss_final),
            "calibrated": attack_summary(is_member, loss_initial - loss_final)}


def every_round_membership(is_member: np.ndarray, loss_initial: np.ndarray,
                           losses: list[np.ndarray]) -> dict[str, Any]:
    """A model user who saw every round's global model: the calibrated score of each
    round's model (the best round's AUC, and which round), and one score over all of
    them, each record's largest loss drop from the initial model in any round."""
    aucs = [attack_summary(is_member, loss_initial - loss)["auc"] for loss in losses]
    best = int(np.argmax(aucs))
    drops = loss_initial[None, :] - np.stack(losses)
    return {"rounds": len(losses), "best_round": best + 1, "best_round_auc": aucs[best],
            "largest_drop": attack_summary(is_member, drops.max(axis=0))}
