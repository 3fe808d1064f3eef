"""Test statistics a hospital may share (counts and score histograms, never records)
and the pure maths that combines them into per-hospital and pooled metrics."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from itertools import pairwise

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
    # each test record's score bin (of SCORE_BINS), sorted: the score histogram of the
    # positives and of the negatives, sparse (a hospital with 3 test records sends 3
    # numbers, not 2 × 1,000 counts; tuples pickle ~10× faster than small arrays)
    positive_bins: tuple[int, ...] | None
    negative_bins: tuple[int, ...] | None

    @property
    def accuracy(self) -> float:
        return self.correct / self.num

    @property
    def loss(self) -> float:
        return self.loss_sum / self.num


def evaluate_model(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> EvalStats:
    return evaluate_many(model, x, y, [0, len(y)])[0]


def evaluate_many(model: nn.Module, x: torch.Tensor, y: torch.Tensor,
                  bounds: Sequence[int] | np.ndarray) -> list[EvalStats]:
    """One model on many hospitals' test splits at once: rows ``bounds[h]`` to
    ``bounds[h + 1]`` of ``x``, ``y`` are hospital h's. One forward pass; each
    hospital's counts, loss, exact AUC and score bins are its own rows' only."""
    bounds = np.asarray(bounds, dtype=np.int64)
    sizes = np.diff(bounds)
    hospitals = len(sizes)
    model.eval()
    with torch.no_grad():
        logits = model(x)
        losses = loss_fn(logits, y, reduction="none")
        labels, scores = predict(logits)
    owner = np.repeat(np.arange(hospitals), sizes)
    truth = y.cpu().numpy()
    correct = np.bincount(owner, weights=(labels == y).cpu().numpy(), minlength=hospitals)
    loss_sums = np.bincount(owner, weights=losses.double().cpu().numpy(), minlength=hospitals)
    if logits.shape[1] > 2:
        return [EvalStats(int(sizes[h]), int(correct[h]), float(loss_sums[h]), None, None, None)
                for h in range(hospitals)]
    s = scores.cpu().numpy()
    aucs = segment_auc(s, truth, bounds)
    bins = score_bins(s)
    return [EvalStats(int(sizes[h]), int(correct[h]), float(loss_sums[h]), aucs[h],
                      tuple(np.sort(bins[lo:hi][truth[lo:hi] == 1]).tolist()),
                      tuple(np.sort(bins[lo:hi][truth[lo:hi] == 0]).tolist()))
            for h, (lo, hi) in enumerate(pairwise(bounds))]


def score_bins(scores: np.ndarray) -> np.ndarray:
    """Each score's bin among SCORE_BINS equal bins of [0, 1] (the last one closed),
    as ``np.histogram`` assigns it."""
    edges = np.linspace(0.0, 1.0, SCORE_BINS + 1)
    found = np.searchsorted(edges, np.asarray(scores, dtype=np.float64), side="right") - 1
    return np.clip(found, 0, SCORE_BINS - 1).astype(np.int16)


def histogram(bins: Sequence[int] | np.ndarray) -> np.ndarray:
    return np.bincount(np.asarray(bins, dtype=np.int64), minlength=SCORE_BINS)


def _bins_of(counts: np.ndarray) -> tuple[int, ...]:
    return tuple(np.repeat(np.arange(SCORE_BINS), counts).tolist())


def segment_auc(scores: np.ndarray, labels: np.ndarray, bounds: np.ndarray
                ) -> list[float | None]:
    """:func:`exact_auc` of every segment ``bounds[h]:bounds[h + 1]`` at once (average
    ranks within each segment's ties)."""
    sizes = np.diff(bounds)
    owner = np.repeat(np.arange(len(sizes)), sizes)
    order = np.lexsort((scores, owner))  # by segment, then score (segments stay in place)
    sorted_scores, sorted_owner = scores[order], owner[order]
    new_run = np.r_[True, (sorted_scores[1:] != sorted_scores[:-1])
                    | (sorted_owner[1:] != sorted_owner[:-1])]
    starts = np.flatnonzero(new_run)
    ends = np.r_[starts[1:], len(scores)]
    run_of = np.cumsum(new_run) - 1
    rank = (starts + ends + 1)[run_of] / 2.0 - bounds[:-1][sorted_owner]
    positive = labels[order] == 1
    rank_sums = np.bincount(sorted_owner, weights=rank * positive, minlength=len(sizes))
    n_pos = np.bincount(owner, weights=labels == 1, minlength=len(sizes))
    n_neg = sizes - n_pos
    return [None if p == 0 or q == 0 else float((r - p * (p + 1) / 2.0) / (p * q))
            for r, p, q in zip(rank_sums, n_pos, n_neg)]


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
    if stats and all(s.positive_bins is not None for s in stats):
        # evaluate_many gives both bins or neither
        pos = histogram([b for s in stats for b in s.positive_bins or ()])
        neg = histogram([b for s in stats for b in s.negative_bins or ()])
        auc = auc_from_histograms(pos, neg)
    return EvalStats(
        num=sum(s.num for s in stats),
        correct=sum(s.correct for s in stats),
        loss_sum=sum(s.loss_sum for s in stats),
        auc=auc, positive_bins=None if pos is None else _bins_of(pos),
        negative_bins=None if neg is None else _bins_of(neg),
    )


def fairness(accuracies: Sequence[float]) -> dict[str, float]:
    """How evenly the model serves the hospitals: the worst one's accuracy, the spread
    (population std over hospitals) and the gap between the best and the worst."""
    values = np.asarray(accuracies, dtype=np.float64)
    return {"worst_client_accuracy": float(values.min()),
            "client_accuracy_std": float(values.std()),
            "client_accuracy_gap": float(values.max() - values.min())}
