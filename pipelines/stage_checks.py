"""Every stage checks its own result before it is published, so that no published stage can
crash or poison a later one.

=============  ==========================================================================
stage          checked before publishing
=============  ==========================================================================
kNN            indices (n, k) all in ``[0, n)`` (a search that found too few neighbours
               marks them -1); distances (n, k) finite and ``>= 0``
relation       neighbour graph: indices in ``[0, n)``, values finite and ``>= 0``; sparse:
               shape (n, n), column indices in range, values finite; dense: shape
               (n, n), values finite
derived data   one row per item, values finite
phase          every floating-point weight finite; the last loss of every component
               finite
embedding      one row per input row, values finite (else the rows are named)
=============  ==========================================================================

A failed check raises :class:`StageCheckError` (a user-facing error: one line, exit status
1): the stage's temporary group is removed and nothing is published. Large arrays are read
back in row blocks, so memory stays flat.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from pipelines.errors import PipelineError

BLOCK_ROWS = 65_536
SHOWN_ROWS = 5


class StageCheckError(PipelineError):
    """A stage's result failed its check; nothing was stored."""


def _fail(stage: str, problem: str) -> StageCheckError:
    return StageCheckError(f"{stage} (not stored): {problem}")


def _rows(rows: np.ndarray) -> str:
    shown = ", ".join(str(int(r)) for r in rows[:SHOWN_ROWS])
    return f"row {shown}" if rows.size == 1 else f"rows {shown}{', ...' if rows.size > SHOWN_ROWS else ''}"


def _blocks(array: Any, rows: int = BLOCK_ROWS) -> Any:
    for start in range(0, int(array.shape[0]), rows):
        yield start, np.asarray(array[start:start + rows])


def _non_finite_rows(array: Any) -> np.ndarray:
    """Row numbers of ``array`` (read in blocks) holding NaN or inf."""
    bad: list[np.ndarray] = []
    for start, block in _blocks(array):
        if block.dtype.kind in "fc":
            rows = np.flatnonzero(~np.isfinite(block.reshape(len(block), -1)).all(axis=1))
            if rows.size:
                bad.append(rows + start)
    return np.concatenate(bad) if bad else np.zeros(0, dtype=np.int64)


def check_knn(indices: Any, distances: Any, n_items: int, stage: str) -> None:
    """kNN result: (n, k) indices in ``[0, n)``, finite non-negative distances.

    Parameters
    ----------
    indices : array-like
        (n, k) neighbour indices (a Zarr array or ndarray).
    distances : array-like
        (n, k) distances.
    n_items : int
        Number of items n.
    stage : str
        The stage's name in the message (``kNN 'p'``).
    """
    if tuple(indices.shape) != tuple(distances.shape) or len(indices.shape) != 2 or indices.shape[0] != n_items:
        raise _fail(stage, f"indices {tuple(indices.shape)} and distances {tuple(distances.shape)} are not "
                           f"two ({n_items}, k) arrays")
    for (start, idx), (_, dist) in zip(_blocks(indices), _blocks(distances), strict=True):
        out = (idx < 0) | (idx >= n_items)
        if out.any():
            rows = np.flatnonzero(out.any(axis=1)) + start
            raise _fail(stage, f"{_rows(rows)} lack valid neighbours (index outside [0, {n_items}): the search "
                               "found too few finite distances (values too large for float32 distances? scale "
                               "the data)")
        with np.errstate(invalid="ignore"):
            bad = ~(np.isfinite(dist) & (dist >= 0))
        if bad.any():
            rows = np.flatnonzero(bad.any(axis=1)) + start
            raise _fail(stage, f"{_rows(rows)} have negative, NaN or infinite distances (values too large "
                               "for float32 distances? scale the data)")


def check_relation(value: Any, n_items: int, stage: str) -> None:
    """A global relation's value: its shape, indices in range, finite values (and
    non-negative ones for a neighbour graph).

    Parameters
    ----------
    value : NeighborGraph, LabelEquality, sparse matrix or ndarray
        The relation after its transforms.
    n_items : int
        Number of items n.
    stage : str
        The stage's name in the message.
    """
    import scipy.sparse as sp

    from paradime_core.relation_data import LabelEquality, NeighborGraph

    if isinstance(value, NeighborGraph):
        check_knn(value.indices, value.values, n_items, stage)
        return
    if isinstance(value, LabelEquality):
        if value.n_items != n_items:
            raise _fail(stage, f"{value.n_items} labels for {n_items} items")
        return
    shape = tuple(value.shape)
    if shape != (n_items, n_items):
        raise _fail(stage, f"shape {shape}, expected ({n_items}, {n_items})")
    if sp.issparse(value):
        matrix = sp.csr_array(value)
        if matrix.nnz and (matrix.indices.min() < 0 or matrix.indices.max() >= n_items):
            raise _fail(stage, f"column indices outside [0, {n_items})")
        data = matrix.data
        if data.dtype.kind in "fc" and not np.isfinite(data).all():
            rows = np.unique(np.repeat(np.arange(n_items), np.diff(matrix.indptr))[~np.isfinite(data)])
            raise _fail(stage, f"{_rows(rows)} hold NaN or inf")
        return
    rows = _non_finite_rows(np.asarray(value))
    if rows.size:
        raise _fail(stage, f"{_rows(rows)} hold NaN or inf")


def check_rows(values: Any, n_items: int, stage: str) -> None:
    """Derived data or an embedding: one row per item, finite values.

    Parameters
    ----------
    values : array-like
        The rows (a Zarr array or ndarray; read in blocks).
    n_items : int
        Number of items (input rows).
    stage : str
        The stage's name in the message.
    """
    if len(values.shape) == 0 or values.shape[0] != n_items:
        raise _fail(stage, f"shape {tuple(values.shape)}, expected {n_items} rows")
    rows = _non_finite_rows(values)
    if rows.size:
        raise _fail(stage, f"{rows.size} row(s) are NaN or inf ({_rows(rows)}); the model or function "
                           "gives no finite value for those input rows")


def check_phase(state: Mapping[str, Any], final_losses: Mapping[str, Any], stage: str) -> None:
    """A trained phase: finite weights and a finite last loss of every component.

    Parameters
    ----------
    state : Mapping
        The model's state dict (name -> tensor).
    final_losses : Mapping
        Loss component -> its last recorded value (None if none was recorded).
    stage : str
        The stage's name in the message.
    """
    import torch

    for name, tensor in state.items():
        if torch.is_tensor(tensor) and tensor.is_floating_point() and not bool(torch.isfinite(tensor).all()):
            raise _fail(stage, f"model weight '{name}' holds NaN or inf after training (lower the learning "
                               "rate, or check the data's scale)")
    for name, value in final_losses.items():
        if value is not None and not np.isfinite(float(value)):
            raise _fail(stage, f"the last loss of '{name}' is {value}")
