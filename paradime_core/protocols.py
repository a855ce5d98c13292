"""What each kind of building block is, and the capabilities a block may declare.

A spec element's ``type`` names a registered implementation of one of these protocols
(structural: a class need not inherit from them). Capabilities are optional methods a block
declares; the core and the pipelines ask a block for them, never its name or type, so a
user-registered block that declares one gets the same treatment as a built-in block:

- a global relation that is computed from a kNN graph declares :class:`NeighborRelation`:
  the pipeline computes the graph (one Dask stage) and the relation builds itself from it;
- a batch relation declares the distance it computes along a batch's edges
  (:class:`EdgeDistanceRelation`) and a transform the kernel it applies to it
  (:class:`KernelTransform`); a relation loss binds the fused gradient for that kernel once
  (:mod:`paradime_core.losses.fused`);
- a transform that needs a number of neighbours declares :class:`NeighborHint`.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

if TYPE_CHECKING:  # types only: importing this module loads nothing of the core, nor torch
    import numpy as np
    import torch

    from paradime_core.batch import Batch, BatchContext
    from paradime_core.relation_data import NeighborGraph, RelationValue


# --------------------------------------------------------------------------- block kinds
class Relation(Protocol):
    """A relation type. ``levels`` says where it applies (``global``, ``batch`` or both).

    Global: ``compute(data) -> RelationValue`` over all items. Batch: ``__call__(outputs,
    batch) -> Tensor``, differentiable, a ``(b, b)`` block or ``(m,)`` values along edges.
    """

    levels: tuple[str, ...]


class Transform(Protocol):
    """A step of a relation's transform chain: ``__call__(value) -> value`` on a global
    relation value or a batch tensor; ``levels`` says where it applies."""

    levels: tuple[str, ...]

    def __call__(self, value: Any) -> Any: ...


class LossType(Protocol):
    """A loss type, built as ``cls(func=, data=, rels=, methods=, **options)``.

    Optional class attributes: ``needs_func`` (bool) and ``rel_levels`` (the level of each
    relation it reads, e.g. ``("global", "batch")``).
    """

    def __call__(self, ctx: BatchContext) -> torch.Tensor: ...


class Sampler(Protocol):
    """A sampler, built from its options; ``relation_options`` names the options that hold a
    global relation's name."""

    def epoch(self, n_items: int, relations: Mapping[str, RelationValue],
              generator: torch.Generator) -> Iterator[Batch]: ...


class DataFunction(Protocol):
    """A data function: ``f(*inputs, **options) -> array`` with one row per item."""

    def __call__(self, *inputs: Any, **options: Any) -> np.ndarray: ...


class Model(Protocol):
    """A model factory ``(in_dim=..., n_items=..., **options) -> nn.Module`` whose module has
    the methods losses name (``embed``, ...). It may declare ``check_option(name, value)``,
    which checks option values that need no data when the spec is validated."""

    def __call__(self, *, in_dim: int, n_items: int, **options: Any) -> torch.nn.Module: ...


# --------------------------------------------------------------------------- capabilities
@dataclass(frozen=True)
class KnnRequest:
    """The kNN graph a neighbour relation needs: the ``k`` nearest other items of each item
    under ``metric``, found with ``method`` (``seed`` for randomised methods)."""

    k: int
    metric: str
    method: str
    seed: int


@runtime_checkable
class NeighborRelation(Protocol):
    """A global relation computed from a kNN graph of its data.

    ``knn_request(n_items)`` says which graph it needs for ``n_items`` items (``k`` already
    fitted to them); ``from_graph(graph)`` is the relation's value on that graph, so that
    ``compute(data)`` equals ``from_graph(kNN of data)``. ``n_neighbors`` may be None until
    the spec layer fills it in from the transforms' :class:`NeighborHint`.
    """

    n_neighbors: int | None

    def knn_request(self, n_items: int) -> KnnRequest: ...

    def from_graph(self, graph: NeighborGraph) -> RelationValue: ...


#: Where a kernel with ``clamp`` clamps the squared distance (a finite gradient at ``d = 0``).
EDGE_KERNEL_CLAMP = 1e-12


@dataclass(frozen=True)
class EdgeKernel:
    """``q = 1 / (1 + a s^b)`` of the squared euclidean distance ``s`` along an edge;
    ``clamp``: ``s`` is clamped below at :data:`EDGE_KERNEL_CLAMP` before the power."""

    a: float
    b: float
    clamp: bool


#: The Student-t kernel with one degree of freedom (t-SNE, LargeVis): ``q = 1 / (1 + s)``.
STUDENT_T = EdgeKernel(1.0, 1.0, False)


@runtime_checkable
class EdgeDistanceRelation(Protocol):
    """A batch relation that, on a batch with edges, gives ``d(y_rows[e], y_cols[e])`` per
    edge; ``edge_metric()`` names ``d``."""

    def edge_metric(self) -> str: ...


@runtime_checkable
class KernelTransform(Protocol):
    """A batch transform that maps a euclidean distance ``d`` to ``q = 1 / (1 + a (d^2)^b)``:
    ``edge_kernel()`` gives that kernel (or None where its options make it another one)."""

    def edge_kernel(self) -> EdgeKernel | None: ...


@runtime_checkable
class EdgeKernelSource(Protocol):
    """A built batch relation (relation and transforms) that states the edge kernel it
    computes, or None where the chain is not a kernel of euclidean edge distances."""

    def edge_kernel(self) -> EdgeKernel | None: ...


@runtime_checkable
class NeighborHint(Protocol):
    """A transform that needs a number of neighbours (perplexity: ``3 x perplexity``)."""

    def suggested_neighbors(self) -> int | None: ...
