"""Distances between items: dense exact matrices (numpy) and batch distances (torch).

Metrics ``d``: ``euclidean`` ``||x - y||``, ``sqeuclidean`` ``||x - y||^2``, ``cosine``
``1 - <x, y> / (||x|| ||y||)`` (an all-zero row has distance 1 to every other row) and
``manhattan`` ``sum_l |x_l - y_l|``. Every item has distance 0 to itself. The batch
Euclidean distance has gradient 0 at zero distance (``sqrt`` is applied to squared
distances only where they are positive), so duplicates never produce NaN.
"""

from __future__ import annotations

import numpy as np
import torch
from scipy.spatial.distance import cdist

from paradime_core.batch import Batch, gather_rows

CHUNK_ELEMENTS = 2**25  # float64 entries of one distance chunk (256 MiB)
DIRECT_ELEMENTS = 2**24  # largest b * b * d for which batch distances use differences


def dense_distances(X: np.ndarray, metric: str = "euclidean", chunk_size: int = 4096) -> np.ndarray:
    """The (n, n) float32 distance matrix of the rows of ``X``, computed in row chunks.

    Euclidean distances use ``||x_i||^2 + ||x_j||^2 - 2 <x_i, x_j>`` in float64 (clipped at 0,
    diagonal exactly 0); manhattan goes through ``scipy.spatial.distance.cdist``.
    """
    X = np.asarray(X, dtype=np.float64)
    n = X.shape[0]
    if metric == "cosine":
        norms = np.linalg.norm(X, axis=1, keepdims=True)
        X = np.divide(X, norms, out=np.zeros_like(X), where=norms > 0)
    sq_norms = (X * X).sum(axis=1)
    rows_per_chunk = max(1, min(int(chunk_size), CHUNK_ELEMENTS // max(n, 1)))
    out = np.empty((n, n), dtype=np.float32)
    for start in range(0, n, rows_per_chunk):
        stop = min(start + rows_per_chunk, n)
        block = X[start:stop]
        if metric == "manhattan":
            chunk = cdist(block, X, metric="cityblock")
        elif metric == "cosine":
            chunk = np.clip(1.0 - block @ X.T, 0.0, 2.0)
        else:
            chunk = sq_norms[start:stop, None] + sq_norms[None, :] - 2.0 * (block @ X.T)
            np.maximum(chunk, 0.0, out=chunk)
            if metric == "euclidean":
                np.sqrt(chunk, out=chunk)
        out[start:stop] = chunk
    np.fill_diagonal(out, 0.0)
    return out


def _safe_sqrt(sq: torch.Tensor) -> torch.Tensor:
    """``sqrt(sq)`` with gradient 0 (not inf/NaN) where ``sq == 0``; NaN stays NaN."""
    positive = sq > 0
    root = torch.sqrt(torch.where(positive, sq, torch.ones_like(sq)))
    return torch.where(positive, root, torch.where(torch.isnan(sq), sq, torch.zeros_like(sq)))


def paired_distances(x: torch.Tensor, y: torch.Tensor, metric: str) -> torch.Tensor:
    """Row-wise ``d(x_e, y_e)`` of two (m, d) tensors (differentiable)."""
    if metric == "cosine":
        return 1.0 - torch.nn.functional.cosine_similarity(x, y, dim=-1, eps=1e-12)
    diff = x - y
    if metric == "manhattan":
        return diff.abs().sum(-1)
    sq = (diff * diff).sum(-1)
    return sq if metric == "sqeuclidean" else _safe_sqrt(sq)


def pairwise_distances(y: torch.Tensor, metric: str) -> torch.Tensor:
    """The (b, b) matrix ``d(y_a, y_b)`` (differentiable; diagonal exactly 0).

    Small ``b^2 d`` uses the differences ``y_a - y_b`` (accurate for small distances);
    larger uses ``||y_a||^2 + ||y_b||^2 - 2 <y_a, y_b>`` (clipped at 0).
    """
    b = y.shape[0]
    if metric == "cosine":
        unit = torch.nn.functional.normalize(y, dim=-1, eps=1e-12)
        off_diagonal = 1.0 - torch.eye(b, dtype=y.dtype, device=y.device)
        return (1.0 - unit @ unit.T).clamp(min=0.0, max=2.0) * off_diagonal
    direct = b * b * y.shape[1] <= DIRECT_ELEMENTS
    if metric == "manhattan":
        if direct:
            return (y[:, None, :] - y[None, :, :]).abs().sum(-1)
        return torch.cdist(y, y, p=1.0)
    if direct:
        diff = y[:, None, :] - y[None, :, :]
        sq = (diff * diff).sum(-1)
    else:
        norms = (y * y).sum(-1)
        sq = (norms[:, None] + norms[None, :] - 2.0 * (y @ y.T)).clamp(min=0.0)
        sq = sq * (1.0 - torch.eye(b, dtype=sq.dtype, device=sq.device))
    return sq if metric == "sqeuclidean" else _safe_sqrt(sq)


def _edge_distances(outputs: torch.Tensor, batch: Batch, metric: str) -> torch.Tensor:
    """Distances along the batch's edges, in the edge layout.

    With shared negatives (``batch.negative_groups``, shape (G, r)) the ``B r`` negative
    distances ``d(y_{s_b}, y_{m_{b // g, k}})`` are one broadcast (G, g, r) block over
    ``B + G r`` gathered rows (the same values as gathering every pair).
    """
    groups = batch.negative_groups
    if groups is not None:
        n_groups, rate = groups.shape
        n_pos = batch.edge_rows.shape[0] // (1 + rate)
        if n_pos % n_groups == 0:
            sources = gather_rows(outputs, batch.edge_rows[:n_pos])
            positive = paired_distances(sources, gather_rows(outputs, batch.edge_cols[:n_pos]), metric)
            shared = gather_rows(outputs, groups.reshape(-1)).reshape(n_groups, 1, rate, -1)
            grouped_sources = sources.reshape(n_groups, n_pos // n_groups, 1, -1)
            negative = paired_distances(grouped_sources, shared, metric).reshape(-1)
            return torch.cat([positive, negative])
    return paired_distances(gather_rows(outputs, batch.edge_rows), gather_rows(outputs, batch.edge_cols), metric)


# --------------------------------------------------------------------------- pdist
