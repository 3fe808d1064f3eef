"""Test statistics a hospital may share (counts and score histograms, never records)
and the pure maths that combines them into per-hospital and pooled metrics."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from fedray.models import loss_fn, predict

SCORE_BINS = 1000  # pooled ROC-AUC from binned scores: exact up to ties within 1e-3


@dataclass(frozen=True)
class EvalStats:
    num: int
    correct: int
    loss_sum: float
    auc: float | None  # exact, on this hospital's own split (binary tasks only)
    positive_hist: np.ndarray | None  # counts of positive-class scores per bin
    negative_hist: np.ndarray | None

    @property
    def accuracy(self) -> float:
        return self.correct / self.num

    @property
    def loss(self) -> float:
        return self.loss_sum / self.num


def evaluate_model(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> EvalStats:
    model.eval()
    with torch.no_grad():
        logits = model(x)
        loss_sum = float(loss_fn(logits, y, reduction="sum"))
        labels, scores = predict(logits)
    correct = int((labels == y).sum())
    binary = logits.shape[1] <= 2
    auc = pos = neg = None
    if binary:
        s, t = scores.cpu().numpy(), y.cpu().numpy()
        auc = exact_auc(s, t)
        edges = np.linspace(0.0, 1.0, SCORE_BINS + 1)
        pos = np.histogram(s[t == 1], bins=edges)[0]
        neg = np.histogram(s[t == 0], bins=edges)[0]
    return EvalStats(len(y), correct, loss_sum, auc, pos, neg)


def exact_auc(scores: np.ndarray, labels: np.ndarray) -> float | None:
    """ROC-AUC as the Mann-Whitney statistic over average ranks (ties count half)."""
    n_pos = int(labels.sum())
    n_neg = len(labels) - n_pos
    if n_pos == 0 or n_neg == 0:
        return None
    order = np.argsort(scores, kind="mergesort")
    sorted_scores = scores[order]
    ranks = np.empty(len(scores), dtype=np.float64)
    # average rank within each run of tied scores
    starts = np.flatnonzero(np.r_[True, sorted_scores[1:] != sorted_scores[:-1]])
    ends = np.r_[starts[1:], len(scores)]
    for start, end in zip(starts, ends):
        ranks[order[start:end]] = (start + end + 1) / 2.0
    rank_sum = ranks[labels == 1].sum()
    return float((rank_sum - n_pos * (n_pos + 1) / 2.0) / (n_pos * n_neg))


def auc_from_histograms(positive: np.ndarray, negative: np.ndarray) -> float | None:
    """ROC-AUC from per-bin score counts: P(score+ > score-) + P(tie)/2 over bins."""
    n_pos, n_neg = positive.sum(), negative.sum()
    if n_pos == 0 or n_neg == 0:
        return None
    negatives_below = np.cumsum(negative) - negative
    wins = float(np.sum(positive * negatives_below)) + 0.5 * float(np.sum(positive * negative))
    return wins / (float(n_pos) * float(n_neg))


def pooled(stats: Sequence[EvalStats]) -> EvalStats:
    """The global model on the union of the hospitals' test splits."""
    pos: np.ndarray | None = None
    neg: np.ndarray | None = None
    auc = None
    if all(s.positive_hist is not None for s in stats):
        # evaluate_model makes both histograms or neither
        pos = np.sum([s.positive_hist for s in stats if s.positive_hist is not None], axis=0)
        neg = np.sum([s.negative_hist for s in stats if s.negative_hist is not None], axis=0)
        auc = auc_from_histograms(pos, neg)
    return EvalStats(
        num=sum(s.num for s in stats),
        correct=sum(s.correct for s in stats),
        loss_sum=sum(s.loss_sum for s in stats),
        auc=auc, positive_hist=pos, negative_hist=neg,
    )


def fairness(accuracies: Sequence[float]) -> dict[str, float]:
    """How evenly the model serves the hospitals: the worst one's accuracy, the spread
    (population std over hospitals) and the gap between the best and the worst."""
    values = np.asarray(accuracies, dtype=np.float64)
    return {"worst_client_accuracy": float(values.min()),
            "client_accuracy_std": float(values.std()),
            "client_accuracy_gap": float(values.max() - values.min())}
