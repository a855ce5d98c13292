r"""densMAP's density-preservation loss, estimated per edge batch.

densMAP (Narayan, Berger & Cho 2021) adds to UMAP's objective a global term: the Pearson
correlation, over all items, between the log local radii in the original space,
:math:`\log R_i` (:func:`paradime_core.derived.local_radii.log_radii`, computed once from
the global graph), and in the embedding,

.. math:: r_i = \frac{\sum_j q_{ij} \, \|y_i - y_j\|^2}{\sum_j q_{ij}},

with :math:`q_{ij}` the embedding's similarities over the graph's edges.

A batch of the ``edge`` sampler holds ``B`` positive edges drawn with probability
:math:`\propto p_{ij}`. The loss estimates :math:`r_i` for each item that is an endpoint of
at least ``min_edges`` of them from those edges alone, weighted by the batch relation's
similarities :math:`q_e` (e.g. UMAP's :math:`1 / (1 + a d^{2b})`):

.. math:: \hat r_i = \frac{\sum_{e \ni i} q_e \, d_e^2}{\sum_{e \ni i} q_e},
          \qquad d_e = \|y_s - y_t\| \text{ for edge } e = (s, t).

Since the edges are drawn :math:`\propto p`, :math:`\hat r_i` is a ratio estimate of
:math:`\sum_j p_{ij} q_{ij} d_{ij}^2 / \sum_j p_{ij} q_{ij}`: the same neighbourhood
weighting as :math:`R_i` (by :math:`p`), times the embedding's own weighting (by
:math:`q`). Over the estimated items :math:`S` of the batch, with :math:`a_i = \log R_i`,
:math:`b_i = \log(\varepsilon + \hat r_i)` and densMAP's variance shift :math:`s`,

.. math:: \rho_S = \frac{\sum_{i \in S} (a_i - \bar a)(b_i - \bar b)}
          {\sqrt{\sum_{i \in S} (a_i - \bar a)^2 \,
          \big(\sum_{i \in S} (b_i - \bar b)^2 + |S| \, s\big)}},
          \qquad L = 1 - \rho_S \in [0, 2].

:math:`L` has the gradient of densMAP's :math:`-\rho` and is non-negative, so it adds to a
compound loss like its other components (0 when the log radii are perfectly correlated).
The shift :math:`s` keeps the gradient bounded while the embedded radii are still nearly
equal. Normalisation: one value per batch, independent of the batch size.
"""

from __future__ import annotations

from typing import Annotated

import torch
from annotated_types import Ge, Gt

from paradime_core.batch import Batch, BatchContext, gather_rows
from paradime_core.derived.local_radii import RADIUS_EPS
from paradime_core.errors import DataError
from paradime_core.losses.functions import TINY
from paradime_core.losses.loss_types import LossType
from paradime_core.spec.registry import register_loss_type


def positive_edges(batch: Batch) -> tuple[torch.Tensor, torch.Tensor]:
    """Source and target positions (into ``batch.items``) of the batch's positive edges."""
    if batch.edge_targets is None:
        return batch.edge_rows, batch.edge_cols
    positive = batch.edge_targets > 0
    return batch.edge_rows[positive], batch.edge_cols[positive]


def batch_log_radii(outputs: torch.Tensor, sources: torch.Tensor, targets: torch.Tensor,
                    weights: torch.Tensor, eps: float = RADIUS_EPS) -> tuple[torch.Tensor, torch.Tensor]:
    r"""``log(eps + r̂_i)`` for every row of ``outputs`` and the number of edges at each.

    :math:`\hat r_i = \sum_{e \ni i} w_e d_e^2 / \sum_{e \ni i} w_e` over the edges
    ``(sources[e], targets[e])`` that have ``i`` as either endpoint, :math:`d_e` their
    Euclidean length in ``outputs``. Rows without an edge get ``log eps`` and count 0.
    """
    diff = gather_rows(outputs, sources) - gather_rows(outputs, targets)
    squared = (diff * diff).sum(dim=1)
    ends = torch.cat([sources, targets]).to(outputs.device)
    weights = weights.to(outputs.dtype)
    n = outputs.shape[0]
    numerator = outputs.new_zeros(n).index_add(0, ends, torch.cat([weights * squared] * 2))
    denominator = outputs.new_zeros(n).index_add(0, ends, torch.cat([weights] * 2))
    count = torch.bincount(ends, minlength=n)
    radius = numerator / torch.where(count > 0, denominator, torch.ones_like(denominator)).clamp_min(TINY)
    return torch.log(eps + radius), count


def shifted_correlation(a: torch.Tensor, b: torch.Tensor, var_shift: float) -> torch.Tensor:
    r"""Pearson's :math:`\rho(a, b)` with ``var_shift`` added to the (population) variance of ``b``."""
    ac, bc = a - a.mean(), b - b.mean()
    n = a.shape[0]
    denominator = torch.sqrt((ac * ac).sum() * ((bc * bc).sum() + n * var_shift)).clamp_min(TINY)
    return (ac * bc).sum() / denominator


@register_loss_type("density", aliases=("densmap",))
class DensityLoss(LossType):
    r"""``1 - ρ(log R, log r̂)`` over the items of an edge batch (densMAP's density term).

    ``keys.rels: [P, Q]``: the global graph the edges are sampled from and the batch
    relation whose per-edge similarities :math:`q_e` weight the embedded radii.
    ``keys.data: [log_radii]`` (or ``[input, log_radii]``): the items' log radii
    :math:`\log R_i` in the original space (the ``log_radii`` data function).
    ``methods: [embed]`` by default.

    Parameters
    ----------
    var_shift : float
        densMAP's shift :math:`s \ge 0` of the embedded log radii's variance.
    min_edges : int
        Positive edges an item must be an endpoint of for its radius to be estimated.
    eps : float
        Added to :math:`\hat r_i` inside the logarithm (> 0).
    """

    rel_levels = ("global", "batch")
    max_rels = 2
    max_data = 2
    max_methods = 1

    def __init__(self, func=None, data=None, rels=None, methods=None,
                 var_shift: Annotated[float, Ge(0)] = 0.1,
                 min_edges: Annotated[int, Ge(1)] = 1,
                 eps: Annotated[float, Gt(0)] = RADIUS_EPS):
        super().__init__(func, data, rels, methods)
        if len(self.rels) != 2:
            raise ValueError(f"needs two relations (global graph, batch similarity) in keys.rels, got {self.rels}")
        if not self.data:
            raise ValueError("needs the items' log radii in keys.data ([log_radii] or [input, log_radii])")
        self.var_shift = float(var_shift)
        self.min_edges = int(min_edges)
        self.eps = float(eps)

    def __call__(self, ctx: BatchContext) -> torch.Tensor:
        batch = ctx.batch
        if not batch.has_edges or batch.edge_relation != self.rels[0]:
            raise DataError(f"density loss needs edge batches sampled from relation '{self.rels[0]}' "
                            "(sampling: {type: edge, rels: " + self.rels[0] + "})")
        method = self.methods[0] if self.methods else "embed"
        input_key, radii_key = ("main", self.data[0]) if len(self.data) == 1 else self.data
        outputs = ctx.output(method, input_key)
        sources, targets = positive_edges(batch)
        edges = Batch(items=batch.items, edge_rows=sources, edge_cols=targets,
                      edge_targets=torch.ones(sources.shape[0]), edge_relation=batch.edge_relation)
        similarities = ctx.batch_relations[self.rels[1]](outputs, edges).reshape(-1)
        embedded, count = batch_log_radii(outputs, sources, targets, similarities, self.eps)
        estimated = torch.nonzero(count >= self.min_edges).squeeze(1)
        if estimated.shape[0] < 3:
            return outputs.sum() * 0.0
        original = ctx.data(radii_key).reshape(-1).to(outputs.dtype)
        rho = shifted_correlation(gather_rows(original, estimated), gather_rows(embedded, estimated), self.var_shift)
        return 1.0 - rho


__all__ = ["DensityLoss", "batch_log_radii", "positive_edges", "shifted_correlation"]
