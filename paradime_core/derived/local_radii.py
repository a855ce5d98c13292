r"""Local radii of the items in the original space: densMAP's global density quantity.

densMAP (Narayan, Berger & Cho 2021) measures how dense the neighbourhood of item ``i``
is by its *local radius*, the similarity-weighted mean squared distance to its neighbours
in a fuzzy graph :math:`P`,

.. math:: R_i = \frac{\sum_j p_{ij} \, \|x_i - x_j\|^2}{\sum_j p_{ij}},

summed over the graph's stored entries :math:`j \ne i` (the union of the two directions
for a symmetric graph). Items in a sparse cluster have a large :math:`R_i`, items in a
dense cluster a small one. The quantity is global (it needs every neighbour of ``i``), so it
is computed once from the global graph, before training, as derived data; the density
loss (:mod:`paradime_core.losses.density`) compares it with radii that each batch
estimates in the embedding.
"""

from __future__ import annotations

from typing import Annotated

import numpy as np
from annotated_types import Gt

from paradime_core.errors import DataError
from paradime_core.relation_data import LabelEquality, RelationValue, to_csr
from paradime_core.spec.registry import register_data_function

RADIUS_EPS = 1e-8
"""Added to a radius inside its logarithm (umap-learn's choice), so an item whose
neighbours coincide with it stays finite."""
EDGE_BLOCK = 1 << 18
"""Edges whose squared distances are computed at once (bounds the temporary memory)."""


def edge_squared_distances(data: np.ndarray, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
    """``||x_rows[e] - x_cols[e]||^2`` per edge ``e`` (float64), in blocks of edges."""
    out = np.empty(rows.shape[0], dtype=np.float64)
    for start in range(0, rows.shape[0], EDGE_BLOCK):
        stop = start + EDGE_BLOCK
        diff = data[rows[start:stop]].astype(np.float64) - data[cols[start:stop]]
        out[start:stop] = np.einsum("ij,ij->i", diff, diff)
    return out


def weighted_log_radii(rows: np.ndarray, weights: np.ndarray, squared: np.ndarray, n_items: int,
                       eps: float = RADIUS_EPS) -> tuple[np.ndarray, np.ndarray]:
    r"""``log(eps + sum_e w_e d_e^2 / sum_e w_e)`` per item over the edges ``e`` it starts,
    and the number of such edges (an item without edges gets radius 0, i.e. ``log eps``)."""
    numerator = np.bincount(rows, weights=weights * squared, minlength=n_items)
    denominator = np.bincount(rows, weights=weights, minlength=n_items)
    count = np.bincount(rows, minlength=n_items)
    radius = numerator / np.where(denominator > 0, denominator, 1.0)
    return np.log(eps + radius), count


@register_data_function("log_radii", aliases=("local_radii", "log_local_radii"))
def log_radii(graph: RelationValue, data: np.ndarray,
              eps: Annotated[float, Gt(0)] = RADIUS_EPS) -> np.ndarray:
    r"""densMAP's log local radius :math:`\log(\varepsilon + R_i)` of every item, (n,) float32.

    :math:`R_i = \sum_j p_{ij} \|x_i - x_j\|^2 / \sum_j p_{ij}` over the stored, positive,
    off-diagonal entries of row ``i`` of ``graph`` (e.g. UMAP's fuzzy graph ``p``), with
    squared Euclidean distances of the rows of ``data``; :math:`\varepsilon` = ``eps``.

    Parameters
    ----------
    graph : RelationValue
        The global similarity graph ``P`` (a neighbour, sparse or dense relation).
    data : numpy.ndarray
        The items' features (n, d), the space whose density is measured.
    eps : float
        Added to :math:`R_i` inside the logarithm (> 0).
    """
    if isinstance(graph, LabelEquality):
        raise DataError("log_radii: a label-equality relation has no edge weights; use a neighbour graph")
    matrix = to_csr(graph).tocoo()
    x = np.asarray(data)
    x = x.reshape(x.shape[0], -1)
    if matrix.shape[0] != x.shape[0]:
        raise DataError(f"log_radii: the graph covers {matrix.shape[0]} items, the data has {x.shape[0]} rows")
    rows, cols = matrix.row.astype(np.int64), matrix.col.astype(np.int64)
    weights = np.asarray(matrix.data, dtype=np.float64)
    if not np.all(np.isfinite(weights)) or (weights < 0).any():
        raise DataError("log_radii: the graph's values must be finite, non-negative similarities")
    keep = (weights > 0) & (rows != cols)
    rows, cols, weights = rows[keep], cols[keep], weights[keep]
    radii, count = weighted_log_radii(rows, weights, edge_squared_distances(x, rows, cols), x.shape[0], eps)
    if (count == 0).any():
        raise DataError(f"log_radii: {int((count == 0).sum())} item(s) have no neighbour in the graph")
    return radii.astype(np.float32)


def density_correlation(graph: RelationValue, data: np.ndarray, embedding: np.ndarray) -> float:
    r"""densMAP's measure of density preservation: Pearson's :math:`\rho(\log R, \log r)` over all items.

    :math:`R_i` is :func:`log_radii` of ``data`` over ``graph`` and :math:`r_i` the same
    quantity of ``embedding`` over the same graph and weights, so that embeddings of every
    method are measured alike (1: the embedding orders and scales the local radii as the
    data does; 0: no relation).

    Parameters
    ----------
    graph : RelationValue
        The original space's similarity graph (e.g. UMAP's fuzzy graph of ``data``).
    data : numpy.ndarray
        The items' features (n, d).
    embedding : numpy.ndarray
        Their embedding (n, k).
    """
    original = log_radii(graph, data).astype(np.float64)
    embedded = log_radii(graph, embedding).astype(np.float64)
    return float(np.corrcoef(original, embedded)[0, 1])


__all__ = ["RADIUS_EPS", "density_correlation", "edge_squared_distances", "log_radii", "weighted_log_radii"]
