"""Metrics against scikit-learn and closed-form cases."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.manifold import trustworthiness as sk_trustworthiness
from sklearn.neighbors import KNeighborsClassifier

from paradime_core.errors import DataError
from paradime_core.metrics import (
    continuity,
    evaluate,
    knn_accuracy,
    neighborhood_preservation,
    normalized_stress,
    trustworthiness,
)


@pytest.fixture(scope="module")
def points():
    rng = np.random.default_rng(0)
    x_high = rng.normal(size=(300, 10))
    x_low = x_high[:, :2] + 0.5 * rng.normal(size=(300, 2))  # a noisy projection
    return x_high, x_low


@pytest.mark.parametrize("k", [1, 5, 10, 30])
def test_trustworthiness_equals_sklearn(points, k):
    x_high, x_low = points
    ours = trustworthiness(x_high, x_low, k=k)
    ref = sk_trustworthiness(x_high, x_low, n_neighbors=k)
    assert ours == pytest.approx(ref, abs=1e-12)
    assert 0.5 < ours < 1.0


@pytest.mark.parametrize("k", [5, 10])
def test_continuity_equals_swapped_sklearn(points, k):
    x_high, x_low = points
    assert continuity(x_high, x_low, k=k) == pytest.approx(sk_trustworthiness(x_low, x_high, n_neighbors=k), abs=1e-12)


def test_precomputed_distances(points):
    x_high, x_low = points
    d = np.linalg.norm(x_high[:, None] - x_high[None], axis=-1)
    assert trustworthiness(d, x_low, k=10, precomputed=True) == pytest.approx(
        sk_trustworthiness(d, x_low, n_neighbors=10, metric="precomputed"), abs=1e-12)


def test_blocking_does_not_change_results(points):
    x_high, x_low = points
    full = neighborhood_preservation(x_high, x_low, k=7)
    blocked = neighborhood_preservation(x_high, x_low, k=7, block_size=13)
    assert blocked == pytest.approx(full, abs=1e-12)


def test_sampled_trustworthiness_is_close(points):
    x_high, x_low = points
    exact = trustworthiness(x_high, x_low, k=10)
    sampled = trustworthiness(x_high, x_low, k=10, sample=150, seed=1)
    assert sampled != exact
    assert sampled == pytest.approx(exact, abs=0.02)


def test_perfect_embedding_scores_one(points):
    x_high, _ = points
    assert trustworthiness(x_high, x_high * 3.0, k=10) == pytest.approx(1.0)
    assert continuity(x_high, x_high * 3.0, k=10) == pytest.approx(1.0)


def test_trustworthiness_input_checks(points):
    x_high, x_low = points
    with pytest.raises(ValueError, match="less than n_items / 2"):
        trustworthiness(x_high, x_low, k=150)
    with pytest.raises(DataError, match="rows"):
        trustworthiness(x_high, x_low[:-1])


def test_knn_accuracy_test_set_matches_sklearn(points):
    x_high, x_low = points
    labels = (x_high[:, 0] > 0).astype(int) + (x_high[:, 1] > 0).astype(int)
    ref = KNeighborsClassifier(n_neighbors=5).fit(x_low[:200], labels[:200]).score(x_low[200:], labels[200:])
    assert knn_accuracy(x_low[:200], labels[:200], x_low[200:], labels[200:], k=5) == pytest.approx(ref)


def test_knn_accuracy_leave_one_out():
    # two tight, far-apart clusters: every item's neighbours share its label
    rng = np.random.default_rng(0)
    emb = np.concatenate([rng.normal(size=(20, 2)) * 0.1, rng.normal(size=(20, 2)) * 0.1 + 10])
    labels = np.repeat(["a", "b"], 20)
    assert knn_accuracy(emb, labels, k=5) == 1.0
    # leave-one-out by hand on random labels
    emb = rng.normal(size=(50, 2))
    labels = rng.integers(0, 3, 50)
    dist = np.linalg.norm(emb[:, None] - emb[None], axis=-1)
    np.fill_diagonal(dist, np.inf)
    nbrs = np.argsort(dist, axis=1)[:, :4]
    votes = np.stack([np.bincount(labels[row], minlength=3) for row in nbrs])
    expected = np.mean(votes.argmax(axis=1) == labels)
    assert knn_accuracy(emb, labels, k=4) == pytest.approx(expected)


def _stress_by_formula(x, y):
    d = np.linalg.norm(x[:, None] - x[None], axis=-1)
    dh = np.linalg.norm(y[:, None] - y[None], axis=-1)
    iu = np.triu_indices(len(x), 1)
    return np.sqrt(np.sum((d[iu] - dh[iu]) ** 2) / np.sum(d[iu] ** 2)), d


def test_normalized_stress_formula(points):
    x_high, x_low = points
    expected, d = _stress_by_formula(x_high, x_low)
    assert normalized_stress(x_high, x_low) == pytest.approx(expected, rel=1e-10)
    assert normalized_stress(x_high, x_low, block_size=17) == pytest.approx(expected, rel=1e-10)
    assert normalized_stress(d, x_low, precomputed=True) == pytest.approx(expected, rel=1e-10)
    assert normalized_stress(x_high, x_low, sample=200) == pytest.approx(expected, rel=0.05)


def test_normalized_stress_scale_optimal_known_optimum():
    rng = np.random.default_rng(3)
    x = rng.normal(size=(40, 2))
    # an exact embedding shrunk 10x: raw stress 0.9, optimal scale recovers it exactly
    assert normalized_stress(x, 0.1 * x) == pytest.approx(0.9, rel=1e-10)
    assert normalized_stress(x, 0.1 * x, scale_optimal=True) == pytest.approx(0.0, abs=1e-6)
    # general case: equals a numerical minimum over alpha
    from scipy.optimize import minimize_scalar

    y = x + 0.3 * rng.normal(size=x.shape)
    best = minimize_scalar(lambda a: _stress_by_formula(x, a * y)[0], bounds=(0.1, 3.0),
                           method="bounded", options={"xatol": 1e-10})
    brute = best.fun
    ours = normalized_stress(x, y, scale_optimal=True)
    assert ours == pytest.approx(brute, rel=1e-6)
    assert ours <= normalized_stress(x, y)


def test_evaluate_returns_all(points):
    x_high, x_low = points
    labels = (x_high[:, 0] > 0).astype(int)
    result = evaluate(x_high, x_low, labels=labels, k=10, sample=None)
    assert set(result) == {"trustworthiness", "continuity", "normalized_stress",
                           "normalized_stress_scaled", "knn_accuracy"}
    assert result["trustworthiness"] == pytest.approx(sk_trustworthiness(x_high, x_low, n_neighbors=10))
    assert result["normalized_stress"] == pytest.approx(normalized_stress(x_high, x_low))
    assert result["normalized_stress_scaled"] <= result["normalized_stress"]
    assert result["knn_accuracy"] == pytest.approx(knn_accuracy(x_low, labels, k=10))
    assert "knn_accuracy" not in evaluate(x_high, x_low, sample=100)
