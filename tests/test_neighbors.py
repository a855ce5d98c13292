"""kNN backends against scikit-learn, self-exclusion, block queries, recall, errors."""

from __future__ import annotations

import pickle

import faiss
import numpy as np
import pytest
from sklearn.neighbors import NearestNeighbors

from paradime_core.errors import DataError
from paradime_core.neighbors import (
    EXACT_COST_LIMIT,
    EXACT_PAIR_OVERHEAD,
    HNSW_PCA_DIMS,
    HNSW_PCA_MIN_FEATURES,
    NeighborIndex,
    choose_method,
    exclude_self,
    knn_recall,
    nearest_neighbors,
)


def gaussian(n: int = 400, d: int = 10, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=(n, d)).astype(np.float32)


def clustered(n: int = 5000, d: int = 50, n_clusters: int = 20, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    centers = rng.normal(scale=4.0, size=(n_clusters, d))
    return (centers[rng.integers(0, n_clusters, n)] + rng.normal(size=(n, d))).astype(np.float32)


def sklearn_knn(X: np.ndarray, k: int, metric: str) -> tuple[np.ndarray, np.ndarray]:
    sk_metric = "euclidean" if metric == "sqeuclidean" else metric
    nn = NearestNeighbors(n_neighbors=k + 1, metric=sk_metric, algorithm="brute").fit(
        X.astype(np.float64)
    )
    distances, indices = nn.kneighbors(X.astype(np.float64))
    distances, indices = distances[:, 1:], indices[:, 1:]  # continuous data: self comes first
    return indices, distances**2 if metric == "sqeuclidean" else distances


@pytest.mark.parametrize("metric", ["euclidean", "sqeuclidean", "cosine"])
def test_exact_matches_sklearn(metric):
    X = gaussian()
    indices, distances = nearest_neighbors(X, 7, method="faiss_exact", metric=metric)
    ref_indices, ref_distances = sklearn_knn(X, 7, metric)
    assert indices.shape == (400, 7) and indices.dtype == np.int64
    assert distances.dtype == np.float32
    np.testing.assert_array_equal(indices, ref_indices)
    np.testing.assert_allclose(distances, ref_distances, rtol=1e-4, atol=1e-4)


def test_query_of_new_points_matches_sklearn():
    X, Q = gaussian(300, 8, seed=1), gaussian(50, 8, seed=2)
    index = NeighborIndex("faiss_exact").build(X)
    indices, distances = index.query(Q, 5)
    nn = NearestNeighbors(n_neighbors=5, algorithm="brute").fit(X.astype(np.float64))
    ref_distances, ref_indices = nn.kneighbors(Q.astype(np.float64))
    np.testing.assert_array_equal(indices, ref_indices)
    np.testing.assert_allclose(distances, ref_distances, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("metric", ["euclidean", "cosine"])
def test_hnsw_recall_on_clustered_data(metric):
    X = clustered()
    indices, distances = nearest_neighbors(X, 15, method="faiss_hnsw", metric=metric)
    assert indices.shape == (5000, 15)
    assert not (indices == np.arange(5000)[:, None]).any()
    assert knn_recall(X, indices, 15, sample=500, metric=metric) >= 0.95
    assert np.all(np.diff(distances, axis=1) >= -1e-5)  # sorted by distance


def test_auto_chooses_by_cost():
    assert choose_method(1000, 784) == "faiss_exact"
    assert choose_method(200_000, 50) == "faiss_hnsw"
    assert choose_method(40_000, 50) == "faiss_exact"
    n_limit = int(np.sqrt(EXACT_COST_LIMIT / (784 + EXACT_PAIR_OVERHEAD)))
    assert choose_method(n_limit - 10, 784) == "faiss_exact"
    assert choose_method(n_limit + 10, 784) == "faiss_hnsw"
    X = gaussian(200, 5)
    np.testing.assert_array_equal(
        nearest_neighbors(X, 4)[0], nearest_neighbors(X, 4, method="faiss_exact")[0]
    )


@pytest.mark.parametrize("method", ["faiss_exact", "faiss_hnsw"])
def test_duplicates_exclude_self(method):
    base = gaussian(50, 6, seed=3)
    X = np.repeat(base, 4, axis=0)  # each point 4 times: 3 copies at distance 0
    k = 5
    indices, distances = nearest_neighbors(X, k, method=method)
    n = len(X)
    assert indices.shape == (n, k) and distances.shape == (n, k)
    assert not (indices == np.arange(n)[:, None]).any()
    for i in range(n):
        copies = {4 * (i // 4) + c for c in range(4)} - {i}
        assert set(indices[i, :3]) == copies
    np.testing.assert_allclose(distances[:, :3], 0.0, atol=1e-3)
    assert (distances[:, 3:] > 0.1).all()


def test_more_duplicates_than_k():
    X = np.vstack([np.zeros((10, 3)), gaussian(20, 3, seed=4) + 5]).astype(np.float32)
    indices, distances = nearest_neighbors(X, 3, method="faiss_exact")
    assert indices.shape == (30, 3)
    assert not (indices == np.arange(30)[:, None]).any()
    assert (indices[:10] < 10).all()
    np.testing.assert_array_equal(distances[:10], 0.0)


def test_exclude_self_drops_own_index_else_last_column():
    indices = np.array([[4, 0, 7], [5, 6, 2], [2, 3, 9]])
    distances = np.array([[0.0, 0.0, 1.0], [0.0, 0.0, 2.0], [0.5, 0.6, 0.7]], dtype=np.float32)
    out_i, out_d = exclude_self(indices, distances, np.array([0, 1, 2]), k=2)
    np.testing.assert_array_equal(out_i, [[4, 7], [5, 6], [3, 9]])
    kept_columns = np.array([[0, 2], [0, 1], [1, 2]])
    np.testing.assert_array_equal(out_d, np.take_along_axis(distances, kept_columns, axis=1))


@pytest.mark.parametrize("method", ["faiss_exact", "faiss_hnsw"])
def test_block_queries_equal_one_query(method):
    X = clustered(1200, 16, seed=5)
    index = NeighborIndex(method).build(X)
    full_i, full_d = index.query_self(X, 10)
    blocks = [index.query_self(X[s : s + 250], 10, start=s) for s in range(0, len(X), 250)]
    np.testing.assert_array_equal(np.vstack([b[0] for b in blocks]), full_i)
    np.testing.assert_array_equal(np.vstack([b[1] for b in blocks]), full_d)
    ref_i, _ = nearest_neighbors(X, 10, method=method)
    np.testing.assert_array_equal(full_i, ref_i)


@pytest.mark.parametrize("method", ["faiss_exact", "faiss_hnsw"])
def test_index_pickles(method):
    X = gaussian(500, 12, seed=6)
    index = NeighborIndex(method).build(X)
    restored = pickle.loads(pickle.dumps(index))
    for a, b in zip(index.query(X[:40], 6), restored.query(X[:40], 6), strict=True):
        np.testing.assert_array_equal(a, b)


def test_knn_recall_values():
    X = gaussian(300, 5, seed=7)
    exact, _ = nearest_neighbors(X, 10, method="faiss_exact")
    assert knn_recall(X, exact, 10, sample=300) == 1.0
    # replace the last column by each row's farthest point: recall 9/10 exactly
    far = np.argmax(((X[:, None] - X[None]) ** 2).sum(-1), axis=1)
    wrong = exact.copy()
    wrong[:, -1] = far
    assert knn_recall(X, wrong, 10, sample=300) == pytest.approx(0.9)
    # self and repeated entries are no hits
    wrong[:, 0] = np.arange(300)
    wrong[:, 1] = wrong[:, 2]
    assert knn_recall(X, wrong, 10, sample=300) == pytest.approx(0.7)
    # recall@5 of the first five columns of exact lists
    assert knn_recall(X, exact, 5, sample=100, seed=1) == 1.0


def test_knn_recall_counts_ties_as_hits():
    X = np.repeat(gaussian(40, 4, seed=8), 6, axis=0)  # 5 zero-distance copies per row
    rng = np.random.default_rng(0)
    indices = np.array(
        [
            rng.permutation(sorted({6 * (i // 6) + c for c in range(6)} - {i}))[:3]
            for i in range(len(X))
        ]
    )
    assert knn_recall(X, indices, 3, sample=240) == 1.0


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_rows_raise(bad):
    X = gaussian(100, 4)
    X[17, 2] = bad
    X[40, 0] = bad
    with pytest.raises(DataError, match="row 17"):
        nearest_neighbors(X, 3)
    with pytest.raises(DataError, match="row 17"):
        NeighborIndex("faiss_hnsw").build(X)


def test_bad_k_and_options():
    X = gaussian(10, 3)
    with pytest.raises(ValueError, match="k=10.*only 9"):
        nearest_neighbors(X, 10)
    with pytest.raises(ValueError, match="positive"):
        nearest_neighbors(X, 0)
    with pytest.raises(ValueError, match="method"):
        nearest_neighbors(X, 3, method="annoy")
    with pytest.raises(ValueError, match="metric"):
        nearest_neighbors(X, 3, metric="hamming")
    with pytest.raises(RuntimeError, match="build"):
        NeighborIndex().query(X, 3)


def test_n_threads_is_restored():
    before = faiss.omp_get_max_threads()
    nearest_neighbors(gaussian(200, 4), 5, n_threads=1)
    assert faiss.omp_get_max_threads() == before


@pytest.mark.slow
def test_pynndescent_backend():
    X = clustered(3000, 20, seed=9)
    indices, distances = nearest_neighbors(X, 10, method="pynndescent", seed=0)
    assert indices.shape == (3000, 10)
    assert not (indices == np.arange(3000)[:, None]).any()
    assert knn_recall(X, indices, 10, sample=500) >= 0.95
    true_distances = np.linalg.norm(X[:, None, :] - X[indices], axis=2)
    np.testing.assert_allclose(distances, true_distances, rtol=1e-4, atol=1e-4)
    exact_i, _ = nearest_neighbors(X, 10, method="faiss_exact")
    assert (indices[:, 0] == exact_i[:, 0]).mean() >= 0.99
    index = NeighborIndex("pynndescent").build(X)
    query_i, _ = index.query(X[:50], 5)
    assert (query_i[:, 0] == np.arange(50)).mean() >= 0.95


def wide_clustered(n: int = 3000, d: int = 256, seed: int = 7) -> np.ndarray:
    """Clusters in a 20-d subspace of a wide space, plus isotropic noise (like image data)."""
    rng = np.random.default_rng(seed)
    low = clustered(n, 20, seed=seed).astype(np.float64)
    basis = np.linalg.qr(rng.normal(size=(d, 20)))[0]
    return (low @ basis.T + 0.3 * rng.normal(size=(n, d))).astype(np.float32)


def test_hnsw_on_wide_data_builds_over_pca_and_reranks_exactly():
    X = wide_clustered()
    index = NeighborIndex("faiss_hnsw").build(X)
    assert index.pca_dims_ == HNSW_PCA_DIMS
    indices, distances = index.query_self(X, 12)
    assert knn_recall(X, indices, 12, sample=500) >= 0.98
    exact = np.linalg.norm(X[np.arange(len(X))[:, None]] - X[indices], axis=-1)
    np.testing.assert_allclose(distances, exact, rtol=1e-3, atol=1e-3)  # distances are exact
    assert np.all(np.diff(distances, axis=1) >= -1e-5)
    assert not (indices == np.arange(len(X))[:, None]).any()


def test_hnsw_projection_choice():
    X = wide_clustered(600)
    assert NeighborIndex("faiss_hnsw", pca_dims=0).build(X).pca_dims_ == 0
    assert NeighborIndex("faiss_hnsw", pca_dims=32).build(X).pca_dims_ == 32
    assert NeighborIndex("faiss_hnsw", metric="cosine").build(X).pca_dims_ == HNSW_PCA_DIMS
    assert NeighborIndex("faiss_hnsw", metric="cosine", pca_dims=16).build(X).pca_dims_ == 16
    assert NeighborIndex("faiss_hnsw").build(X[:, :HNSW_PCA_MIN_FEATURES - 1]).pca_dims_ == 0
    assert NeighborIndex("faiss_exact").build(X).pca_dims_ == 0
    with pytest.raises(ValueError, match="pca_dims"):
        NeighborIndex("faiss_hnsw", pca_dims=-1).build(X)


def test_projected_cosine_hnsw_gives_exact_cosine_distances_and_handles_zero_rows():
    """Cosine on wide data: graph and re-ranking over unit vectors by squared L2, distances
    converted back to ``1 - cos`` exactly; an all-zero row is at distance 1 from every row."""
    X = wide_clustered(1500, seed=9) + 2.0  # an offset, so cosine and euclidean neighbours differ
    X[[10, 700]] = 0.0
    index = NeighborIndex("faiss_hnsw", metric="cosine").build(X)
    assert index.pca_dims_ == HNSW_PCA_DIMS
    indices, distances = index.query_self(X, 10)
    exact_i, exact_d = NeighborIndex("faiss_exact", metric="cosine").build(X).query_self(X, 10)
    nonzero = np.setdiff1d(np.arange(len(X)), [10, 700])
    hits = [len(set(indices[i]) & set(exact_i[i])) for i in nonzero]
    assert np.mean(hits) / 10 >= 0.98
    unit = X / np.maximum(np.linalg.norm(X, axis=1, keepdims=True), 1e-12)
    cosine = 1.0 - np.einsum("ij,ikj->ik", unit, unit[indices])
    cosine[[10, 700]] = 1.0  # the zero rows: no direction, distance 1 to everything
    np.testing.assert_allclose(distances, cosine, atol=2e-5)
    np.testing.assert_allclose(distances[nonzero, 0], exact_d[nonzero, 0], atol=2e-5)
    assert np.all(distances[[10, 700]] == pytest.approx(1.0, abs=1e-6))
    # Queries from outside the index (not self-excluded) get the same exact distances.
    fresh_i, fresh_d = index.query(X[:50] * 3.0, 5)  # scaling does not change cosine neighbours
    np.testing.assert_allclose(fresh_d, 1.0 - np.einsum("ij,ikj->ik", unit[:50], unit[fresh_i]), atol=2e-5)


def test_projected_hnsw_pickles_and_answers_blocks_alike():
    X = wide_clustered(1200, seed=8)
    index = NeighborIndex("faiss_hnsw").build(X)
    restored = pickle.loads(pickle.dumps(index))
    assert restored.pca_dims_ == HNSW_PCA_DIMS
    full_i, full_d = index.query_self(X, 8)
    for a, b in zip((full_i, full_d), restored.query_self(X, 8), strict=True):
        np.testing.assert_array_equal(a, b)
    blocks = [restored.query_self(X[s : s + 300], 8, start=s) for s in range(0, len(X), 300)]
    np.testing.assert_array_equal(np.vstack([b[0] for b in blocks]), full_i)
    np.testing.assert_array_equal(np.vstack([b[1] for b in blocks]), full_d)


def test_an_index_pickled_before_projected_cosine_still_answers():
    X = wide_clustered(400, seed=3)
    index = NeighborIndex("faiss_exact", metric="cosine").build(X)
    state = index.__getstate__()
    del state["unit_l2_"], state["zero_rows_"]  # as written by an older version
    old = NeighborIndex.__new__(NeighborIndex)
    old.__setstate__(state)
    for a, b in zip(old.query_self(X, 5), index.query_self(X, 5), strict=True):
        np.testing.assert_array_equal(a, b)
