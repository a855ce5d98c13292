"""Labels mixed into the graph: the intersections against umap-learn's, and supervised fits."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp

from paradime_core import ParametricLargeVis, ParametricMDS, ParametricTSNE, ParametricUMAP
from paradime_core.metrics import knn_accuracy
from paradime_core.supervision import categorical_intersection, far_distance, fuzzy_intersection

TINY = dict(n_epochs=3, batches_per_epoch=5, batch_size=200, hidden_dims=(32,), pca_components=20)


def test_categorical_intersection_by_hand():
    """Same label: kept; different: x exp(-5) (target_weight 0.5); unlabelled: x exp(-1);
    then rows scaled to a maximum of 1 and joined by the fuzzy union."""
    graph = sp.csr_array(np.array([[0, 0.8, 0.4], [0.8, 0, 0.5], [0.4, 0.5, 0]]))
    mixed = categorical_intersection(graph, np.array([0, 0, -1]), reset=False).toarray()
    np.testing.assert_allclose(mixed, [[0, 0.8, 0.4 / np.e], [0.8, 0, 0.5 / np.e], [0.4 / np.e, 0.5 / np.e, 0]])
    mixed = categorical_intersection(graph, np.array([0, 1, 1]), reset=False).toarray()
    np.testing.assert_allclose(mixed[0, 1], 0.8 * np.exp(-5.0))
    reset = categorical_intersection(graph, np.array([0, 0, 1])).toarray()
    np.testing.assert_allclose(reset.max(axis=1), 1.0)
    np.testing.assert_allclose(reset, reset.T)
    assert far_distance(0.0) == 2.5 and far_distance(1.0) == 1e12
    with pytest.raises(ValueError, match=r"target_weight must be in \[0, 1\], got 1.5"):
        far_distance(1.5)


def test_string_labels_and_unlabelled_rows():
    graph = sp.csr_array(np.array([[0, 1.0], [1.0, 0]]))
    assert categorical_intersection(graph, np.array(["a", "b"]), reset=False)[0, 1] == pytest.approx(np.exp(-5))
    assert categorical_intersection(graph, np.array([-1, 3]), reset=False)[0, 1] == pytest.approx(np.exp(-1))


@pytest.mark.slow
def test_intersections_equal_umap_learns():
    """The same graphs as umap-learn's discrete and general intersections (imports umap: slow)."""
    umap_ = pytest.importorskip("umap.umap_")
    rng = np.random.default_rng(0)
    left = sp.random(200, 200, density=0.05, random_state=0, format="csr")
    left = left.maximum(left.T)
    right = sp.random(200, 200, density=0.05, random_state=1, format="csr")
    right = right.maximum(right.T)
    y = rng.integers(-1, 4, 200)
    for weight in (0.2, 0.5, 0.9):
        theirs = umap_.discrete_metric_simplicial_set_intersection(
            sp.coo_matrix(left.copy()), y, far_dist=far_distance(weight))  # umap-learn scales in place
        ours = categorical_intersection(sp.csr_array(left), y, weight)
        assert abs(ours - sp.csr_array(theirs.tocsr())).max() < 1e-12
        theirs = umap_.reset_local_connectivity(
            umap_.general_simplicial_set_intersection(sp.csr_matrix(left), sp.csr_matrix(right), weight))
        ours = fuzzy_intersection(sp.csr_array(left), sp.csr_array(right), weight)
        assert abs(ours - sp.csr_array(theirs.tocsr())).max() < 1e-12


def cross_label_share(graph, y) -> float:
    """Share of the graph's weight on edges between rows of different labels."""
    coo = sp.coo_array(graph)
    return float(coo.data[y[coo.row] != y[coo.col]].sum() / coo.data.sum())


@pytest.mark.parametrize("cls", [ParametricUMAP, ParametricLargeVis, ParametricTSNE], ids=lambda c: c.__name__)
def test_supervised_fit_trains_on_the_labelled_graph(cls, digits):
    """fit(X, y) trains on the graph with edges between classes cut down (x exp(-5), then
    each row rescaled);
    with half the rows unlabelled (-1) the cut is partial; fit(X) keeps the plain graph."""
    X, y = digits
    options = {"perplexity": 10.0} if cls is ParametricTSNE else (
        {"perplexity": 10.0, "init": "random"} if cls is ParametricLargeVis else {"n_neighbors": 10, "init": "random"})
    plain = cross_label_share(cls(**TINY, **options).fit(X).routine_.relations_["p"], y)
    supervised = cross_label_share(cls(**TINY, **options).fit(X, y).routine_.relations_["p"], y)
    half = np.where(np.arange(len(y)) % 2 == 0, y, -1)
    semi = cross_label_share(cls(**TINY, **options).fit(X, half).routine_.relations_["p"], y)
    assert plain > 0.05 and supervised < 0.1 * plain and supervised < semi < plain


@pytest.mark.slow
def test_supervised_embedding_separates_the_classes():
    """1,000 digits, the default network and 300 steps: 10-NN accuracy in the embedding
    rises with the labels (measured here 0.970 -> 0.997)."""
    from sklearn.datasets import load_digits

    X, y = load_digits(return_X_y=True)
    X, y = X[:1000] / 16.0, y[:1000]
    plain = ParametricUMAP(n_epochs=10, batches_per_epoch=30).fit_transform(X)
    supervised = ParametricUMAP(n_epochs=10, batches_per_epoch=30).fit_transform(X, y)
    assert knn_accuracy(supervised, y, k=10) > knn_accuracy(plain, y, k=10) + 0.01


def test_metric_target_and_ignored_labels(digits):
    X, y = digits
    continuous = ParametricUMAP(**TINY, n_neighbors=10, target_metric="euclidean").fit(X, y.astype(float))
    assert np.isfinite(continuous.embedding_).all()
    with pytest.raises(ValueError, match="target_metric must be one of categorical, euclidean"):
        ParametricUMAP(**TINY, target_metric="hamming").fit(X, y)
    mds = dict(n_epochs=2, batch_size=50, hidden_dims=(8,))
    np.testing.assert_array_equal(ParametricMDS(**mds).fit_transform(X, y), ParametricMDS(**mds).fit_transform(X))
