"""Quality measures of an embedding, blocked so that they scale past 100k items.

No function builds an n x n matrix: distances are computed for a block of query rows
against all items (memory O(block x n)), and ``sample`` restricts the queries to a random
subset (an unbiased estimate of the full sums' mean).

Neighbourhood preservation (Venna & Kaski 2001), for ``n`` items and ``k`` neighbours:

    T(k) = 1 - 2 / (n k (2n - 3k - 1)) * sum_i sum_{j in U_i} (r(i, j) - k)
    C(k) = 1 - 2 / (n k (2n - 3k - 1)) * sum_i sum_{j in V_i} (r^(i, j) - k)

``U_i``: the low-dimensional k nearest neighbours of ``i`` that are not among its
high-dimensional ones, ``r(i, j)`` the rank of ``j`` among ``i``'s high-dimensional
neighbours (1 = nearest); ``V_i`` and ``r^`` swap the roles. With ``m`` sampled queries
the factor ``n`` in front of the sum becomes ``m``. Ranks are exact: for each query the
number of items strictly closer than ``j`` is counted.

Normalized stress: ``sqrt(sum_{i<j} (d_ij - ||y_i - y_j||)^2 / sum_{i<j} d_ij^2)``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from paradime_core.errors import DataError

_BLOCK_ELEMENTS = 2**23  # (block x n) entries per distance block: 64 MiB in float64


def _matrix(x: np.ndarray, name: str) -> np.ndarray:
    x = np.asarray(x)
    if x.ndim == 1:
        x = x[:, None]
    elif x.ndim > 2:
        x = x.reshape(x.shape[0], -1)
    if not np.issubdtype(x.dtype, np.number):
        raise DataError(f"{name}: expected numeric data, got dtype {x.dtype}")
    return x.astype(np.result_type(x.dtype, np.float32), copy=False)


def _queries(n: int, sample: int | None, seed: int) -> np.ndarray:
    """All row indices, or ``sample`` of them drawn without replacement (sorted)."""
    if sample is None or sample >= n:
        return np.arange(n)
    if isinstance(sample, bool) or not isinstance(sample, (int, np.integer)) or sample < 1:
        raise ValueError(f"sample must be a positive integer or None, got {sample!r}")
    return np.sort(np.random.default_rng(seed).choice(n, size=int(sample), replace=False))


def _blocks(queries: np.ndarray, n: int, block_size: int | None):
    size = block_size or max(1, _BLOCK_ELEMENTS // max(n, 1))
    for start in range(0, len(queries), size):
        yield queries[start:start + size]


class _Distances:
    """Euclidean distances from a block of rows to all rows, via |a|^2 + |b|^2 - 2 a.b (torch,
    multi-threaded).

    Computed in the data's precision (float32 for float32/uint8 data, float64 otherwise).
    With ``precomputed`` the rows of a given (n, n) distance matrix are read instead.
    """

    def __init__(self, x: np.ndarray, name: str, precomputed: bool = False):
        self.precomputed = precomputed
        if precomputed:
            self.x = np.asarray(x)
            if self.x.ndim != 2 or self.x.shape[0] != self.x.shape[1]:
                raise DataError(f"{name}: a precomputed distance matrix must be square (n, n), "
                                f"got {self.x.shape}")
        else:
            self.x = _matrix(x, name)
            self.norms = np.einsum("ij,ij->i", self.x, self.x)

    @property
    def n(self) -> int:
        return self.x.shape[0]

    def __call__(self, rows: np.ndarray) -> np.ndarray:
        if self.precomputed:
            return np.array(self.x[rows], dtype=np.float64)
        x, norms, rows = torch.from_numpy(self.x), torch.from_numpy(self.norms), torch.from_numpy(rows)
        d2 = torch.addmm(norms[rows, None] + norms[None, :], x[rows], x.T, alpha=-2.0)
        d2.clamp_(min=0.0)
        d2[torch.arange(len(rows)), rows] = 0.0
        return d2.sqrt_().numpy()


def _check_k(n: int, k: int) -> int:
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
        raise ValueError(f"k must be a positive integer, got {k!r}")
    if k >= n / 2:
        raise ValueError(f"k ({k}) must be less than n_items / 2 ({n / 2})")
    return int(k)


def _k_smallest(d: np.ndarray, k: int) -> np.ndarray:
    """Column positions of the k smallest entries of each row (unordered; ``torch.topk``)."""
    return torch.topk(torch.from_numpy(d), k, dim=1, largest=False, sorted=False).indices.numpy()


def _rank_penalty(d_rank: np.ndarray, d_nbr: np.ndarray, k: int) -> float:
    """sum_i sum_{j in kNN_nbr(i)} max(r_rank(i, j) - k, 0) over a block (self excluded).

    ``r_rank(i, j) = 1 + #{l : d_rank(i, l) < d_rank(i, j)}`` (ties count in j's favour).
    Per row, only the entries below the row's largest threshold can count: they are sorted
    and the k ranks read by binary search (one pass over the row instead of k); a row with
    many such entries (a poor embedding) counts each threshold directly.
    """
    neighbors = _k_smallest(d_nbr, k)
    thresholds = np.take_along_axis(d_rank, neighbors, axis=1)
    n = d_rank.shape[1]
    total = 0
    for row, row_thresholds in zip(d_rank, thresholds, strict=True):
        below = row[row < row_thresholds.max()]
        if len(below) > n // 8:
            counts = np.array([np.count_nonzero(below < t) for t in row_thresholds])
        else:
            counts = np.searchsorted(np.sort(below), row_thresholds, side="left")
        total += int(np.maximum(counts + 1 - k, 0).sum())
    return float(total)


@dataclass
class _Sums:
    """What one blocked pass accumulates over (query i, item j) pairs."""

    n_items: int
    n_queries: int
    trust: float = 0.0  # sum of max(r(i, j) - k, 0), j a low-dim neighbour
    cont: float = 0.0  # the same with the roles swapped
    dd: float = 0.0  # sum d^2
    dy: float = 0.0  # sum d dhat
    yy: float = 0.0  # sum dhat^2
    diff: float = 0.0  # sum (d - dhat)^2


def _sum_of_products(a: torch.Tensor, b: torch.Tensor) -> float:
    """``sum a * b`` of two (r, n) tensors: per-row sums in their precision (torch's cascade
    summation), the rows accumulated in float64."""
    return float((a * b).sum(dim=1).double().sum())


def _blocked_pass(
    X_high: np.ndarray, Y: np.ndarray, *, k: int | None, stress: bool, precomputed: bool = False,
    sample: int | None = None, seed: int = 0, block_size: int | None = None,
) -> _Sums:
    """One pass over query blocks computing the rank penalties (k given) and stress sums."""
    high = _Distances(X_high, "X_high", precomputed)
    low = _Distances(Y, "X_low")
    if high.n != low.n:
        raise DataError(f"the data has {high.n} rows but the embedding has {low.n}")
    n = low.n
    if k is not None:
        k = _check_k(n, k)
    queries = _queries(n, sample, seed)
    sums = _Sums(n_items=n, n_queries=len(queries))
    for rows in _blocks(queries, n, block_size):
        d_high, d_low = high(rows), low(rows)
        self_pairs = (np.arange(len(rows)), rows)
        if stress:
            d_high[self_pairs] = 0.0
            high_t = torch.from_numpy(d_high)
            low_t = torch.from_numpy(d_low).to(high_t.dtype)
            sums.dd += _sum_of_products(high_t, high_t)
            sums.dy += _sum_of_products(high_t, low_t)
            sums.yy += _sum_of_products(low_t, low_t)
            difference = high_t - low_t
            sums.diff += _sum_of_products(difference, difference)
        if k is not None:
            d_high[self_pairs] = np.inf
            d_low[self_pairs] = np.inf
            sums.trust += _rank_penalty(d_high, d_low, k)
            sums.cont += _rank_penalty(d_low, d_high, k)
    return sums


def _preservation(sums: _Sums, k: int) -> tuple[float, float]:
    n = sums.n_items
    factor = 2.0 / (sums.n_queries * k * (2.0 * n - 3.0 * k - 1.0))
    return 1.0 - factor * sums.trust, 1.0 - factor * sums.cont


def _stress(sums: _Sums, scale_optimal: bool) -> float:
    if sums.dd <= 0:
        raise DataError("normalized_stress: all high-dimensional distances are zero")
    if not scale_optimal:
        return float(np.sqrt(sums.diff / sums.dd))
    if sums.yy <= 0:
        return 1.0
    residual = max(sums.dd - sums.dy * sums.dy / sums.yy, 0.0)
    return float(np.sqrt(residual / sums.dd))


def neighborhood_preservation(
    X_high: np.ndarray,
    X_low: np.ndarray,
    k: int = 10,
    sample: int | None = None,
    seed: int = 0,
    block_size: int | None = None,
    precomputed: bool = False,
) -> tuple[float, float]:
    """``(trustworthiness, continuity)`` in one blocked pass (see the module docstring)."""
    sums = _blocked_pass(X_high, X_low, k=k, stress=False, precomputed=precomputed, sample=sample,
                         seed=seed, block_size=block_size)
    return _preservation(sums, int(k))


def trustworthiness(
    X_high: np.ndarray, X_low: np.ndarray, k: int = 10, sample: int | None = None, seed: int = 0,
    block_size: int | None = None, precomputed: bool = False,
) -> float:
    """Venna & Kaski's trustworthiness T(k): are the embedding's neighbours true neighbours?

    Equals ``sklearn.manifold.trustworthiness(X_high, X_low, n_neighbors=k)`` for
    ``sample=None`` (up to tie-breaking among equidistant items); ``sample`` = number of
    random query rows; ``precomputed``: ``X_high`` is an (n, n) distance matrix.
    """
    return neighborhood_preservation(X_high, X_low, k, sample, seed, block_size, precomputed)[0]


def continuity(
    X_high: np.ndarray, X_low: np.ndarray, k: int = 10, sample: int | None = None, seed: int = 0,
    block_size: int | None = None, precomputed: bool = False,
) -> float:
    """Continuity C(k): are the true neighbours kept as neighbours in the embedding?

    ``continuity(X, Y) == trustworthiness(Y, X)``.
    """
    return neighborhood_preservation(X_high, X_low, k, sample, seed, block_size, precomputed)[1]


def knn_accuracy(
    train_embedding: np.ndarray,
    train_labels: np.ndarray,
    test_embedding: np.ndarray | None = None,
    test_labels: np.ndarray | None = None,
    k: int = 10,
) -> float:
    """Accuracy of a k-NN majority-vote classifier (uniform weights, Euclidean).

    With test data: scikit-learn's ``KNeighborsClassifier(k)`` fitted on the training
    embedding, scored on the test embedding. Without: leave-one-out on the training items
    (each item voted on by its k nearest *other* items; ties go to the smallest label, as in
    scikit-learn).
    """
    from sklearn.neighbors import KNeighborsClassifier, NearestNeighbors

    train = _matrix(train_embedding, "train_embedding")
    labels = np.asarray(train_labels).reshape(-1)
    if len(labels) != train.shape[0]:
        raise DataError(f"train_labels has {len(labels)} entries for {train.shape[0]} items")
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
        raise ValueError(f"k must be a positive integer, got {k!r}")
    if test_embedding is not None:
        if test_labels is None:
            raise ValueError("test_labels are needed with test_embedding")
        test = _matrix(test_embedding, "test_embedding")
        test_y = np.asarray(test_labels).reshape(-1)
        if len(test_y) != test.shape[0]:
            raise DataError(f"test_labels has {len(test_y)} entries for {test.shape[0]} items")
        classifier = KNeighborsClassifier(n_neighbors=int(k)).fit(train, labels)
        return float(classifier.score(test, test_y))
    if k >= train.shape[0]:
        raise ValueError(f"k ({k}) must be less than the number of items ({train.shape[0]})")
    classes, codes = np.unique(labels, return_inverse=True)
    neighbors = NearestNeighbors(n_neighbors=int(k)).fit(train).kneighbors(return_distance=False)
    votes = np.zeros((train.shape[0], len(classes)), dtype=np.int64)
    np.add.at(votes, (np.repeat(np.arange(train.shape[0]), k), codes[neighbors].ravel()), 1)
    return float(np.mean(votes.argmax(axis=1) == codes))


def normalized_stress(
    X_high: np.ndarray,
    Y: np.ndarray,
    *,
    precomputed: bool = False,
    scale_optimal: bool = False,
    sample: int | None = None,
    seed: int = 0,
    block_size: int | None = None,
) -> float:
    """``sqrt(sum_{i<j} (d_ij - dhat_ij)^2 / sum_{i<j} d_ij^2)``, ``dhat_ij = ||y_i - y_j||``.

    ``d_ij`` are Euclidean distances between rows of ``X_high``, or read from it when
    ``precomputed=True`` (a dense (n, n) distance matrix; only query rows are read).

    ``scale_optimal=True`` reports ``min_alpha stress(alpha * Y)``: the embedding's scale is
    arbitrary for many methods, so comparisons (e.g. against SMACOF, as in the paper) are
    made at the best scale ``alpha* = sum d dhat / sum dhat^2``, giving
    ``stress^2 = 1 - (sum d dhat)^2 / (sum d^2 sum dhat^2)``. Default False (raw stress).

    ``sample`` restricts the sums to that many random rows ``i`` (against all ``j``).
    """
    sums = _blocked_pass(X_high, Y, k=None, stress=True, precomputed=precomputed, sample=sample,
                         seed=seed, block_size=block_size)
    return _stress(sums, scale_optimal)


def evaluate(
    X_high: np.ndarray,
    X_low: np.ndarray,
    labels: np.ndarray | None = None,
    k: int = 10,
    sample: int | None = 5000,
    seed: int = 0,
) -> dict[str, float]:
    """All measures at once: ``trustworthiness``, ``continuity``, ``normalized_stress``,
    ``normalized_stress_scaled`` (at the optimal scale) on ``sample`` random query rows, and
    with labels ``knn_accuracy`` (leave-one-out k-NN on the whole embedding)."""
    sums = _blocked_pass(X_high, X_low, k=k, stress=True, sample=sample, seed=seed)
    trust, cont = _preservation(sums, int(k))
    result = {
        "trustworthiness": trust,
        "continuity": cont,
        "normalized_stress": _stress(sums, scale_optimal=False),
        "normalized_stress_scaled": _stress(sums, scale_optimal=True),
    }
    if labels is not None:
        result["knn_accuracy"] = knn_accuracy(X_low, labels, k=k)
    return result


__all__ = [
    "continuity", "evaluate", "knn_accuracy", "neighborhood_preservation", "normalized_stress",
    "trustworthiness",
]
