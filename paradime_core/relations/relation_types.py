"""Relation types: how the relations between items are first computed.

Global relations (``compute(data) -> RelationValue``, once over the whole dataset):

- ``pdist``: dense exact distances ``D_ij = d(x_i, x_j)`` (n x n: small data only).
- ``neighbor``: the ``k`` nearest neighbours of each item with their distances, a
  :class:`~paradime_core.relation_data.NeighborGraph` (sparse: n x k).
- ``pairwise_eq``: label equality ``r_ij = [y_i = y_j]``, kept implicit.
- ``precomputed``: a relation the user supplies (array, sparse matrix, neighbour lists, file).

Batch relations (``__call__(outputs, batch) -> Tensor``, differentiable, on the model's
outputs ``Y`` of one batch):

- ``pdist``: the (b, b) matrix ``d(y_a, y_b)``, or the (m,) distances along the batch's
  sampled edges ``d(y_rows[e], y_cols[e])`` when the batch has edges.
- ``edge_dist``: the (m,) distances along sampled edges only.

Metrics ``d``: ``euclidean`` ``||x - y||``, ``sqeuclidean`` ``||x - y||^2``, ``cosine``
``1 - <x, y> / (||x|| ||y||)`` (an all-zero row has distance 1 to every other row) and
``manhattan`` ``sum_l |x_l - y_l|`` (not for kNN). Every item has distance 0 to itself.
The batch Euclidean distance has gradient 0 at zero distance (``sqrt`` is applied to
squared distances only where they are positive), so duplicates never produce NaN.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Literal, get_args

import numpy as np
import scipy.sparse as sp
import torch
from annotated_types import Ge

from paradime_core.batch import Batch
from paradime_core.errors import DataError
from paradime_core.neighbors import KnnMethod, KnnMetric, check_finite, nearest_neighbors
from paradime_core.protocols import KnnRequest
from paradime_core.relation_data import LabelEquality, NeighborGraph, RelationValue, n_items_of
from paradime_core.relations.distances import _edge_distances, dense_distances, pairwise_distances
from paradime_core.spec.registry import register_relation

PdistMetric = Literal["euclidean", "sqeuclidean", "cosine", "manhattan", "cityblock"]
"""The metrics of ``pdist`` (``cityblock`` is ``manhattan``)."""
PDIST_METRICS = get_args(PdistMetric)
DENSE_WARN_ITEMS = 20_000


def _canonical_metric(metric: str) -> str:
    """``cityblock`` -> ``manhattan``; other metrics as they are."""
    return "manhattan" if metric == "cityblock" else metric


def _as_matrix(data: Any, what: str) -> np.ndarray:
    data = np.asarray(data)
    if data.ndim == 1:
        data = data[:, None]
    if data.ndim != 2:
        raise DataError(f"{what}: expected a 2-D array (items x features), got shape {data.shape}")
    check_finite(data, what)
    return data


# --------------------------------------------------------------------------- distances
@register_relation("pdist", aliases=("pairwise", "pdistdiff"))
class PDist:
    """Exact pairwise distances ``D_ij = d(x_i, x_j)``.

    Global: the dense (n, n) float32 matrix, computed in chunks of ``chunk_size`` rows
    (warns above 20,000 items). Batch: (b, b) over the batch's outputs, or (m,) along the
    sampled edges when the batch has edges. ``pdistdiff`` (ParaDime 1.x's name of the
    batch-level differentiable pairwise distances) names this relation.
    """

    levels = ("global", "batch")

    def __init__(self, metric: PdistMetric = "euclidean", chunk_size: Annotated[int, Ge(1)] = 4096):
        self.metric = _canonical_metric(metric)
        self.chunk_size = int(chunk_size)

    def compute(self, data: np.ndarray) -> np.ndarray:
        X = _as_matrix(data, "pdist")
        n = X.shape[0]
        if n > DENSE_WARN_ITEMS:
            warnings.warn(
                f"pdist builds a dense {n} x {n} matrix ({4 * n * n / 2**30:.1f} GiB); "
                "use a 'neighbor' relation for large data",
                stacklevel=2,
            )
        return dense_distances(X, self.metric, self.chunk_size)

    def edge_metric(self) -> str:
        """The distance computed along a batch's edges (on batches with edges)."""
        return self.metric

    def __call__(self, outputs: torch.Tensor, batch: Batch) -> torch.Tensor:
        if batch.has_edges:
            return _edge_distances(outputs, batch, self.metric)
        return pairwise_distances(outputs, self.metric)


# --------------------------------------------------------------------------- neighbor
@register_relation("neighbor", aliases=("knn", "neighbors"))
class Neighbor:
    """Distances to the ``n_neighbors`` nearest other items (self excluded), as a NeighborGraph.

    ``n_neighbors=None`` is filled in from the transforms (perplexity: 3 x perplexity;
    default 15) when the relation is built from a spec. ``method`` picks the kNN backend
    (see :mod:`paradime_core.neighbors`).
    """

    levels = ("global",)

    def __init__(
        self,
        n_neighbors: Annotated[int, Ge(1)] | None = None,
        metric: KnnMetric = "euclidean",
        method: KnnMethod = "auto",
        seed: int = 0,
        n_threads: Annotated[int, Ge(1)] | None = None,
    ):
        self.n_neighbors = None if n_neighbors is None else int(n_neighbors)
        self.metric = metric
        self.method = method
        self.seed = int(seed)
        self.n_threads = n_threads

    def compute(self, data: np.ndarray) -> NeighborGraph:
        X = _as_matrix(data, "neighbor")
        n = X.shape[0]
        if n < 2:
            raise DataError(f"neighbor: needs at least 2 items, got {n}")
        request = self.knn_request(n)
        indices, distances = nearest_neighbors(
            X, request.k, method=request.method, metric=request.metric, seed=request.seed,
            n_threads=self.n_threads,
        )
        return self.from_graph(NeighborGraph(indices, distances))

    def knn_request(self, n_items: int) -> KnnRequest:
        """The graph this relation needs for ``n_items`` items: ``n_neighbors`` neighbours
        (15 when unset), at most ``n_items - 1`` (with a warning)."""
        k = self.n_neighbors or 15
        if k >= n_items:
            warnings.warn(f"n_neighbors={k} >= number of items {n_items}; using {n_items - 1}", stacklevel=2)
            k = n_items - 1
        return KnnRequest(int(k), self.metric, self.method, self.seed)

    def from_graph(self, graph: NeighborGraph) -> NeighborGraph:
        """The relation's value on its kNN graph: the graph itself."""
        return graph


# --------------------------------------------------------------------------- pairwise_eq
@register_relation("pairwise_eq", aliases=("label_equality", "pairwise_equality"))
class PairwiseEq:
    """Label equality ``r_ij = 1 if y_i == y_j else 0`` (paper Eq. 1) of the labels in the
    relation's data key; without a ``data:`` key it reads ``labels`` (Eq. 1 is defined on
    the ground-truth labels)."""

    levels = ("global",)
    default_data = "labels"

    def __init__(self) -> None:
        pass

    def compute(self, data: np.ndarray) -> LabelEquality:
        labels = np.asarray(data)
        if labels.ndim == 2 and labels.shape[1] == 1:
            labels = labels[:, 0]
        if labels.ndim != 1:
            raise DataError(
                f"pairwise_eq: expects one label per item (a 1-D array), got shape {labels.shape}"
            )
        return LabelEquality(labels)


# --------------------------------------------------------------------------- precomputed
PrecomputedKind = Literal["auto", "dense", "sparse", "neighbors"]
PRECOMPUTED_KINDS = get_args(PrecomputedKind)


def _neighbor_graph_from(mapping: Mapping[str, Any], where: str) -> NeighborGraph:
    values_key = (
        "distances" if "distances" in mapping else "values" if "values" in mapping else None
    )
    if "indices" not in mapping or values_key is None:
        raise DataError(
            f"{where}: neighbour lists need 'indices' and 'distances' (or 'values'), "
            f"got {', '.join(map(str, mapping)) or 'nothing'}"
        )
    return NeighborGraph(
        np.asarray(mapping["indices"]), np.asarray(mapping[values_key], dtype=np.float32)
    )


def _load_file(path: Path) -> RelationValue:
    where = f"precomputed file '{path}'"
    suffix = path.suffix.lower()
    if suffix == ".npy":
        return np.load(path, allow_pickle=False)
    if suffix != ".npz":
        raise DataError(f"{where}: expected a .npy or .npz file")
    with np.load(path, allow_pickle=False) as archive:
        keys = list(archive.files)
        if "format" in keys and "shape" in keys:  # scipy.sparse.save_npz
            return sp.csr_array(sp.load_npz(path))
        if "indices" in keys:
            return _neighbor_graph_from({key: archive[key] for key in keys}, where)
        if len(keys) == 1:
            return archive[keys[0]]
    raise DataError(
        f"{where}: holds arrays {', '.join(keys)}; expected a scipy sparse matrix "
        "(save_npz), 'indices' + 'distances'/'values', or a single dense array"
    )


def _to_relation_value(values: Any, where: str) -> RelationValue:
    if isinstance(values, (NeighborGraph, LabelEquality)):
        return values
    if sp.issparse(values):
        return sp.csr_array(values)
    if isinstance(values, Mapping):
        return _neighbor_graph_from(values, where)
    if isinstance(values, tuple) and len(values) == 2:
        return NeighborGraph(np.asarray(values[0]), np.asarray(values[1], dtype=np.float32))
    return np.asarray(values)


@register_relation("precomputed", aliases=("precomp",))
class Precomputed:
    """A relation the user supplies: ``values`` (dense array, scipy sparse matrix,
    ``(indices, distances)`` pair or dict) or ``file`` (``.npy`` dense; ``.npz`` from
    ``scipy.sparse.save_npz`` or with arrays ``indices`` + ``distances``/``values``).

    ``kind`` (``auto``, ``dense``, ``sparse``, ``neighbors``) converts or checks the form:
    dense <-> sparse convert; ``neighbors`` needs neighbour lists. ``compute(data)`` only
    checks that the relation has as many items as ``data`` has rows.
    """

    levels = ("global",)

    def __init__(self, values: Any = None, file: str | Path | None = None, kind: PrecomputedKind = "auto"):
        if (values is None) == (file is None):
            raise ValueError("give exactly one of 'values' or 'file'")
        if file is not None:
            if not Path(file).expanduser().is_file():
                raise ValueError(f"file '{file}' does not exist")
        self.values = values
        self.file = None if file is None else str(file)
        self.kind = kind

    def load(self) -> RelationValue:
        """The relation in the requested form (not yet checked against any data)."""
        if self.file is not None:
            path = Path(self.file).expanduser()
            if not path.is_file():
                raise ValueError(f"file '{self.file}' does not exist")
            value = _load_file(path)
        else:
            value = _to_relation_value(self.values, "precomputed values")
        return self._convert(value)

    def _convert(self, value: RelationValue) -> RelationValue:
        kind = self.kind
        if isinstance(value, np.ndarray):
            if value.ndim != 2 or value.shape[0] != value.shape[1]:
                raise DataError(
                    f"precomputed: a dense relation must be a square (n, n) array, got shape {value.shape}"
                )
            if not np.issubdtype(value.dtype, np.number) and value.dtype != np.bool_:
                raise DataError(f"precomputed: expected numbers, got dtype {value.dtype}")
            value = value.astype(np.float32, copy=False)
        elif sp.issparse(value) and value.shape[0] != value.shape[1]:
            raise DataError(
                f"precomputed: a sparse relation must be square (n, n), got shape {value.shape}"
            )
        if isinstance(value, NeighborGraph):
            n = value.n_items
            bad = (value.indices < 0) | (value.indices >= n)
            if bad.any():
                row = int(np.flatnonzero(bad.any(axis=1))[0])
                raise DataError(
                    f"precomputed: neighbour indices of row {row} are outside 0..{n - 1}"
                )
        if kind == "dense" and not isinstance(value, np.ndarray):
            if isinstance(value, LabelEquality):
                raise DataError("precomputed: a label-equality relation has no dense form here")
            matrix = value.to_sparse() if isinstance(value, NeighborGraph) else value
            value = np.asarray(matrix.toarray(), dtype=np.float32)
        elif kind == "sparse" and not sp.issparse(value):
            if isinstance(value, NeighborGraph):
                value = value.to_sparse()
            elif isinstance(value, np.ndarray):
                value = sp.csr_array(value)
            else:
                raise DataError("precomputed: a label-equality relation has no sparse form")
        elif kind == "neighbors" and not isinstance(value, NeighborGraph):
            raise DataError(
                f"precomputed: kind 'neighbors' needs neighbour lists (indices + distances), "
                f"got {type(value).__name__}"
            )
        return value

    def compute(self, data: np.ndarray | None = None) -> RelationValue:
        value = self.load()
        if data is not None:
            n_data = len(data)
            n_relation = n_items_of(value)
            if n_relation != n_data:
                raise DataError(
                    f"precomputed relation has {n_relation} items but the data has {n_data} rows"
                )
        return value


# --------------------------------------------------------------------------- edge_dist
@register_relation("edge_dist", aliases=("fromto",))
class EdgeDist:
    """Distances along the batch's sampled edges, ``d(y_rows[e], y_cols[e])``, shape (m,)."""

    levels = ("batch",)
    needs_edges = True  # no item-level form (a relation loss asks before it compares over items)

    def __init__(self, metric: PdistMetric = "euclidean"):
        self.metric = _canonical_metric(metric)

    def edge_metric(self) -> str:
        """The distance computed along a batch's edges."""
        return self.metric

    def __call__(self, outputs: torch.Tensor, batch: Batch) -> torch.Tensor:
        if not batch.has_edges:
            raise DataError(
                "edge_dist: this relation needs edge sampling (the batch has no edges); "
                "use sampling type 'edge' or a 'pdist' relation"
            )
        return _edge_distances(outputs, batch, self.metric)
