r"""Loss functions and loss types.

A **loss function** compares a target with a prediction and returns a scalar::

    f(target, prediction) -> Tensor   (registered with ``register_loss_function``)

A **loss type** decides *what* is compared for a batch (which relations, data and model
methods) and calls a loss function on it::

    cls(func=..., data=[...], rels=[...], methods=[...], **options)(ctx) -> Tensor

(registered with ``register_loss_type``; ``ctx`` is a :class:`~paradime_core.batch.BatchContext`).

Notation: ``p`` is the target (a global relation read for the batch: a dense ``(b, b)``
block on item batches, one value per edge on edge batches), ``q`` the prediction (a batch
relation on the model's output), ``y_i`` the embedding of item ``i``, ``eps`` a small
constant keeping logarithms finite.

Loss types
----------

``relation(func, rels=[g, h], methods=[m], data=[k], repulsion_strength=1)``
    ``func(G, H)`` with ``G`` the global relation ``g`` read for the batch and ``H`` the batch
    relation ``h`` on ``model.<m>(data[k][batch])`` (defaults ``m = embed``, ``k = main``).
    Dense ``(b, b)`` blocks get their diagonal set to 0 in both before ``func``. The option
    ``repulsion_strength`` (the weight γ of the repulsion terms, LargeVis' weight of negative
    edges) is passed to a ``func`` that takes it, such as ``cross_entropy``.
    ``infonce`` on the Student-t kernel of euclidean edge distances with shared negatives,
    and ``cross_entropy`` on the Cauchy (UMAP) or Student-t (LargeVis) kernel of euclidean
    edge distances against the sampled edges, are computed by one fused node each with the
    same value and a closed-form gradient (:mod:`paradime_core.losses.fused`).

``classification(func=None, methods=[classify], data=[labels] | [input, labels])``
    Categorical cross entropy :math:`-\frac{1}{b}\sum_i \log \mathrm{softmax}(z_i)_{c_i}` of
    the logits ``z = model.classify(x)`` against integer class ids ``c`` (or class
    probabilities of the logits' shape). ``func: cross_entropy`` means this categorical
    cross entropy here; another ``func`` is called as ``func(labels, logits)``.

``reconstruction(func=mse, methods=[encode, decode], data=[k])``
    :math:`\mathrm{func}(x, \mathrm{decode}(\mathrm{encode}(x)))`; with one method ``m`` it
    compares ``x`` with ``model.<m>(x)``.

``position(func=mse, methods=[embed], data=[target] | [input, target])``
    :math:`\mathrm{func}(T, Y)` for target positions ``T`` (e.g. a derived PCA, which makes
    the paper's initialisation phase) and embedding ``Y = model.embed(x)``; the input is
    ``main`` unless two data keys are given.

``triplet(func=margin, margin=1.0, data=[anchor key, partner key])`` (paper Eq. 2)
    :math:`\frac{1}{t}\sum_{(a,p,n)} \max\big(0, \|y_a - y_p\| - \|y_a - y_n\| + \mu\big)`
    over the batch's triplets, margin :math:`\mu`; triplets come from ``triplet`` sampling or
    from ``edge`` sampling (each positive edge with each of its negatives).

``correlation(columns, dims, method=pearson, form=squared)`` (paper Eq. 3)
    Rewards embedding dimensions ``d_k`` that follow attributes ``c_k`` of the batch,

    .. math:: L = \sum_k \big(1 - \rho(x_{:, c_k}, y_{:, d_k})^2\big)
              \quad \text{(} -\sum_k \rho \text{ with form=signed, } -\sum_k |\rho|
              \text{ with absolute=True)},

    with Pearson's :math:`\rho(u, v) = \frac{\sum_i (u_i-\bar u)(v_i-\bar v)}
    {\sqrt{\sum_i (u_i-\bar u)^2 \sum_i (v_i-\bar v)^2}}`. The attributes are ``data[0]``
    (default ``main``); with two data keys the first is the model input, the second the
    attributes. The pair is given by the options ``columns``/``dims`` (``column``/``dim``).
    Eq. 3's gradient vanishes at :math:`\rho = 0`, so from an embedding uncorrelated with the
    attribute its weight must be large enough to leave that saddle.

``density(rels=[P, Q], data=[log_radii], var_shift=0.1, min_edges=1)`` (densMAP)
    :math:`1 - \rho(\log R, \log \hat r)` over the items of an edge batch, the embedded
    local radii :math:`\hat r` estimated from the batch's positive edges; defined in
    :mod:`paradime_core.losses.density`.

:class:`CompoundLoss` sums weighted components, :math:`L = \sum_c w_c L_c`, and reports
each component's value so the trainer can keep per-component histories.

Users add their own loss type by subclassing :class:`LossType` (or any class taking the same
constructor arguments) and decorating it with ``register_loss_type("name")``.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping, Sequence
from typing import Annotated, Any, Literal, get_args

import torch
import torch.nn.functional as F
from annotated_types import Ge, MinLen

from paradime_core.batch import BatchContext, batch_triplets, call_model_method, gather_rows
from paradime_core.errors import DataError
from paradime_core.losses.functions import TINY, LossFunction, cross_entropy, mse
from paradime_core.losses.functions import margin as triplet_margin
from paradime_core.losses.fused import FusedEdgeLoss, fused_edge_loss
from paradime_core.protocols import EdgeKernelSource
from paradime_core.spec.registry import register_loss_type

# ---------------------------------------------------------------------------------------
# Loss types
# ---------------------------------------------------------------------------------------


def _names(value: Sequence[str] | str | None, what: str, at_most: int | None) -> list[str]:
    if value is None:
        return []
    if isinstance(value, str):
        value = [value]
    value = list(value)
    for v in value:
        if not isinstance(v, str):
            raise TypeError(f"{what} entries must be names (strings), got {v!r}")
    if at_most is not None and len(value) > at_most:
        raise ValueError(f"takes at most {at_most} {what} key(s), got {len(value)}: {value}")
    return value


class LossType:
    """Base class of loss types: stores ``func``, ``data``, ``rels`` and ``methods``.

    Subclasses implement ``__call__(ctx) -> Tensor`` and may set ``needs_func``,
    ``rel_levels`` (checked by the spec layer) and the most keys of each kind they take
    (``max_data``, ``max_rels``, ``max_methods``; None = any number).
    """

    needs_func: bool = False
    rel_levels: tuple[str, ...] | None = None
    max_data: int | None = None
    max_rels: int | None = None
    max_methods: int | None = None

    def __init__(
        self,
        func: LossFunction | None = None,
        data: Sequence[str] | None = None,
        rels: Sequence[str] | None = None,
        methods: Sequence[str] | None = None,
    ):
        if func is not None and not callable(func):
            raise TypeError(f"func must be a callable loss function, got {func!r}")
        if self.needs_func and func is None:
            raise ValueError("needs a loss function (func)")
        self.func = func
        self.data = _names(data, "data", self.max_data)
        self.rels = _names(rels, "rels", self.max_rels)
        self.methods = _names(methods, "methods", self.max_methods)

    def __repr__(self) -> str:
        func = getattr(self.func, "__name__", None)
        return (f"{type(self).__name__}(func={func}, data={self.data}, rels={self.rels}, "
                f"methods={self.methods})")


class _BuiltinLoss(LossType):
    """Built-in defaults: one data key, one method, no relations."""

    rel_levels: tuple[str, ...] | None = ()
    max_data = 1
    max_rels = 0
    max_methods = 1


def _zero_diagonal(matrix: torch.Tensor) -> torch.Tensor:
    eye = torch.eye(matrix.shape[0], dtype=torch.bool, device=matrix.device)
    return matrix.masked_fill(eye, 0.0)


@register_loss_type("relation")
class RelationLoss(_BuiltinLoss):
    """``func(global relation rels[0], batch relation rels[1] on model.<methods[0]>)``.

    On an edge batch whose edges were sampled from another relation than ``rels[0]`` (the
    paper's supervised t-SNE samples edges from label equality and keeps t-SNE's KL), the
    sampled edges say nothing about ``rels[0]``: the comparison is then over the batch's
    items, the (b, b) block of ``rels[0]`` against the batch relation on those items, as on
    an item batch (unless the batch relation only exists along edges).
    """

    needs_func = True
    rel_levels = ("global", "batch")
    max_rels = 2

    def __init__(self, func=None, data=None, rels=None, methods=None,
                 repulsion_strength: Annotated[float, Ge(0)] = 1.0):
        super().__init__(func, data, rels, methods)
        if len(self.rels) != 2:
            raise ValueError(f"needs two relations (global, batch) in keys.rels, got {self.rels}")
        self.repulsion_strength = float(repulsion_strength)
        self._func_options: dict[str, float] = {}
        if self.repulsion_strength != 1.0:
            if "repulsion_strength" not in inspect.signature(self.func).parameters:
                name = getattr(self.func, "__name__", repr(self.func))
                raise ValueError(f"repulsion_strength applies to loss functions that take it (such as "
                                 f"cross_entropy), not {name}")
            self._func_options["repulsion_strength"] = self.repulsion_strength
        self._fused: FusedEdgeLoss | None = None
        self._bound_to: Any = None

    def bind(self, batch_relations: Mapping[str, Any]) -> None:
        """Choose the fused form once for the batch relation's declared edge kernel."""
        relation = batch_relations.get(self.rels[1])
        kernel = relation.edge_kernel() if isinstance(relation, EdgeKernelSource) else None
        self._fused = fused_edge_loss(self.func, kernel, self.repulsion_strength)
        self._bound_to = relation

    def __call__(self, ctx: BatchContext) -> torch.Tensor:
        method = self.methods[0] if self.methods else "embed"
        data_key = self.data[0] if self.data else "main"
        if self._bound_to is not ctx.batch_relations.get(self.rels[1]):
            self.bind(ctx.batch_relations)
        batch = ctx.batch
        if (batch.has_edges and batch.edge_relation != self.rels[0]
                and not getattr(getattr(ctx.batch_relations.get(self.rels[1]), "relation", None), "needs_edges", False)):
            ctx = ctx.over_items()
        fused = None if self._fused is None else self._fused.for_batch(self.rels[0], ctx.batch)
        if fused is not None:  # same value, closed-form gradient (paradime_core.losses.fused)
            return fused(ctx.output(method, data_key), ctx.batch)
        target = ctx.global_relation(self.rels[0])
        prediction = ctx.batch_relation(self.rels[1], method=method, data_key=data_key)
        if target.shape != prediction.shape:
            kind = "edges" if ctx.batch.has_edges else "items"
            raise DataError(
                f"relation loss: global relation '{self.rels[0]}' gives shape {tuple(target.shape)} "
                f"for this batch of {kind} but batch relation '{self.rels[1]}' gives "
                f"{tuple(prediction.shape)} (edge batches need an edge-wise batch relation)"
            )
        if prediction.ndim == 2 and prediction.shape[0] == prediction.shape[1]:
            target = _zero_diagonal(target)
            prediction = _zero_diagonal(prediction)
        return self.func(target, prediction, **self._func_options)


@register_loss_type("classification")
class ClassificationLoss(_BuiltinLoss):
    """Cross entropy of ``model.classify(x)`` logits against the labels in ``data``."""

    max_data = 2

    def __call__(self, ctx: BatchContext) -> torch.Tensor:
        method = self.methods[0] if self.methods else "classify"
        input_key, label_key = ("main", "labels") if not self.data else (
            ("main", self.data[0]) if len(self.data) == 1 else tuple(self.data))
        logits = ctx.output(method, input_key)
        labels = ctx.data(label_key)
        if self.func is not None and self.func is not cross_entropy:
            return self.func(labels, logits)
        if labels.is_floating_point() and labels.shape == logits.shape:
            return F.cross_entropy(logits, labels.to(logits.dtype))
        return F.cross_entropy(logits, labels.reshape(-1).long())


@register_loss_type("reconstruction")
class ReconstructionLoss(_BuiltinLoss):
    """``func(x, decode(encode(x)))`` (default mse)."""

    max_methods = 2

    def __call__(self, ctx: BatchContext) -> torch.Tensor:
        data_key = self.data[0] if self.data else "main"
        methods = self.methods or ["encode", "decode"]
        x = ctx.data(data_key)
        out = ctx.output(methods[0], data_key)
        if len(methods) == 2:
            out = call_model_method(ctx.model, methods[1], out)
        return (self.func or mse)(x.to(out.dtype), out)


@register_loss_type("position")
class PositionLoss(_BuiltinLoss):
    """``func(target positions, model.embed(x))`` (default mse)."""

    max_data = 2

    def __init__(self, func=None, data=None, rels=None, methods=None):
        super().__init__(func, data, rels, methods)
        if not self.data:
            raise ValueError("needs the target positions in keys.data ([target] or [input, target])")

    def __call__(self, ctx: BatchContext) -> torch.Tensor:
        method = self.methods[0] if self.methods else "embed"
        input_key, target_key = ("main", self.data[0]) if len(self.data) == 1 else self.data
        out = ctx.output(method, input_key)
        target = ctx.data(target_key).to(out.dtype)
        return (self.func or mse)(target, out)


@register_loss_type("triplet")
class TripletLoss(_BuiltinLoss):
    """``func(||y_a - y_p||, ||y_a - y_n||)`` over the batch's triplets, by default ``margin``
    (paper Eq. 2: ``mean_t max(0, ||y_a - y_p|| - ||y_a - y_n|| + margin)``).

    Triplets come from triplet sampling, or from edge sampling: each positive edge ``(a, p)``
    with each of its negatives ``(a, n)`` (over a label-equality relation, Eq. 1, that makes
    ``p`` share ``a``'s label and ``n`` not). ``keys.data`` names ``[anchor key, partner
    key]``, the inputs of the anchors and of their partners (both ``main`` by default;
    ``data`` is ParaDime 1.x's name of the main entry). A ``func`` with a ``margin``
    parameter gets the ``margin`` option.
    """

    rel_levels = None  # a relation may be named for readability; triplets come from sampling
    max_rels = 1
    max_data = 2
    data_key_aliases = {"data": "main"}

    def __init__(self, func=None, data=None, rels=None, methods=None, margin: Annotated[float, Ge(0)] = 1.0):
        super().__init__(func, data, rels, methods)
        self.margin = float(margin)
        self.func = func or triplet_margin
        self._func_options = ({"margin": self.margin}
                              if "margin" in inspect.signature(self.func).parameters else {})

    def __call__(self, ctx: BatchContext) -> torch.Tensor:
        triplets = batch_triplets(ctx.batch)
        if triplets is None:
            raise DataError("triplet loss needs triplets: sampling of type 'triplet', or 'edge' "
                            "(each positive edge with its negatives)")
        method = self.methods[0] if self.methods else "embed"
        anchor_key = self.data[0] if self.data else "main"
        partner_key = self.data[1] if len(self.data) > 1 else anchor_key
        out = ctx.output(method, anchor_key)
        partners = out if partner_key == anchor_key else ctx.output(method, partner_key)
        if triplets.shape[0] == 0:
            return out.sum() * 0.0
        anchor = gather_rows(out, triplets[:, 0])
        positive, negative = (gather_rows(partners, triplets[:, c]) for c in (1, 2))
        d_pos = torch.linalg.vector_norm(anchor - positive, dim=1)
        d_neg = torch.linalg.vector_norm(anchor - negative, dim=1)
        return self.func(d_pos, d_neg, **self._func_options)


def pearson(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Column-wise Pearson correlation of two (b, k) tensors (0 for a constant column)."""
    xc = x - x.mean(dim=0, keepdim=True)
    yc = y - y.mean(dim=0, keepdim=True)
    denom = torch.sqrt((xc * xc).sum(dim=0) * (yc * yc).sum(dim=0)).clamp_min(TINY)
    return (xc * yc).sum(dim=0) / denom


Index = Annotated[int, Ge(0)]
Indices = Index | Annotated[Sequence[Index], MinLen(1)] | None
"""Column or dimension indices: one, a non-empty list, or None (the default pairing)."""
CorrelationForm = Literal["squared", "signed"]


def _index_list(value: Indices) -> list[int] | None:
    """``value`` as a list (one index becomes a list of one)."""
    if value is None:
        return None
    return list(value) if isinstance(value, Sequence) else [value]


@register_loss_type("correlation")
class CorrelationLoss(_BuiltinLoss):
    """Paper Eq. 3: ``sum_k (1 - rho(x[:, columns[k]], y[:, dims[k]])^2)`` over the named pairs.

    ``rho`` is the Pearson correlation over the batch's items, of attribute column
    ``columns[k]`` of ``keys.data`` and embedding dimension ``dims[k]`` (the pairs are
    options; default: column ``k`` with dimension ``k``). Summed over the pairs, each term
    in ``[0, 1]``: 0 when the dimension is an affine function of the attribute, whatever its
    sign. ``form: signed`` minimises ``-sum_k rho_k`` instead (``-sum_k |rho_k|`` with
    ``absolute``), which also fixes the direction of each axis.
    """

    max_data = 2
    FORMS = get_args(CorrelationForm)
    option_aliases = {"column": "columns", "dim": "dims", "attribute": "columns", "dimension": "dims"}

    def __init__(self, func=None, data=None, rels=None, methods=None, columns: Indices = None,
                 dims: Indices = None, method: Literal["pearson"] = "pearson", form: CorrelationForm = "squared",
                 absolute: bool = False):
        super().__init__(func, data, rels, methods)
        self.columns = _index_list(columns)
        self.dims = _index_list(dims)
        if self.columns is not None and self.dims is not None and len(self.columns) != len(self.dims):
            raise ValueError(f"columns ({len(self.columns)}) and dims ({len(self.dims)}) must pair up one to one")
        self.method = method
        self.form = form
        self.absolute = absolute

    def __call__(self, ctx: BatchContext) -> torch.Tensor:
        method = self.methods[0] if self.methods else "embed"
        input_key, attr_key = ("main", self.data[0] if self.data else "main") if len(self.data) < 2 else self.data
        y = ctx.output(method, input_key)
        x = ctx.data(attr_key).to(y.dtype)
        if x.ndim == 1:
            x = x[:, None]
        n_pairs = min(x.shape[1], y.shape[1])
        columns = self.columns or list(range(len(self.dims) if self.dims else n_pairs))
        dims = self.dims or list(range(len(columns)))
        if max(columns) >= x.shape[1] or max(dims) >= y.shape[1]:
            raise DataError(
                f"correlation loss: columns {columns} of '{attr_key}' ({x.shape[1]} columns) or dims "
                f"{dims} of the embedding ({y.shape[1]} dims) out of range"
            )
        corr = pearson(x[:, columns], y[:, dims])
        if self.form == "squared":
            return (1.0 - corr * corr).sum()
        if self.absolute:
            corr = corr.abs()
        return -corr.sum()


# ---------------------------------------------------------------------------------------
# Compound loss
# ---------------------------------------------------------------------------------------


class CompoundLoss:
    """Weighted sum ``L = sum_c w_c L_c`` of named loss components."""

    def __init__(self, components: Sequence[tuple[str, Callable[[BatchContext], torch.Tensor], float]]):
        if not components:
            raise ValueError("a compound loss needs at least one component")
        self.components = [(str(name), loss, float(weight)) for name, loss, weight in components]

    @property
    def names(self) -> list[str]:
        return [name for name, _, _ in self.components]

    def __call__(self, ctx: BatchContext) -> tuple[torch.Tensor, dict[str, float]]:
        """The weighted total (differentiable) and each component's value (detached floats)."""
        total: torch.Tensor | None = None
        values: dict[str, float] = {}
        for name, loss, weight in self.components:
            value = loss(ctx)
            values[name] = float(value.detach())
            total = weight * value if total is None else total + weight * value
        assert total is not None
        return total, values


__all__ = [
    "LossType", "RelationLoss", "ClassificationLoss", "ReconstructionLoss", "PositionLoss",
    "TripletLoss", "CorrelationLoss", "CompoundLoss", "pearson",
]
