"""Relation transforms: the steps of a relation's ``transforms:`` chain.

Each transform is a registered class whose constructor only stores and checks its options
and whose ``__call__(value) -> value`` maps one relation value to the next. ``levels`` says
where it applies:

- global values (:mod:`paradime_core.relation_data`): a :class:`NeighborGraph` (kNN
  distances before the calibrations, affinities after), a ``scipy.sparse.csr_array`` or a
  dense ``numpy.ndarray`` (n, n). Sparse values stay sparse (nothing here densifies a
  sparse relation except ``geodesic``, whose result is dense by nature).
- batch values: torch tensors, a dense (b, b) matrix or an (m,) vector along sampled edges;
  every batch transform is made of differentiable torch operations.

Transforms (registered name: formula):

- ``perplexity`` (t-SNE): ``p_{j|i} = exp(-beta_i d_ij^2) / sum_k exp(-beta_i d_ik^2)`` with
  ``beta_i`` such that ``H_i = -sum_j p_{j|i} log2 p_{j|i} = log2(perplexity)``.
- ``connect`` (UMAP fuzzy simplicial set): ``w_ij = exp(-max(0, d_ij - rho_i) / sigma_i)``,
  ``rho_i`` the distance to the nearest neighbour at positive distance, ``sigma_i`` such
  that ``sum_j w_ij = log2(k) * bandwidth``.
- ``symmetrize``: ``(P + P^T) / 2``, or with ``sub_prod`` the fuzzy union
  ``P + P^T - P o P^T``.
- ``normalize``: ``P / sum_ij P_ij``; ``normalize_rows``: ``P_ij / sum_j P_ij``.
- ``t_dist`` (Student t): ``w = (1 + d^2 / alpha)^(-(alpha + 1) / 2)``.
- ``cauchy`` (UMAP's modified Cauchy): ``w = 1 / (1 + a d^(2b))``, ``a, b`` fitted from
  ``spread`` and ``min_dist`` when not given.
- ``geodesic`` (Isomap): shortest-path distances over the symmetric kNN graph.

Self-relations: the row-wise calibrations (``perplexity``, ``connect``) ignore entries that
relate an item to itself (a kNN index equal to its row, a diagonal entry); in their output
those entries are gone (a NeighborGraph whose rows each hold exactly one self entry loses
that column; otherwise self values are 0; CSR diagonals are dropped; dense diagonals are 0).
"""

from __future__ import annotations

import math
import warnings
from functools import cached_property
from typing import Annotated, Any, Literal, get_args

import numpy as np
import scipy.sparse as sp
import torch
from annotated_types import Ge, Gt

from paradime_core.errors import DataError
from paradime_core.protocols import EDGE_KERNEL_CLAMP, STUDENT_T, EdgeKernel
from paradime_core.relation_data import NeighborGraph, RelationValue, to_csr
from paradime_core.relations.rows import (
    _check_distances,
    _float_dtype,
    _Kernel,
    _map_values,
    _normalised_rows,
    _reject,
    _row_layout,
    _solve_decreasing,
    gaussian_conditionals,
)
from paradime_core.spec.registry import register_transform

__all__ = [
    "Cauchy",
    "Connect",
    "Geodesic",
    "Normalize",
    "NormalizeRows",
    "Perplexity",
    "Symmetrize",
    "TDist",
    "fit_ab",
]

GLOBAL = ("global",)
BOTH = ("global", "batch")

Positive = Annotated[float, Gt(0)]
NonNegative = Annotated[float, Ge(0)]
RootMethod = Literal["bisect", "brentq", "brenth", "ridder", "toms748", "secant", "newton", "halley"]
"""scipy.optimize.root_scalar's method names; ParaDime 1.x passed these options through to it."""


@register_transform("perplexity")
class Perplexity:
    """t-SNE's calibration of kNN (or dense, or sparse) distances into conditional probabilities.

    ``p_{j|i} = exp(-beta_i d_ij^2) / sum_k exp(-beta_i d_ik^2)``, ``beta_i`` chosen by a
    vectorised bisection so that ``2^{H_i} = perplexity`` with
    ``H_i = -sum_j p_{j|i} log2 p_{j|i}`` (entropy within ``xtol`` = 1e-4 nats,
    so each row's perplexity is within 0.01 % of the target; at most ``maxiter`` steps).
    ParaDime 1.x handed ``scipy.optimize.root_scalar`` options through (``bracket``,
    ``method``, ``x0``, ``x1``, ``rtol``): they are checked and accepted so its specs load,
    and they do not change the result, because the vectorised bisection widens its own
    bracket until it holds each row's root and so finds the root any valid bracket holds.
    A row with ``c`` neighbours (self excluded) cannot reach a perplexity above ``c``; such
    rows are calibrated to ``max(c - 1, 1)`` with a warning. The output is the input's kind
    with self entries removed.
    """

    levels = GLOBAL

    ROOT_METHODS = get_args(RootMethod)

    def __init__(self, perplexity: Positive = 30.0, xtol: Positive = 1e-4, maxiter: Annotated[int, Ge(1)] = 200,
                 bracket: tuple[NonNegative, NonNegative] | None = None, method: RootMethod | None = None,
                 x0: Positive | None = None, x1: Positive | None = None, rtol: NonNegative | None = None,
                 verbose: bool = False):
        self.perplexity = float(perplexity)
        self.xtol = float(xtol)
        self.maxiter = int(maxiter)
        if bracket is not None and not bracket[0] < bracket[1]:
            raise ValueError(f"bracket must be [low, high] with low < high, got {list(bracket)}")
        self.root_options = {"bracket": bracket, "method": method, "x0": x0, "x1": x1, "rtol": rtol}
        self.verbose = bool(verbose)

    def suggested_neighbors(self) -> int:
        """k a neighbour relation should use: 3 x perplexity (+1 for the item itself)."""
        return int(3 * self.perplexity) + 1

    def __call__(self, value: RelationValue) -> RelationValue:
        layout = _row_layout(value, "perplexity")
        _check_distances(layout, "perplexity")
        counts = layout.valid.sum(axis=1)
        target = np.full(len(counts), self.perplexity)
        short = (counts > 0) & (counts - 1 < self.perplexity)
        if short.any():
            target[short] = np.maximum(counts[short] - 1, 1)
            warnings.warn(
                f"perplexity {self.perplexity:g} needs more neighbours than {int(short.sum())} "
                f"row(s) have (fewest: {int(counts[short].min())}); those rows were calibrated "
                f"to perplexity {int(target[short].min())}..{int(target[short].max())} instead. "
                f"Use n_neighbors >= {self.suggested_neighbors()}.",
                stacklevel=2,
            )
        probabilities, attained = gaussian_conditionals(layout.values**2, layout.valid, target,
                                                        tol=self.xtol, max_iter=self.maxiter)
        if not attained[counts > 0].all():
            warnings.warn(
                f"perplexity: {int((~attained[counts > 0]).sum())} row(s) could not reach perplexity "
                f"{self.perplexity:g} (more equidistant nearest neighbours than that); they are "
                "uniform over their nearest neighbours",
                stacklevel=2,
            )
        return layout.rebuild(probabilities)

    def __repr__(self) -> str:
        return f"Perplexity(perplexity={self.perplexity:g})"


# --------------------------------------------------------------------------- connect (UMAP)
def _connectivity_radius(d: np.ndarray, valid: np.ndarray, local_connectivity: float) -> np.ndarray:
    """UMAP's ``rho_i``: distance to the ``local_connectivity``-th nearest neighbour at
    positive distance, interpolated linearly between neighbours for fractional values
    (the largest positive distance when a row has fewer; 0 when it has none)."""
    positive = valid & (d > 0)
    n_pos = positive.sum(axis=1)
    ordered = np.sort(np.where(positive, d, np.inf), axis=1)
    ordered[~np.isfinite(ordered)] = 0.0  # past each row's positive entries; never selected
    width = max(ordered.shape[1], 1)
    index = int(math.floor(local_connectivity))
    frac = local_connectivity - index

    def column(j: np.ndarray | int) -> np.ndarray:
        j = np.clip(np.broadcast_to(j, n_pos.shape), 0, width - 1)
        if ordered.shape[1] == 0:
            return np.zeros(len(j))
        return np.take_along_axis(ordered, j[:, None], axis=1)[:, 0]

    rho = np.zeros(d.shape[0])
    enough = n_pos >= local_connectivity
    if index > 0:
        below = column(index - 1)
        step = np.zeros_like(below)
        if frac > 1e-5:
            step = np.where(enough, frac * (column(index) - below), 0.0)
        rho = np.where(enough, below + step, rho)
    else:
        rho = np.where(enough & (n_pos > 0), frac * column(0), rho)
    fewer = ~enough & (n_pos > 0)
    rho = np.where(fewer, column(n_pos - 1), rho)
    return rho


@register_transform("connect")
class Connect:
    """UMAP's fuzzy simplicial set of a kNN graph.

    ``rho_i`` is the distance to the nearest neighbour at positive distance (interpolated
    for fractional ``local_connectivity``); ``sigma_i`` is found by vectorised bisection on
    ``log(1 / sigma_i)`` so that ``sum_j exp(-max(0, d_ij - rho_i) / sigma_i) =
    log2(k) * bandwidth`` (``k``: ``n_neighbors`` when given, the paper's ``neighbors``;
    otherwise the entries stored per row, self included, as UMAP's ``n_neighbors``). A
    neighbour relation without its own ``n_neighbors`` takes ``k`` from here; like UMAP,
    ``sigma_i >= 1e-3 * mean_j d_ij``. Output: memberships
    ``w_ij = exp(-max(0, d_ij - rho_i) / sigma_i)`` in the input's kind, self excluded.
    """

    levels = GLOBAL
    option_aliases = {"neighbors": "n_neighbors", "k": "n_neighbors"}  # the paper's spelling

    def __init__(self, n_neighbors: Annotated[int, Ge(2)] | None = None, local_connectivity: NonNegative = 1.0,
                 bandwidth: Positive = 1.0):
        self.n_neighbors = None if n_neighbors is None else int(n_neighbors)
        self.local_connectivity = float(local_connectivity)
        self.bandwidth = float(bandwidth)

    def suggested_neighbors(self) -> int:
        """k a neighbour relation should use: ``n_neighbors`` (default 15), as UMAP's."""
        return self.n_neighbors or 15

    def __call__(self, value: RelationValue) -> RelationValue:
        layout = _row_layout(value, "connect")
        _check_distances(layout, "connect")
        d, valid = layout.values, layout.valid
        counts = valid.sum(axis=1)
        rho = _connectivity_radius(d, valid, self.local_connectivity)
        excess = np.maximum(d - rho[:, None], 0.0)
        x, scale = _normalised_rows(excess, valid, counts)
        k = np.maximum(layout.width, 1) if self.n_neighbors is None else self.n_neighbors
        target = np.log2(k) * self.bandwidth * np.ones(len(counts))
        rows = np.flatnonzero(counts > 0)
        log_beta = np.zeros(len(counts))
        if rows.size:
            kernel = _Kernel(x[rows] if rows.size < len(counts) else x)
            log_beta[rows], _ = _solve_decreasing(
                kernel.row_sums, target[rows], tol=1e-6 * float(target[rows].max())
            )
        sigma = scale / np.exp(log_beta)
        mean_d = np.where(valid, d, 0.0).sum(axis=1) / np.maximum(counts, 1)
        sigma = np.maximum(sigma, 1e-3 * mean_d)
        sigma[sigma <= 0] = 1.0
        memberships = np.where(valid, np.exp(-excess / sigma[:, None]), 0.0)
        return layout.rebuild(memberships)

    def __repr__(self) -> str:
        return (f"Connect(n_neighbors={self.n_neighbors}, local_connectivity={self.local_connectivity:g}, "
                f"bandwidth={self.bandwidth:g})")


# --------------------------------------------------------------------------- symmetrize
@register_transform("symmetrize")
class Symmetrize:
    """``(P + P^T) / 2``, or with ``sub_prod`` UMAP's fuzzy union ``P + P^T - P o P^T``.

    Neighbour graphs and sparse inputs give a ``csr_array`` (never densified); a dense
    input gives a dense array.
    """

    levels = GLOBAL
    option_aliases = {"subtract_product": "sub_prod"}  # ParaDime 1.x's spelling

    def __init__(self, sub_prod: bool = False):
        self.sub_prod = bool(sub_prod)

    def __call__(self, value: RelationValue) -> RelationValue:
        _reject(value, "symmetrize")
        if isinstance(value, np.ndarray):
            if self.sub_prod:
                return value + value.T - value * value.T
            return (value + value.T) / 2
        matrix = to_csr(value)
        transposed = matrix.T.tocsr()
        if self.sub_prod:
            result = matrix + transposed - matrix.multiply(transposed)
        else:
            result = (matrix + transposed) * 0.5
        result = sp.csr_array(result)
        result.sort_indices()
        return result

    def __repr__(self) -> str:
        return f"Symmetrize(sub_prod={self.sub_prod})"


# --------------------------------------------------------------------------- normalize
@register_transform("normalize")
class Normalize:
    """``P / sum_ij P_ij`` (sparse stays sparse; a batch tensor is divided by its sum)."""

    levels = BOTH

    def __call__(self, value: Any) -> Any:
        _reject(value, "normalize", allow_tensor=True)
        if isinstance(value, torch.Tensor):
            return value / value.sum().clamp_min(torch.finfo(value.dtype).tiny)
        if isinstance(value, NeighborGraph):
            total = float(value.values.sum())
        elif sp.issparse(value):
            total = float(value.sum())
        else:
            total = float(np.asarray(value).sum())
        if not np.isfinite(total) or total == 0:
            raise DataError(f"normalize: the relation sums to {total}; cannot normalise it")
        return _map_values(value, lambda v: v / np.asarray(total, dtype=v.dtype))

    def __repr__(self) -> str:
        return "Normalize()"


@register_transform("normalize_rows")
class NormalizeRows:
    """``P_ij / sum_j P_ij`` per row (rows summing to 0 stay 0).

    A batch (b, b) tensor is normalised along its last dimension; an (m,) edge vector has
    no rows and is treated as a single row (divided by its sum).
    """

    levels = BOTH

    def __call__(self, value: Any) -> Any:
        _reject(value, "normalize_rows", allow_tensor=True)
        if isinstance(value, torch.Tensor):
            sums = value.sum(dim=-1, keepdim=True)
            return value / torch.where(sums == 0, torch.ones_like(sums), sums)
        if isinstance(value, NeighborGraph):
            sums = value.values.sum(axis=1, keepdims=True)
            return NeighborGraph(value.indices, value.values / np.where(sums == 0, 1, sums))
        if sp.issparse(value):
            matrix = sp.csr_array(value, copy=True)
            sums = np.asarray(matrix.sum(axis=1)).ravel()
            sums[sums == 0] = 1
            matrix.data = matrix.data / np.repeat(sums, np.diff(matrix.indptr)).astype(matrix.data.dtype)
            return matrix
        array = np.asarray(value)
        sums = array.sum(axis=-1, keepdims=True)
        return array / np.where(sums == 0, 1, sums)

    def __repr__(self) -> str:
        return "NormalizeRows()"


# --------------------------------------------------------------------------- kernels
@register_transform("t_dist", aliases=("student_t", "tdist"))
class TDist:
    """Student t kernel on distances: ``w = (1 + d^2 / alpha)^(-(alpha + 1) / 2)``.

    ``alpha = 1`` is t-SNE's ``1 / (1 + d^2)``. Elementwise on stored entries (global) or on
    a tensor (batch); its gradient is finite at ``d = 0``.
    """

    levels = BOTH

    def __init__(self, alpha: Positive = 1.0):
        self.alpha = float(alpha)

    def __call__(self, value: Any) -> Any:
        _reject(value, "t_dist", allow_tensor=True)
        exponent = -(self.alpha + 1.0) / 2.0
        if isinstance(value, torch.Tensor):
            return torch.pow(1.0 + value * value / self.alpha, exponent)
        return _map_values(value, lambda d: np.power(1.0 + d * d / self.alpha, exponent).astype(
            _float_dtype(d), copy=False))

    def edge_kernel(self) -> EdgeKernel | None:
        """``1 / (1 + d^2)`` at ``alpha = 1`` (:data:`~paradime_core.protocols.STUDENT_T`); else None."""
        return STUDENT_T if self.alpha == 1.0 else None

    def __repr__(self) -> str:
        return f"TDist(alpha={self.alpha:g})"


def fit_ab(spread: float = 1.0, min_dist: float = 0.1) -> tuple[float, float]:
    """UMAP's ``a, b``: least-squares fit of ``1 / (1 + a x^(2b))`` to the curve that is 1
    for ``x < min_dist`` and ``exp(-(x - min_dist) / spread)`` beyond, on 300 points of
    ``[0, 3 spread]`` (spread 1, min_dist 0.1 give a ~ 1.577, b ~ 0.895)."""
    from scipy.optimize import curve_fit

    x = np.linspace(0.0, 3.0 * spread, 300)
    y = np.where(x < min_dist, 1.0, np.exp(-(x - min_dist) / spread))

    def curve(x: np.ndarray, a: float, b: float) -> np.ndarray:
        return 1.0 / (1.0 + a * x ** (2 * b))

    (a, b), _ = curve_fit(curve, x, y)
    return float(a), float(b)


_SQ_EPS = EDGE_KERNEL_CLAMP  # d^2 is clamped here before the fractional power (finite gradient at d = 0)


@register_transform("cauchy", aliases=("modified_cauchy", "umap"))
class Cauchy:
    """UMAP's modified Cauchy kernel ``w = 1 / (1 + a d^(2b)) = 1 / (1 + a (d^2)^b)``.

    ``a, b`` are given, or fitted from ``spread`` and ``min_dist`` (:func:`fit_ab`) on first
    use. ``d^2`` is clamped at 1e-12 before the power, so values and gradients stay finite
    at ``d = 0``.
    """

    levels = BOTH

    def __init__(
        self, spread: Positive = 1.0, min_dist: NonNegative = 0.1, a: Positive | None = None,
        b: Positive | None = None,
    ):
        self.spread = float(spread)
        self.min_dist = float(min_dist)
        if (a is None) != (b is None):
            raise ValueError("give both a and b, or neither (then they are fitted from spread and min_dist)")
        self.a = None if a is None else float(a)
        self.b = None if b is None else float(b)

    @cached_property
    def params(self) -> tuple[float, float]:
        """``(a, b)``: the given values or UMAP's fit."""
        if self.a is not None and self.b is not None:
            return self.a, self.b
        return fit_ab(self.spread, self.min_dist)

    def __call__(self, value: Any) -> Any:
        _reject(value, "cauchy", allow_tensor=True)
        a, b = self.params
        if isinstance(value, torch.Tensor):
            return 1.0 / (1.0 + a * torch.pow(torch.clamp_min(value * value, _SQ_EPS), b))
        return _map_values(
            value,
            lambda d: (1.0 / (1.0 + a * np.power(np.maximum(d * d, _SQ_EPS), b))).astype(
                _float_dtype(d), copy=False),
        )

    def edge_kernel(self) -> EdgeKernel:
        """``1 / (1 + a (d^2)^b)`` with ``d^2`` clamped below at ``1e-12``."""
        a, b = self.params
        return EdgeKernel(float(a), float(b), clamp=True)

    def __repr__(self) -> str:
        if self.a is not None:
            return f"Cauchy(a={self.a:g}, b={self.b:g})"
        return f"Cauchy(spread={self.spread:g}, min_dist={self.min_dist:g})"


# --------------------------------------------------------------------------- geodesic
DISCONNECTED_FACTOR = 1.5


@register_transform("geodesic")
class Geodesic:
    """Isomap's geodesic distances: shortest paths (Dijkstra) over the symmetric kNN graph.

    Input: kNN distances (NeighborGraph or CSR; a dense matrix is read as a complete graph).
    With ``n_neighbors``, each row keeps only its ``n_neighbors`` nearest non-self entries.
    Edges are undirected (an edge of either direction connects both items). Output: the
    dense (n, n) shortest-path matrix, so this is for data of moderate size.

    Disconnected graphs: pairs in different components have no path; their distance is set
    to ``1.5 x`` the largest finite geodesic distance (with a warning), so the result stays
    finite and keeps components apart.
    """

    levels = GLOBAL

    def __init__(self, n_neighbors: Annotated[int, Ge(1)] | None = None):
        self.n_neighbors = None if n_neighbors is None else int(n_neighbors)

    def suggested_neighbors(self) -> int | None:
        return None if self.n_neighbors is None else self.n_neighbors + 1

    def _graph(self, value: RelationValue) -> sp.csr_array:
        layout = _row_layout(value, "geodesic")
        _check_distances(layout, "geodesic")
        n = layout.values.shape[0]
        order = np.argsort(np.where(layout.valid, layout.values, np.inf), axis=1, kind="stable")
        keep = layout.valid.sum(axis=1)
        if self.n_neighbors is not None:
            keep = np.minimum(keep, self.n_neighbors)
        # Column positions in the padded layout, nearest first; the first keep_i are edges.
        take = np.arange(order.shape[1])[None, :] < keep[:, None]
        rows = np.broadcast_to(np.arange(n)[:, None], order.shape)[take]
        positions = order[take]
        weights = layout.values[rows, positions]
        columns = layout.columns[rows, positions]
        return sp.csr_array((weights, (rows, columns)), shape=(n, n))

    def __call__(self, value: RelationValue) -> np.ndarray:
        from scipy.sparse.csgraph import connected_components, shortest_path

        graph = self._graph(value)
        distances = shortest_path(graph, method="D", directed=False)
        n_components, _ = connected_components(graph, directed=False)
        if n_components > 1:
            finite = np.isfinite(distances)
            largest = float(distances[finite].max()) if finite.any() else 0.0
            fill = DISCONNECTED_FACTOR * largest if largest > 0 else 1.0
            distances[~finite] = fill
            warnings.warn(
                f"geodesic: the neighbour graph has {n_components} components; distances between "
                f"components were set to {DISCONNECTED_FACTOR} x the largest geodesic distance "
                f"({fill:.4g}). More neighbours would connect it.",
                stacklevel=2,
            )
        return distances

    def __repr__(self) -> str:
        return f"Geodesic(n_neighbors={self.n_neighbors})"
