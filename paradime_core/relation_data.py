"""Values of global relations, and how a batch reads them.

A global relation is one of four kinds of value; none of them is ever an n x n dense
array unless the relation itself is dense (``pdist``, ``precomputed`` dense):

- :class:`NeighborGraph`: each row ``i`` holds ``k`` neighbours ``indices[i]`` with
  ``values[i]`` (distances before transforms, affinities after). This is what kNN relations
  produce and what the row-wise calibrations (perplexity, connect) work on.
- a ``scipy.sparse.csr_array`` (n, n): general sparse relations, e.g. after symmetrisation.
  Explicit zeros are kept (two duplicate items have distance 0 and are still neighbours).
- a dense ``numpy.ndarray`` (n, n): exact pairwise distances of small data.
- :class:`LabelEquality`: the implicit relation ``r_ij = [label_i == label_j]``.

A batch reads a global relation either as a dense (b, b) sub-matrix over its items
(:func:`submatrix`) or as one value per sampled edge (:func:`edge_values`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

from paradime_core.errors import DataError


@dataclass
class NeighborGraph:
    """Fixed-width neighbour lists: ``values[i, j]`` relates item ``i`` to ``indices[i, j]``."""

    indices: np.ndarray  # (n, k) int64
    values: np.ndarray  # (n, k) float

    def __post_init__(self) -> None:
        self.indices = np.asarray(self.indices, dtype=np.int64)
        self.values = np.asarray(self.values)
        if self.indices.shape != self.values.shape or self.indices.ndim != 2:
            raise DataError(
                f"neighbour indices {self.indices.shape} and values {self.values.shape} "
                "must be two arrays of the same (n, k) shape"
            )
        n = self.indices.shape[0]
        if self.indices.size and (self.indices.min() < 0 or self.indices.max() >= n):
            row = int(np.flatnonzero(((self.indices < 0) | (self.indices >= n)).any(axis=1))[0])
            raise DataError(f"neighbour graph: row {row} has an index outside [0, {n}) (a search that finds "
                            "too few finite distances marks missing neighbours -1; values too large for "
                            "float32 distances?)")

    @property
    def n_items(self) -> int:
        return self.indices.shape[0]

    @property
    def n_neighbors(self) -> int:
        return self.indices.shape[1]

    @property
    def shape(self) -> tuple[int, int]:
        return (self.n_items, self.n_items)

    def to_sparse(self) -> sp.csr_array:
        """The (n, n) CSR form; explicit zeros kept, duplicate (i, j) entries summed."""
        n, k = self.indices.shape
        indptr = np.arange(0, n * k + 1, k, dtype=np.int64)
        matrix = sp.csr_array(
            (self.values.ravel().copy(), self.indices.ravel().copy(), indptr), shape=(n, n)
        )
        matrix.sum_duplicates()
        return matrix


@dataclass
class LabelEquality:
    """Implicit relation ``r_ij = 1 if labels[i] == labels[j] else 0`` (never materialised)."""

    labels: np.ndarray

    @property
    def n_items(self) -> int:
        return len(self.labels)

    @property
    def shape(self) -> tuple[int, int]:
        return (self.n_items, self.n_items)


RelationValue = np.ndarray | sp.csr_array | sp.spmatrix | NeighborGraph | LabelEquality


def n_items_of(value: RelationValue) -> int:
    """Number of items the relation is defined over."""
    if isinstance(value, (NeighborGraph, LabelEquality)):
        return value.n_items
    return int(value.shape[0])


def to_csr(value: RelationValue) -> sp.csr_array:
    """Any sparse-compatible relation value as a CSR array (dense arrays are converted)."""
    if isinstance(value, NeighborGraph):
        return value.to_sparse()
    if isinstance(value, LabelEquality):
        raise DataError("a label-equality relation is implicit and has no sparse form")
    if sp.issparse(value):
        return sp.csr_array(value)
    return sp.csr_array(np.asarray(value))


def submatrix(value: RelationValue, items: np.ndarray) -> np.ndarray:
    """Dense (b, b) block ``R[items][:, items]`` (entries absent from a sparse relation are 0)."""
    items = np.asarray(items, dtype=np.int64)
    if isinstance(value, LabelEquality):
        labels = value.labels[items]
        return (labels[:, None] == labels[None, :]).astype(np.float32)
    if isinstance(value, np.ndarray):
        return value[np.ix_(items, items)]
    matrix = value.to_sparse() if isinstance(value, NeighborGraph) else sp.csr_array(value)
    return matrix[items][:, items].toarray()


def edge_values(value: RelationValue, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
    """``R[rows[e], cols[e]]`` for each edge ``e`` (0 where a sparse relation has no entry)."""
    rows = np.asarray(rows, dtype=np.int64)
    cols = np.asarray(cols, dtype=np.int64)
    if isinstance(value, LabelEquality):
        return (value.labels[rows] == value.labels[cols]).astype(np.float32)
    if isinstance(value, np.ndarray):
        return value[rows, cols]
    matrix = value.to_sparse() if isinstance(value, NeighborGraph) else sp.csr_array(value)
    return np.asarray(matrix[rows, cols]).ravel()


def restrict(value: RelationValue, items: np.ndarray) -> RelationValue:
    """The relation among ``items`` only: ``R[items][:, items]``, re-indexed ``0..len(items)-1``.

    A neighbour graph becomes a CSR array (a row keeps only the neighbours inside ``items``,
    so the rows no longer have a fixed width); a label equality keeps its kind.
    """
    items = np.asarray(items, dtype=np.int64)
    if isinstance(value, LabelEquality):
        return LabelEquality(np.asarray(value.labels)[items])
    if isinstance(value, np.ndarray):
        return value[np.ix_(items, items)]
    return to_csr(value)[items][:, items]
