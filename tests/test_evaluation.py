from itertools import pairwise

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.metrics import roc_auc_score

from fedray.evaluation import auc_from_histograms, evaluate_model, exact_auc, pooled


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 20), st.booleans()), min_size=2, max_size=60))
def test_exact_auc_matches_sklearn_including_ties(pairs):
    scores = np.array([s / 20 for s, _ in pairs])
    labels = np.array([int(b) for _, b in pairs])
    if labels.min() == labels.max():
        assert exact_auc(scores, labels) is None
        return
    assert np.isclose(exact_auc(scores, labels), roc_auc_score(labels, scores))


def test_histogram_auc_matches_exact_on_fine_bins():
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 2, 500)
    scores = np.clip(0.5 + 0.2 * (labels - 0.5) + 0.2 * rng.standard_normal(500), 0, 1)
    edges = np.linspace(0, 1, 1001)
    pos = np.histogram(scores[labels == 1], edges)[0]
    neg = np.histogram(scores[labels == 0], edges)[0]
    assert abs(auc_from_histograms(pos, neg) - roc_auc_score(labels, scores)) < 2e-3


def test_pooled_counts_and_auc_over_hospitals():
    torch.manual_seed(0)
    model = torch.nn.Linear(3, 1)
    x = torch.randn(200, 3)
    y = (x[:, 0] > 0).long()
    whole = evaluate_model(model, x, y)
    parts = [evaluate_model(model, x[:120], y[:120]), evaluate_model(model, x[120:], y[120:])]
    merged = pooled(parts)
    assert merged.num == 200 and merged.correct == whole.correct
    assert np.isclose(merged.loss, whole.loss, rtol=1e-5)
    assert abs(merged.auc - whole.auc) < 2e-3


def test_multiclass_has_no_auc():
    model = torch.nn.Linear(3, 4)
    stats = evaluate_model(model, torch.randn(10, 3), torch.randint(0, 4, (10,)))
    assert stats.auc is None and stats.positive_bins is None
    assert 0 <= stats.accuracy <= 1


def test_fairness_names_the_worst_hospital_the_spread_and_the_gap():
    from fedray.evaluation import fairness

    result = fairness([0.9, 0.5, 0.7])
    assert result == {"worst_client_accuracy": 0.5,
                      "client_accuracy_std": pytest.approx(np.std([0.9, 0.5, 0.7])),
                      "client_accuracy_gap": pytest.approx(0.4)}


@settings(max_examples=30, deadline=None)
@given(st.lists(st.tuples(st.integers(1, 6), st.integers(0, 2**16)), min_size=1, max_size=12),
       st.integers(1, 3))
def test_many_hospitals_at_once_are_each_evaluated_alone(hospitals, outputs):
    """evaluate_many's segment maths (counts, float64 loss sums, exact AUC with ties,
    score bins) against each hospital's own split evaluated by itself."""
    from fedray.evaluation import evaluate_many

    sizes = [n for n, _ in hospitals]
    g = torch.Generator().manual_seed(hospitals[0][1])
    x = torch.randint(-2, 3, (sum(sizes), 3), generator=g).float()  # coarse: tied scores
    y = torch.randint(0, max(outputs, 2), (sum(sizes),), generator=g)
    model = torch.nn.Linear(3, outputs)
    bounds = np.r_[0, np.cumsum(sizes)]
    together = evaluate_many(model, x, y, bounds)
    for (lo, hi), stats in zip(pairwise(bounds), together):
        alone = evaluate_many(model, x[lo:hi], y[lo:hi], [0, hi - lo])[0]
        assert (stats.num, stats.correct) == (alone.num, alone.correct)
        assert stats.loss_sum == pytest.approx(alone.loss_sum, rel=1e-6)
        truth = y[lo:hi].numpy()
        expected_auc = None
        if outputs <= 2:
            logits = model(x[lo:hi]).detach()
            scores = (torch.sigmoid(logits[:, 0]) if outputs == 1
                      else torch.softmax(logits, 1)[:, 1]).numpy()
            expected_auc = exact_auc(scores, truth)
            edges = np.linspace(0, 1, 1001)
            from fedray.evaluation import histogram

            assert np.array_equal(histogram(stats.positive_bins),
                                  np.histogram(scores[truth == 1], edges)[0])
            assert np.array_equal(histogram(stats.negative_bins),
                                  np.histogram(scores[truth == 0], edges)[0])
        assert stats.auc == pytest.approx(expected_auc) if expected_auc is not None \
            else stats.auc is None


def test_score_bins_are_numpys_histogram_bins_at_the_edges():
    from fedray.evaluation import SCORE_BINS, histogram, score_bins

    edges = np.linspace(0, 1, SCORE_BINS + 1)
    scores = np.r_[edges, edges.astype(np.float32), np.nextafter(edges[1:], 0),
                   np.random.default_rng(0).random(1000)]
    assert np.array_equal(histogram(score_bins(scores)), np.histogram(scores, edges)[0])
