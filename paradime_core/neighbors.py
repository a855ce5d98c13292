"""k-nearest-neighbour search behind one interface.

Backends (``method``):

- ``faiss_exact``: brute force (``faiss.IndexFlatL2``; cosine as inner product
  ``<u_i, u_j>`` of the unit vectors ``u = x / ||x||`` in ``faiss.IndexFlatIP``).
- ``faiss_hnsw``: a hierarchical navigable small-world graph (``faiss.IndexHNSWFlat``,
  ``M = 32``, ``efConstruction = 40``, ``efSearch = max(2 k, 64)``). Approximate; recall is
  measured by :func:`knn_recall` (figures in ``docs/RESULTS.md``).
  On wide data (``d >= HNSW_PCA_MIN_FEATURES``, any metric) the graph is built
  over a PCA projection to :data:`HNSW_PCA_DIMS` dimensions (``faiss.PCAMatrix`` trained on
  at most :data:`HNSW_PCA_SAMPLE` seeded rows) and each query's ``r k`` graph neighbours
  (``r`` = :data:`HNSW_REFINE_FACTOR`, ``efSearch = max(2 r k, 64)``) are re-ranked by their
  exact distances in the full space (``faiss.IndexRefineFlat``), so distances are exact and
  only the candidate set is approximate.
  ``pca_dims=0`` turns the projection off. Cosine uses the same route on the unit vectors
  ``u``: the graph and the re-ranking rank by ``||u_i - u_j||^2 = 2 - 2 <u_i, u_j>``, the same
  order as the cosine similarity, and the exact cosine distance is recovered from it.
- ``pynndescent``: nearest-neighbour descent. Approximate; its first call in every process
  compiles for 40-50 s, so it is imported only inside the functions that use it and is
  never chosen by ``auto``.
- ``auto``: ``faiss_exact`` while the brute-force cost ``n^2 (d + 150)`` is at most
  :data:`EXACT_COST_LIMIT` (MNIST up to ~20,000 rows, 50-d data up to ~45,000),
  ``faiss_hnsw`` above. The 150 is the per-pair top-k selection overhead in units of one
  feature's multiply-add.

Distances (``metric``): ``euclidean`` ``||x_i - x_j||``, ``sqeuclidean`` ``||x_i - x_j||^2``,
``cosine`` ``1 - <x_i, x_j> / (||x_i|| ||x_j||)`` (an all-zero row has distance 1 to all).

Self-neighbours are excluded by :func:`nearest_neighbors` and
:meth:`NeighborIndex.query_self`: each row is searched with ``k + 1`` neighbours and its
own index is dropped; where duplicates push it out of the list, the last column is dropped
instead. Rows are searched in float32.

Pickling: a faiss index pickles through ``faiss.serialize_index`` (the exact index stores
its vectors, as large as ``X``; the HNSW index stores vectors and graph, which saves the
rebuild, and with the PCA projection also the projection and the full-width vectors used to
re-rank); a pynndescent index pickles as pynndescent's own object.
"""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Iterator
from typing import Any, Literal, get_args

import numpy as np

from paradime_core.errors import DataError
from paradime_core.value_checks import first_bad_cell

KnnMethod = Literal["auto", "faiss_exact", "faiss_hnsw", "pynndescent"]
KnnMetric = Literal["euclidean", "sqeuclidean", "cosine"]
METHODS = get_args(KnnMethod)
METRICS = get_args(KnnMetric)
EXACT_COST_LIMIT = 4e11
"""Largest ``n^2 (d + EXACT_PAIR_OVERHEAD)`` for which ``auto`` searches exactly."""
EXACT_PAIR_OVERHEAD = 150

HNSW_M = 32
HNSW_EF_CONSTRUCTION = 40
HNSW_PCA_DIMS = 96
"""Dimensions of the PCA projection the HNSW graph of wide data is built over."""
HNSW_PCA_MIN_FEATURES = 2 * HNSW_PCA_DIMS
"""Data with at least this many features gets the PCA projection (HNSW)."""
HNSW_PCA_SAMPLE = 50_000
"""Rows (a seeded sample) the PCA projection is fitted on."""
HNSW_REFINE_FACTOR = 3
"""Graph candidates per requested neighbour, re-ranked by exact distance."""
CHECK_CHUNK_ROWS = 65536


def check_finite(X: np.ndarray, what: str = "data") -> None:
    """Raise :class:`DataError` naming the first cell holding NaN, inf or a value outside
    float32's range (the search runs in float32)."""
    if np.issubdtype(X.dtype, np.integer) or np.issubdtype(X.dtype, np.bool_):
        return
    for start in range(0, X.shape[0], CHECK_CHUNK_ROWS):
        bad = first_bad_cell(X[start : start + CHECK_CHUNK_ROWS], offset=start)
        if bad is not None:
            raise DataError(f"{what}: {bad.describe()}")


def _as_rows(X: Any, what: str = "data") -> np.ndarray:
    """``X`` as a C-contiguous float32 (n, d) array with finite values."""
    X = np.asarray(X)
    if X.ndim == 1:
        X = X[:, None]
    if X.ndim != 2:
        raise DataError(f"{what}: expected a 2-D array (items x features), got shape {X.shape}")
    if X.shape[0] == 0:
        raise DataError(f"{what}: no rows")
    check_finite(X, what)
    return np.ascontiguousarray(X, dtype=np.float32)


def _unit_rows(X: np.ndarray) -> np.ndarray:
    """Rows scaled to unit length ``x / ||x||``; all-zero rows stay zero."""
    norms = np.linalg.norm(X, axis=1, keepdims=True)
    return np.divide(X, norms, out=np.zeros_like(X), where=norms > 0)


def _check_choice(name: str, value: str, allowed: tuple[str, ...]) -> str:
    if value not in allowed:
        raise ValueError(f"{name} must be one of {', '.join(allowed)}, got {value!r}")
    return value


def _check_k(k: int, n_items: int, self_excluded: bool) -> int:
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
        raise ValueError(f"k must be a positive integer, got {k!r}")
    limit = n_items - 1 if self_excluded else n_items
    if k > limit:
        what = "other items" if self_excluded else "indexed items"
        raise ValueError(
            f"k={k} neighbours requested but there are only {limit} {what} (n={n_items})"
        )
    return int(k)


def choose_method(n_items: int, n_features: int) -> str:
    """``auto``'s choice: exact while ``n^2 (d + 150) <= EXACT_COST_LIMIT``, HNSW above."""
    cost = float(n_items) ** 2 * (n_features + EXACT_PAIR_OVERHEAD)
    return "faiss_exact" if cost <= EXACT_COST_LIMIT else "faiss_hnsw"


@contextlib.contextmanager
def faiss_threads(n_threads: int | None) -> Iterator[None]:
    """Run faiss with ``n_threads`` OpenMP threads (restored afterwards); None: unchanged."""
    if n_threads is None:
        yield
        return
    import faiss

    before = faiss.omp_get_max_threads()
    faiss.omp_set_num_threads(int(n_threads))
    try:
        yield
    finally:
        faiss.omp_set_num_threads(before)


def exclude_self(
    indices: np.ndarray, distances: np.ndarray, rows: np.ndarray, k: int
) -> tuple[np.ndarray, np.ndarray]:
    """Drop each row's own index from its ``k + 1`` neighbours (else its last column)."""
    rows = np.asarray(rows, dtype=np.int64)
    indices, distances = indices[:, : k + 1], distances[:, : k + 1]
    is_self = indices == rows[:, None]
    first_self = is_self & (np.cumsum(is_self, axis=1) == 1)
    no_self = ~first_self.any(axis=1)
    first_self[no_self, -1] = True
    keep = ~first_self
    n = indices.shape[0]
    return indices[keep].reshape(n, k), distances[keep].reshape(n, k)


class NeighborIndex:
    """A kNN index over the rows of ``X``: ``build(X)`` once, then ``query`` row blocks.

    ``query(X_block, k)`` returns ``(indices (b, k) int64, distances (b, k) float32)`` of the
    indexed rows nearest to each row of ``X_block`` (self included if it is indexed);
    ``query_self(X_block, k, start)`` treats the block as rows ``start, start + 1, ...`` of the
    indexed data and excludes each from its own list. ``n_threads`` sets faiss's OpenMP
    threads during build and query (use 1 inside parallel tasks). ``pca_dims`` (HNSW only):
    build the graph over a PCA projection to that many dimensions and re-rank candidates
    exactly; None chooses :data:`HNSW_PCA_DIMS` for wide data (any metric), 0 never projects.
    """

    def __init__(
        self,
        method: str = "auto",
        metric: str = "euclidean",
        seed: int = 0,
        n_threads: int | None = None,
        hnsw_m: int = HNSW_M,
        ef_construction: int = HNSW_EF_CONSTRUCTION,
        ef_search: int | None = None,
        graph_neighbors: int = 30,
        pca_dims: int | None = None,
    ):
        self.method = _check_choice("method", method, METHODS)
        self.metric = _check_choice("metric", metric, METRICS)
        self.seed = int(seed)
        self.n_threads = n_threads
        self.hnsw_m = int(hnsw_m)
        self.ef_construction = int(ef_construction)
        self.ef_search = ef_search
        self.graph_neighbors = int(graph_neighbors)
        self.pca_dims = pca_dims
        self.index_: Any = None
        self.pca_dims_ = 0
        self.unit_l2_ = False  # cosine searched as squared L2 between unit vectors
        self.zero_rows_: np.ndarray | None = None  # indexed all-zero rows (cosine with unit_l2_)
        self.method_: str | None = None
        self.n_items_ = 0
        self.n_features_ = 0

    # ------------------------------------------------------------------ build
    def build(self, X: np.ndarray) -> NeighborIndex:
        """Index the rows of ``X`` (float32); returns self."""
        X = _as_rows(X)
        self.n_items_, self.n_features_ = X.shape
        method = self.method
        if method == "auto":
            method = choose_method(*X.shape)
        self.method_ = method
        self.pca_dims_ = 0  # set by _build_hnsw; a rebuild with another method has none
        self.unit_l2_, self.zero_rows_ = False, None
        if method == "pynndescent":
            self.index_ = self._build_pynndescent(X)
            return self
        import faiss

        d = X.shape[1]
        vectors = _unit_rows(X) if self.metric == "cosine" else X
        with faiss_threads(self.n_threads):
            if method == "faiss_exact":
                index = faiss.IndexFlatIP(d) if self.metric == "cosine" else faiss.IndexFlatL2(d)
            else:
                index = self._build_hnsw(vectors)
            index.add(vectors)
        self.index_ = index
        return self

    def _projection_dims(self, n_items: int, n_features: int) -> int:
        """PCA dimensions of the HNSW graph (0: the graph is over the data as given)."""
        if self.pca_dims is not None:
            dims = int(self.pca_dims)
            if dims < 0:
                raise ValueError(f"pca_dims must be >= 0, got {dims}")
        elif n_features >= HNSW_PCA_MIN_FEATURES:
            dims = HNSW_PCA_DIMS
        else:
            dims = 0
        return dims if 0 < dims < min(n_features, n_items) else 0

    def _build_hnsw(self, vectors: np.ndarray) -> Any:
        """An empty (trained) HNSW index; with a PCA projection, wrapped for exact re-ranking."""
        import faiss

        n, d = vectors.shape
        self.pca_dims_ = self._projection_dims(n, d)
        # Projected cosine: rank unit vectors by squared L2 (the same order as their inner
        # product) so the graph and the exact re-ranking share one metric.
        self.unit_l2_ = self.metric == "cosine" and bool(self.pca_dims_)
        if self.unit_l2_:
            self.zero_rows_ = ~vectors.any(axis=1)
        faiss_metric = faiss.METRIC_INNER_PRODUCT if self.metric == "cosine" and not self.unit_l2_ else faiss.METRIC_L2
        graph = faiss.IndexHNSWFlat(self.pca_dims_ or d, self.hnsw_m, faiss_metric)
        graph.hnsw.efConstruction = self.ef_construction
        graph.hnsw.rng = faiss.RandomGenerator(self.seed)  # levels of the graph
        if not self.pca_dims_:
            return graph
        projected = faiss.IndexPreTransform(faiss.PCAMatrix(d, self.pca_dims_), graph)
        index = faiss.IndexRefineFlat(projected)
        rng = np.random.default_rng(self.seed)
        sample = vectors if n <= HNSW_PCA_SAMPLE else vectors[np.sort(rng.choice(n, HNSW_PCA_SAMPLE, replace=False))]
        index.train(sample)
        return index

    def _hnsw_parameters(self, k: int) -> Any:
        import faiss

        if not self.pca_dims_:
            return faiss.SearchParametersHNSW(efSearch=int(self.ef_search or max(2 * k, 64)))
        candidates = HNSW_REFINE_FACTOR * k
        graph = faiss.SearchParametersHNSW(efSearch=int(self.ef_search or max(2 * candidates, 64)))
        return faiss.IndexRefineSearchParameters(
            k_factor=float(HNSW_REFINE_FACTOR),
            base_index_params=faiss.SearchParametersPreTransform(index_params=graph),
        )

    def _build_pynndescent(self, X: np.ndarray) -> Any:
        import pynndescent  # compiles for 40-50 s on first use in a process

        n_neighbors = min(max(self.graph_neighbors, 2), X.shape[0] - 1) if X.shape[0] > 1 else 1
        return pynndescent.NNDescent(
            X,
            metric=self.metric,
            n_neighbors=n_neighbors,
            random_state=self.seed,
            n_jobs=self.n_threads if self.n_threads is not None else -1,
        )

    # ------------------------------------------------------------------ query
    def _check_built(self) -> None:
        if self.index_ is None:
            raise RuntimeError("NeighborIndex.build(X) must be called before query")

    def query(self, X_block: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """The ``k`` indexed rows nearest to each row of ``X_block`` (self not excluded)."""
        self._check_built()
        k = _check_k(k, self.n_items_, self_excluded=False)
        X_block = _as_rows(X_block, "query block")
        if X_block.shape[1] != self.n_features_:
            raise DataError(
                f"query block has {X_block.shape[1]} features, the index {self.n_features_}"
            )
        if self.method_ == "pynndescent":
            indices, distances = self.index_.query(X_block, k=k)
            return np.asarray(indices, dtype=np.int64), np.asarray(distances, dtype=np.float32)

        vectors = _unit_rows(X_block) if self.metric == "cosine" else X_block
        with faiss_threads(self.n_threads):
            if self.method_ == "faiss_hnsw":  # per call: safe when threads share the index
                raw, indices = self.index_.search(vectors, k, params=self._hnsw_parameters(k))
            else:
                raw, indices = self.index_.search(vectors, k)
            missing = (indices < 0).any(axis=1)
            if missing.any():  # HNSW found fewer than k: search those rows exactly
                raw[missing], indices[missing] = self._exact_search(vectors[missing], k)
        indices = indices.astype(np.int64, copy=False)
        if self.unit_l2_:  # <u_q, u_j> = (||u_q||^2 + ||u_j||^2 - ||u_q - u_j||^2) / 2, norms 0 or 1
            query_norms = vectors.any(axis=1).astype(np.float32)[:, None]
            raw = (query_norms + (~self.zero_rows_[indices]).astype(np.float32) - raw) / 2.0
        return indices, self._to_distance(raw)

    def _exact_search(self, vectors: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        import faiss

        index = faiss.downcast_index(self.index_)
        if isinstance(index, faiss.IndexRefine):
            index = index.refine_index  # the full-width vectors
        stored = index.storage if hasattr(index, "storage") else index
        flat = faiss.downcast_index(stored)
        exact = (
            faiss.IndexFlatIP(self.n_features_)
            if self.metric == "cosine" and not self.unit_l2_
            else faiss.IndexFlatL2(self.n_features_)
        )
        exact.add(flat.reconstruct_n(0, flat.ntotal))
        return exact.search(vectors, k)

    def _to_distance(self, raw: np.ndarray) -> np.ndarray:
        """faiss scores -> distances: ``sqrt(max(s, 0))`` (L2), ``s`` (sq.), ``1 - s`` (inner product)."""
        raw = np.asarray(raw, dtype=np.float32)
        if self.metric == "cosine":
            return np.clip(1.0 - raw, 0.0, 2.0)
        raw = np.maximum(raw, 0.0)
        return np.sqrt(raw) if self.metric == "euclidean" else raw

    def query_self(
        self, X_block: np.ndarray, k: int, start: int = 0
    ) -> tuple[np.ndarray, np.ndarray]:
        """kNN of indexed rows ``start .. start + len(X_block) - 1``, each without itself."""
        self._check_built()
        k = _check_k(k, self.n_items_, self_excluded=True)
        indices, distances = self.query(X_block, k + 1)
        rows = np.arange(start, start + indices.shape[0])
        return exclude_self(indices, distances, rows, k)

    # ------------------------------------------------------------------ pickling
    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        if self.index_ is not None and self.method_ != "pynndescent":
            import faiss

            state["index_"] = faiss.serialize_index(self.index_)
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        state.setdefault("unit_l2_", False)  # indexes pickled before projected cosine existed
        state.setdefault("zero_rows_", None)
        if state.get("index_") is not None and state.get("method_") != "pynndescent":
            import faiss

            state["index_"] = faiss.deserialize_index(state["index_"])
        self.__dict__.update(state)


def nearest_neighbors(
    X: np.ndarray,
    k: int,
    method: str = "auto",
    metric: str = "euclidean",
    seed: int = 0,
    n_threads: int | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """The ``k`` nearest other rows of each row of ``X``: ``(indices, distances)``, (n, k).

    Row ``i`` lists ``j != i`` by increasing distance ``d(x_i, x_j)``; self is excluded even
    among exact duplicates.
    """
    _check_choice("method", method, METHODS)
    _check_choice("metric", metric, METRICS)
    X = _as_rows(X)
    k = _check_k(k, X.shape[0], self_excluded=True)
    if method == "pynndescent":
        return _pynndescent_graph(X, k, metric, seed, n_threads)
    index = NeighborIndex(method=method, metric=metric, seed=seed, n_threads=n_threads).build(X)
    return index.query_self(X, k)


def _pynndescent_graph(
    X: np.ndarray, k: int, metric: str, seed: int, n_threads: int | None
) -> tuple[np.ndarray, np.ndarray]:
    """pynndescent's own (k + 1)-graph of ``X`` with self removed (no separate query)."""
    index = NeighborIndex("pynndescent", metric, seed, n_threads, graph_neighbors=k + 1).build(X)
    indices, distances = index.index_.neighbor_graph
    indices = np.asarray(indices, dtype=np.int64)
    distances = np.asarray(distances, dtype=np.float32)
    if (indices < 0).any():
        warnings.warn(
            "pynndescent left some neighbour slots empty; they are filled exactly", stacklevel=3
        )
        rows = np.flatnonzero((indices < 0).any(axis=1))
        exact = NeighborIndex("faiss_exact", metric, n_threads=n_threads).build(X)
        indices[rows], distances[rows] = exact.query(X[rows], k + 1)
    return exclude_self(indices, distances, np.arange(X.shape[0]), k)


def _exact_distances(Q: np.ndarray, X: np.ndarray, metric: str) -> np.ndarray:
    """Dense (q, n) float64 distances between rows of ``Q`` and ``X`` (one query chunk)."""
    if metric == "cosine":
        return 1.0 - _unit_rows(Q) @ _unit_rows(X).T
    sq = (Q * Q).sum(1)[:, None] + (X * X).sum(1)[None, :] - 2.0 * (Q @ X.T)
    np.maximum(sq, 0.0, out=sq)
    return np.sqrt(sq)


def knn_recall(
    X: np.ndarray,
    indices: np.ndarray,
    k: int | None = None,
    sample: int = 1000,
    seed: int = 0,
    metric: str = "euclidean",
    chunk_size: int = 128,
) -> float:
    """Recall of neighbour lists against exact search on ``sample`` random query rows.

    For query row ``i`` with exact k-th neighbour distance ``d_k(i)`` (self excluded), a
    listed neighbour ``j != i`` is a hit if ``d(x_i, x_j) <= d_k(i)`` (ties count, so exact
    lists score 1 even among duplicates); recall = hits / (k * queries). Distances are exact
    float64 over query chunks of ``chunk_size`` rows (a (chunk, n) block in memory, never n x n).
    ``sqeuclidean`` ranks as ``euclidean``.
    """
    _check_choice("metric", metric, METRICS)
    X = np.asarray(X)
    indices = np.asarray(indices)
    n = X.shape[0]
    if indices.ndim != 2 or indices.shape[0] != n:
        raise DataError(f"indices must have one row per data row ({n}), got shape {indices.shape}")
    k = indices.shape[1] if k is None else _check_k(k, n, self_excluded=True)
    if k > indices.shape[1]:
        raise ValueError(f"k={k} but the neighbour lists have only {indices.shape[1]} columns")
    check_finite(X)
    metric = "euclidean" if metric == "sqeuclidean" else metric
    rng = np.random.default_rng(seed)
    queries = np.sort(rng.choice(n, size=min(sample, n), replace=False))
    X64 = np.asarray(X, dtype=np.float64)
    hits = 0
    for start in range(0, len(queries), chunk_size):
        rows = queries[start : start + chunk_size]
        dist = _exact_distances(X64[rows], X64, metric)
        dist[np.arange(len(rows)), rows] = np.inf  # self is no neighbour
        kth = np.partition(dist, k - 1, axis=1)[:, k - 1]
        listed = indices[rows, :k]
        valid = (listed >= 0) & (listed < n) & (listed != rows[:, None])
        safe = np.where(valid, listed, 0)
        listed_dist = np.take_along_axis(dist, safe, axis=1)
        tolerance = 1e-9 * np.maximum(kth, 1.0)
        hit = valid & (listed_dist <= (kth + tolerance)[:, None])
        # a neighbour listed twice counts once
        sorted_idx = np.sort(np.where(hit, listed, -1), axis=1)
        duplicates = (sorted_idx[:, 1:] == sorted_idx[:, :-1]) & (sorted_idx[:, 1:] >= 0)
        hits += int(hit.sum() - duplicates.sum())
    return hits / float(k * len(queries))
