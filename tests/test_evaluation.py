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
    assert stats.auc is None and stats.positive_hist is None
    assert 0 <= stats.accuracy <= 1


def test_fairness_names_the_worst_hospital_the_spread_and_the_gap():
    from fedray.evaluation import fairness

    result = fairness([0.9, 0.5, 0.7])
    assert result == {"worst_client_accuracy": 0.5,
                      "client_accuracy_std": pytest.approx(np.std([0.9, 0.5, 0.7])),
                      "client_accuracy_gap": pytest.approx(0.4)}
