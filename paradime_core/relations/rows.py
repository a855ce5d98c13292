"""Rows of a global relation value, for the row-wise calibrations (perplexity, connect).

A global relation value (a :class:`~paradime_core.relation_data.NeighborGraph`, a sparse
CSR matrix or a dense array) is laid out as a padded ``(n, m)`` array of each row's
entries with a validity mask; :func:`_solve_decreasing` then finds, for every row at once,
the parameter at which a decreasing row function reaches its target (bracketing and
bisection in ``log(beta)``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import scipy.sparse as sp
import torch

from paradime_core.errors import DataError
from paradime_core.relation_data import LabelEquality, NeighborGraph, RelationValue

_FAR = 1e300  # stands for "no entry" in padded rows: exp(-beta * _FAR) == 0 for any beta used
_LOG_BETA_LIMIT = 300.0  # bracket limits for log(beta) on row-normalised data
_BRACKET_START = 5.0  # initial bracket [-5, 5] for log(beta) on row-normalised data
_BRACKET_STEP = 10.0


# --------------------------------------------------------------------------- value helpers
def _float_dtype(array: np.ndarray) -> np.dtype:
    """float32 input stays float32; everything else becomes float64."""
    return np.dtype(np.float32) if array.dtype == np.float32 else np.dtype(np.float64)


def _reject(value: Any, name: str, allow_tensor: bool = False) -> None:
    if isinstance(value, LabelEquality):
        raise DataError(f"transform '{name}' cannot apply to an implicit label-equality relation")
    if isinstance(value, torch.Tensor) and not allow_tensor:
        raise DataError(f"transform '{name}' applies to global relations, not to batch tensors")


def _map_values(value: RelationValue, fn: Callable[[np.ndarray], np.ndarray]) -> RelationValue:
    """Apply an elementwise function to the stored entries of a global relation value."""
    if isinstance(value, NeighborGraph):
        return NeighborGraph(value.indices, fn(value.values))
    if sp.issparse(value):
        matrix = sp.csr_array(value, copy=True)
        matrix.data = fn(matrix.data)
        return matrix
    return fn(np.asarray(value))


@dataclass
class _RowLayout:
    """Rows of a global relation as a padded (n, m) array, for vectorised row calibration.

    ``columns`` holds each entry's item (-1 in padding), ``valid`` marks real entries that do
    not relate an item to itself; ``width`` counts the stored entries of each row (self
    included), the ``k`` of a kNN row.
    """

    values: np.ndarray
    columns: np.ndarray
    valid: np.ndarray
    width: np.ndarray
    rebuild: Callable[[np.ndarray], RelationValue]


def _row_layout(value: RelationValue, name: str) -> _RowLayout:
    _reject(value, name)
    if isinstance(value, NeighborGraph):
        n, k = value.indices.shape
        valid = value.indices != np.arange(n)[:, None]
        dtype = _float_dtype(value.values)
        return _RowLayout(
            np.asarray(value.values, dtype=np.float64), value.indices, valid, np.full(n, k),
            lambda out: _graph_without_self(value.indices, out.astype(dtype), valid),
        )
    if sp.issparse(value):
        matrix = sp.csr_array(value, copy=True)
        matrix.sum_duplicates()
        n = matrix.shape[0]
        lengths = np.diff(matrix.indptr)
        rows = np.repeat(np.arange(n), lengths)
        pos = np.arange(matrix.nnz) - matrix.indptr[rows]
        width = int(lengths.max()) if n else 0
        padded = np.zeros((n, width))
        padded[rows, pos] = matrix.data
        columns = np.full((n, width), -1, dtype=np.int64)
        columns[rows, pos] = matrix.indices
        valid = np.zeros((n, width), dtype=bool)
        keep = matrix.indices != rows
        valid[rows, pos] = keep
        dtype = _float_dtype(matrix.data)

        def rebuild(out: np.ndarray) -> sp.csr_array:
            indptr = np.concatenate([[0], np.cumsum(np.bincount(rows[keep], minlength=n))])
            data = out[rows, pos][keep].astype(dtype)
            return sp.csr_array((data, matrix.indices[keep], indptr), shape=matrix.shape)

        return _RowLayout(padded, columns, valid, lengths, rebuild)
    array = np.asarray(value)
    if array.ndim != 2 or array.shape[0] != array.shape[1]:
        raise DataError(f"transform '{name}' needs a square (n, n) relation, got shape {array.shape}")
    n = array.shape[0]
    valid = ~np.eye(n, dtype=bool)
    dtype = _float_dtype(array)

    def rebuild_dense(out: np.ndarray) -> np.ndarray:
        out = out.astype(dtype)
        np.fill_diagonal(out, 0.0)
        return out

    columns = np.broadcast_to(np.arange(n)[None, :], (n, n))
    return _RowLayout(array.astype(np.float64), columns, valid, np.full(n, n), rebuild_dense)


def _graph_without_self(indices: np.ndarray, values: np.ndarray, valid: np.ndarray) -> NeighborGraph:
    """Drop each row's self entry when every row holds exactly one; else zero self values."""
    n, k = indices.shape
    if k > 1 and np.all((~valid).sum(axis=1) == 1):
        return NeighborGraph(indices[valid].reshape(n, k - 1), values[valid].reshape(n, k - 1))
    values = np.where(valid, values, 0).astype(values.dtype)
    return NeighborGraph(indices, values)


def _check_distances(layout: _RowLayout, name: str) -> None:
    values = layout.values
    if values.size == 0 or (np.isfinite(values).all() and values.min() >= 0):
        return  # (padding holds zeros, so the whole array passing means the entries do)
    entries = values[layout.valid]
    if not np.all(np.isfinite(entries)):
        raise DataError(f"transform '{name}': the relation holds NaN or infinite distances")
    if entries.size and entries.min() < 0:
        raise DataError(f"transform '{name}': the relation holds negative distances")


# --------------------------------------------------------------------------- row calibration
def _solve_decreasing(
    evaluate: Callable[[np.ndarray, np.ndarray | None], np.ndarray],
    target: np.ndarray,
    tol: float,
    max_iter: int = 200,
) -> tuple[np.ndarray, np.ndarray]:
    """Vectorised bisection for ``g_i(x_i) = target_i``, ``g_i`` decreasing in ``x`` (= log beta).

    ``evaluate(x, sel)`` returns ``g_i(x_i)`` for the rows ``sel`` (``None``: all rows) at
    once. The bracket starts at [-5, 5] and widens by 10 per step where it does not hold
    the root, up to +-300; rows whose root lies beyond (an unattainable target) stay at that
    limit. Bisection stops when every attainable row is within ``tol``.
    Returns ``(x, attained)``.
    """
    m = len(target)
    lo = np.full(m, -_BRACKET_START)
    hi = np.full(m, _BRACKET_START)
    attained = np.ones(m, dtype=bool)
    low_out = np.zeros(m, dtype=bool)
    for bound, sign in ((lo, -1.0), (hi, 1.0)):
        sel = None
        while True:
            g = evaluate(bound if sel is None else bound[sel], sel)
            t = target if sel is None else target[sel]
            outside = np.flatnonzero(g < t if sign < 0 else g > t)
            sel = outside if sel is None else sel[outside]
            if not sel.size:
                break
            at_limit = np.abs(bound[sel]) >= _LOG_BETA_LIMIT
            attained[sel[at_limit]] = False
            if sign < 0:
                low_out[sel[at_limit]] = True
            sel = sel[~at_limit]
            if not sel.size:
                break
            bound[sel] += sign * _BRACKET_STEP
    # Rows out of reach keep the limit they hit (lo == hi there).
    hi[low_out] = lo[low_out]
    high_out = ~attained & ~low_out
    lo[high_out] = hi[high_out]
    mid = (lo + hi) / 2
    for _ in range(max_iter):
        mid = (lo + hi) / 2
        error = evaluate(mid, None) - target
        above = error > 0  # g too large -> the root lies at larger x
        lo = np.where(above, mid, lo)
        hi = np.where(above, hi, mid)
        if not np.any(attained & (np.abs(error) > tol) & (hi - lo > 1e-13)):
            break
    return mid, attained


def _normalised_rows(
    values: np.ndarray, valid: np.ndarray, counts: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Row-wise ``x / mean(x)`` over valid entries (rows of equal entries keep scale 1);
    invalid entries become ``_FAR``. Returns ``(x, scale)``."""
    x = np.where(valid, values, 0.0)
    scale = x.sum(axis=1) / np.maximum(counts, 1)
    scale[scale <= 0] = 1.0
    x /= scale[:, None]
    x[~valid] = _FAR
    return x, scale


class _Kernel:
    """``w_ij = exp(-beta_i x_ij)`` over padded rows, with one reused work buffer."""

    def __init__(self, x: np.ndarray):
        self.x = x
        self.buffer = np.empty_like(x)

    def weights(self, log_beta: np.ndarray, sel: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
        x = self.x if sel is None else self.x[sel]
        w = self.buffer if sel is None else np.empty_like(x)
        with np.errstate(over="ignore"):  # beta * _FAR -> inf -> weight 0, as intended
            np.multiply(x, -np.exp(log_beta)[:, None], out=w)
        np.exp(w, out=w)
        return w, x

    def entropy(self, log_beta: np.ndarray, sel: np.ndarray | None) -> np.ndarray:
        """Entropy (nats) of ``p_ij = w_ij / sum_j w_ij``: ``ln S_i + beta_i sum_j p_ij x_ij``
        (rows whose minimum x is 0, so ``S_i >= 1``)."""
        w, x = self.weights(log_beta, sel)
        total = w.sum(axis=1)
        return np.log(total) + np.exp(log_beta) * np.einsum("ij,ij->i", w, x) / total

    def row_sums(self, log_beta: np.ndarray, sel: np.ndarray | None) -> np.ndarray:
        return self.weights(log_beta, sel)[0].sum(axis=1)


def gaussian_conditionals(
    sq_dist: np.ndarray, valid: np.ndarray, perplexity: np.ndarray, tol: float = 1e-4, max_iter: int = 200
) -> tuple[np.ndarray, np.ndarray]:
    """t-SNE conditional probabilities for padded rows of squared distances.

    ``p_{j|i} = exp(-beta_i s_ij) / sum_k exp(-beta_i s_ik)`` over the valid entries of row
    ``i``, with ``beta_i`` found by bisection on ``log beta`` (all rows at once) so that
    the entropy ``-sum_j p_{j|i} ln p_{j|i}`` equals ``ln perplexity_i`` within ``tol``.
    Each row's minimum is subtracted and the row is divided by its mean beforehand, so
    the result does not depend on the data's scale. Returns ``(P, attained)``.
    """
    counts = valid.sum(axis=1)
    minimum = np.where(valid, sq_dist, np.inf).min(axis=1, initial=np.inf)
    minimum[~np.isfinite(minimum)] = 0.0
    x, _ = _normalised_rows(sq_dist - minimum[:, None], valid, counts)
    rows = np.flatnonzero(counts > 0)
    all_rows = rows.size == len(counts)
    kernel = _Kernel(x if all_rows else x[rows])
    log_beta, attained = _solve_decreasing(kernel.entropy, np.log(perplexity[rows]), tol, max_iter)
    w, _ = kernel.weights(log_beta, None)
    w /= w.sum(axis=1, keepdims=True)
    if all_rows:
        return w, attained
    probabilities = np.zeros_like(x)
    probabilities[rows] = w
    reached = np.ones(len(counts), dtype=bool)
    reached[rows] = attained
    return probabilities, reached
