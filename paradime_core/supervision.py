"""Labels mixed into a neighbour graph: supervised and semi-supervised embeddings.

The intersections of umap-learn's supervised UMAP (McInnes et al. 2018, Sec. 6 of the
documentation "UMAP for supervised dimension reduction"), on a sparse graph ``W``
(``w_ij`` in [0, 1]) and target values ``y``, where ``-1`` marks an unlabelled row:

- categorical targets (:func:`categorical_intersection`): each edge keeps its weight
  when both ends share a label, is scaled by ``exp(-far_dist)`` when their labels differ
  and by ``exp(-unknown_dist)`` when either end is unlabelled. ``target_weight`` ``t`` in
  [0, 1] sets ``far_dist = 2.5 / (1 - t)`` (``t = 1``: ``1e12``, label edges cut), so
  ``t = 0.5`` gives umap-learn's default ``far_dist = 5``.
- metric targets (:func:`fuzzy_intersection`): a second graph ``V`` is built over ``y``
  (kNN, UMAP's ``connect`` and fuzzy union) and every edge of ``W + V`` gets
  ``w^((1 - t) / t) v`` for ``t >= 0.5`` and ``w v^(t / (1 - t))`` below, with a missing
  ``w`` read as half the smallest stored ``w`` and a missing ``v`` as half the smallest
  stored ``v``, at most 1e-4 (edges missing from both are dropped).
- both end with :func:`reset_local_connectivity`: each row divided by its largest value,
  then the fuzzy union ``A + A^T - A o A^T``, so every item again has an edge of weight 1.

For a normalised affinity such as t-SNE's ``P`` the categorical scaling alone is used
(``reset=False``): it keeps ``P`` symmetric and the training samples edges by weight.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from paradime_core.errors import DataError
from paradime_core.relation_data import RelationValue, to_csr

UNLABELLED = -1
TARGET_METRICS = ("categorical", "euclidean", "sqeuclidean", "cosine")


def far_distance(target_weight: float) -> float:
    """``2.5 / (1 - t)`` for ``t < 1``, else ``1e12``: the label distance of two classes."""
    if not 0.0 <= float(target_weight) <= 1.0:
        raise ValueError(f"target_weight must be in [0, 1], got {target_weight!r}")
    return 1.0e12 if target_weight >= 1.0 else 2.5 / (1.0 - float(target_weight))


def label_codes(y: np.ndarray) -> np.ndarray:
    """Integer class codes of ``y`` (one per row); rows whose label is ``-1`` get ``-1``."""
    y = np.asarray(y)
    if y.ndim != 1:
        raise DataError(f"y: categorical labels must be one value per row, got shape {y.shape}")
    unknown = y == UNLABELLED if y.dtype.kind in "iufb" else np.zeros(len(y), dtype=bool)
    codes = np.full(len(y), UNLABELLED, dtype=np.int64)
    if (~unknown).any():
        _, codes[~unknown] = np.unique(y[~unknown], return_inverse=True)
    return codes


def reset_local_connectivity(graph: sp.csr_array) -> sp.csr_array:
    """Each row scaled to a maximum of 1, then the fuzzy union ``A + A^T - A o A^T``."""
    graph = sp.csr_array(graph, dtype=np.float64)
    row_max = np.asarray(graph.max(axis=1).todense()).ravel()
    scale = np.divide(1.0, row_max, out=np.zeros_like(row_max), where=row_max > 0)
    scaled = sp.csr_array(sp.diags_array(scale) @ graph)
    transposed = scaled.T.tocsr()
    union = sp.csr_array(scaled + transposed - scaled.multiply(transposed))
    union.eliminate_zeros()
    union.sort_indices()
    return union


def categorical_intersection(graph: RelationValue, y: np.ndarray, target_weight: float = 0.5,
                             unknown_dist: float = 1.0, reset: bool = True) -> sp.csr_array:
    """``graph`` with edges between different labels scaled by ``exp(-far_dist)`` (see module doc)."""
    codes = label_codes(y)
    matrix = sp.coo_array(to_csr(graph), dtype=np.float64)
    if len(codes) != matrix.shape[0]:
        raise DataError(f"y has {len(codes)} rows but the graph relates {matrix.shape[0]} items")
    rows, cols = codes[matrix.row], codes[matrix.col]
    unknown = (rows == UNLABELLED) | (cols == UNLABELLED)
    factor = np.where(unknown, np.exp(-unknown_dist),
                      np.where(rows != cols, np.exp(-far_distance(target_weight)), 1.0))
    result = sp.csr_array((matrix.data * factor, (matrix.row, matrix.col)), shape=matrix.shape)
    result.eliminate_zeros()
    result.sort_indices()
    return reset_local_connectivity(result) if reset else result


def fuzzy_intersection(left: sp.csr_array, right: sp.csr_array, target_weight: float = 0.5) -> sp.csr_array:
    """The weighted intersection of two fuzzy graphs over the same items (see module doc)."""
    t = float(target_weight)
    if not 0.0 <= t <= 1.0:
        raise ValueError(f"target_weight must be in [0, 1], got {target_weight!r}")
    left, right = sp.csr_array(left, dtype=np.float64), sp.csr_array(right, dtype=np.float64)
    left_min = max(float(left.data.min()) / 2.0, 1e-8) if left.nnz else 1e-8
    right_min = min(max(float(right.data.min()) / 2.0, 1e-8), 1e-4) if right.nnz else 1e-8
    pattern = sp.coo_array(left + right)
    rows, cols = pattern.row, pattern.col
    left_values = _lookup(left, rows, cols, left_min)
    right_values = _lookup(right, rows, cols, right_min)
    if t < 0.5:
        values = left_values * right_values ** (t / (1.0 - t))
    else:
        values = left_values ** ((1.0 - t) / t) * right_values
    keep = (left_values > left_min) | (right_values > right_min)
    result = sp.csr_array((np.where(keep, values, 0.0), (rows, cols)), shape=left.shape)
    result.eliminate_zeros()
    return reset_local_connectivity(result)


def _lookup(matrix: sp.csr_array, rows: np.ndarray, cols: np.ndarray, missing: float) -> np.ndarray:
    """``matrix[rows, cols]`` with ``missing`` where no entry is stored."""
    values = np.asarray(matrix[rows, cols]).ravel()
    stored = np.asarray(sp.csr_array((np.ones(matrix.nnz), matrix.indices, matrix.indptr),
                                     shape=matrix.shape)[rows, cols]).ravel() > 0
    return np.where(stored, values, missing)


def target_graph(y: np.ndarray, n_neighbors: int, metric: str) -> sp.csr_array:
    """UMAP's fuzzy graph of the targets ``y`` (one row per item): kNN, ``connect``, fuzzy union."""
    from paradime_core.relations import Connect, Neighbor, Symmetrize

    values = np.asarray(y, dtype=np.float64)
    values = values.reshape(len(values), -1)
    k = max(1, min(int(n_neighbors), len(values) - 1))
    graph = Neighbor(n_neighbors=k, metric=metric).compute(values)
    return to_csr(Symmetrize(sub_prod=True)(Connect()(graph)))
