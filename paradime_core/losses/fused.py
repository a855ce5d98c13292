r"""Fused edge losses: one autograd node with a closed-form gradient for a common spec.

Two specs are fused: InfoNCE with the Student-t kernel (parametric t-SNE; over shared
negatives, and over each positive's own negatives, the ``pool`` and ``uniform`` layouts)
and the fuzzy cross entropy of UMAP / LargeVis along sampled edges. A batch relation states
its edge kernel (:class:`~paradime_core.protocols.EdgeKernel`); a relation loss asks for it
once and :func:`fused_edge_loss` picks the fused form, or None for every other spec, which
then takes the generic path. Values equal the generic path's up to float rounding.

**InfoNCE.** The spec ``relation(infonce, rels=[P, q])`` with ``q = edge_dist(euclidean) -> t_dist(alpha=1)``
(parametric t-SNE trained contrastively) on a batch with shared negatives
(``Batch.negative_groups``, the ``edge`` sampler's ``negatives="shared"``) evaluates

.. math::

    L = \frac{1}{B} \sum_b \Big[\log S_b - \log q_b\Big], \qquad
    S_b = q_b + \sum_{k=1}^{r} q_{bk}, \qquad q = \frac{1}{1 + s},

with ``s_b = ||y_{i_b} - y_{j_b}||^2`` along positive edge ``b`` and
``s_{bk} = ||y_{i_b} - z_{g(b) k}||^2`` to the ``r`` negatives ``z`` shared by the group
``g(b) = b // (B / G)``. The generic path builds this from a dozen elementwise tensors of
``B r`` entries (square root, square, power, clamp, sum, log, each with its own backward);
here the gradient with respect to the squared distances is written out,

.. math::

    \frac{\partial L}{\partial s_b} = \frac{q_b (1 - q_b / S_b)}{B}, \qquad
    \frac{\partial L}{\partial s_{bk}} = -\frac{q_{bk}^2}{B S_b},

and with ``∂s/∂y_a = 2 (y_a - y_c)`` the gradients of the sources, destinations and shared
negatives are two batched matrix products over the ``(G, B/G, r)`` weight block
``W = ∂L/∂s_{bk}``:

.. math::

    \nabla_{y_{i_b}} \mathrel{+}= 2\Big(y_{i_b} \sum_k W_{bk} - \sum_k W_{bk} z_{g(b)k}\Big),
    \qquad
    \nabla_{z_{gk}} = -2\Big(\sum_{b \in g} W_{bk} y_{i_b} - z_{gk} \sum_{b \in g} W_{bk}\Big).

The negative squared distances are formed as ``||y||^2 + ||z||^2 - 2 <y, z>`` (one batched
matrix product, clamped at 0), which rounds like ``||y||^2`` times the float32 epsilon: on
embeddings of scale 30 the gradients agree with a float64 reference to 2e-5 of their largest
entry (the generic differences: 6e-7), far below the noise of a sampled step. The value
equals the generic path's up to float rounding.

**Edge cross entropy.** ``relation(cross_entropy, rels=[P, q])`` with
``q = edge_dist(euclidean) -> cauchy(a, b)`` (UMAP) or ``-> t_dist(alpha=1)`` (LargeVis, the
kernel with ``a = b = 1``), with repulsion strength ``γ`` (the loss's ``repulsion_strength``), on an edge batch whose targets ``p_e`` are the sampler's (1 for
positives, 0 for negatives) evaluates, over the ``N`` edges with ``s_e = ||y_{i_e} - y_{j_e}||^2``,

.. math::

    L = -\frac{1}{N} \sum_e \Big[p_e \log(q_e + \epsilon) + \gamma (1 - p_e) \log(1 - q_e + \epsilon)\Big],
    \qquad q_e = \frac{1}{1 + a\, \hat s_e^{\,b}},

with ``\hat s = max(s, 10^{-12})`` for the Cauchy kernel (the generic transform's clamp; the
Student-t kernel uses ``s``). Its gradient with respect to the edge vectors
``\delta_e = y_{i_e} - y_{j_e}`` is ``2 \delta_e\, \partial L / \partial s_e`` with

.. math::

    \frac{\partial L}{\partial s_e} = -\frac{1}{N}\Big[\frac{p_e}{q_e + \epsilon}
        - \gamma \frac{1 - p_e}{1 - q_e + \epsilon}\Big] \cdot \big(-a b\, \hat s_e^{\,b-1} q_e^2\big)

(zero where the clamp is active). The generic path builds about a dozen elementwise tensors
over the ``N`` edges, each with its own backward; the fused node gathers and scatters along
the columns of a ``(d, n)`` copy of the output instead.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from paradime_core.batch import Batch, gather_rows
from paradime_core.losses.functions import EPS, cross_entropy, infonce
from paradime_core.protocols import EDGE_KERNEL_CLAMP as SQ_EPS
from paradime_core.protocols import STUDENT_T, EdgeKernel


class SharedNegativeInfoNCE(torch.autograd.Function):
    """InfoNCE with the Student-t kernel ``q = 1 / (1 + s)`` over shared negatives (see module doc)."""

    @staticmethod
    def forward(ctx: Any, sources: torch.Tensor, dests: torch.Tensor, negatives: torch.Tensor) -> torch.Tensor:
        n_groups, _, dim = negatives.shape
        grouped = sources.reshape(n_groups, -1, dim)  # (G, g, d)
        diff_pos = sources - dests
        q_pos = 1.0 / (1.0 + (diff_pos * diff_pos).sum(-1))  # (B,)
        source_norms = (grouped * grouped).sum(-1, keepdim=True)  # (G, g, 1)
        negative_norms = (negatives * negatives).sum(-1).unsqueeze(1)  # (G, 1, r)
        sq_neg = torch.baddbmm(source_norms + negative_norms, grouped, negatives.transpose(1, 2),
                               alpha=-2.0).clamp_(min=0.0)
        q_neg = sq_neg.add_(1.0).reciprocal_()  # (G, g, r), in place of the squared distances
        total = q_pos + q_neg.sum(-1).reshape(-1)  # S_b
        loss = (torch.log(total) - torch.log(q_pos)).mean()
        ctx.save_for_backward(grouped, diff_pos, negatives, q_pos, q_neg, total)
        return loss

    @staticmethod
    def backward(ctx: Any, grad_output: torch.Tensor):
        grouped, diff_pos, negatives, q_pos, q_neg, total = ctx.saved_tensors
        n_pos = q_pos.shape[0]
        scale = grad_output / n_pos
        weight_pos = scale * q_pos * (1.0 - q_pos / total)  # dL/ds_b
        inverse_total = (scale / total).reshape(grouped.shape[0], -1, 1)
        weight_neg = -(q_neg * q_neg) * inverse_total  # dL/ds_bk, (G, g, r)
        row_sums = weight_neg.sum(-1, keepdim=True)  # (G, g, 1)
        col_sums = weight_neg.sum(1).unsqueeze(-1)  # (G, r, 1)
        grad_pos = 2.0 * weight_pos.unsqueeze(-1) * diff_pos
        grad_sources = grad_pos + 2.0 * (grouped * row_sums - torch.bmm(weight_neg, negatives)).reshape_as(diff_pos)
        grad_negatives = -2.0 * (torch.bmm(weight_neg.transpose(1, 2), grouped) - negatives * col_sums)
        return grad_sources, -grad_pos, grad_negatives


class PairedNegativeInfoNCE(torch.autograd.Function):
    """InfoNCE with the Student-t kernel over ``r`` negatives of each positive's own (the
    ``uniform`` and ``pool`` layouts): the formulas of :class:`SharedNegativeInfoNCE` with a
    (B, r) block ``W_bk = ∂L/∂s_bk``, ``s_bk = ||y_{i_b} - z_{bk}||^2``. It takes the whole
    (n, d) output and the edges' positions and works coordinate-major (a (d, n) copy, gathers
    and ``index_add`` along its columns), so sums over a coordinate and the scatter of the
    gradient run along long rows rather than inner dimensions of size d. Differences are kept
    exactly (no norm expansion): values and gradients equal the generic path's to rounding."""

    @staticmethod
    def forward(ctx: Any, outputs: torch.Tensor, sources: torch.Tensor, dests: torch.Tensor,
                negatives: torch.Tensor) -> torch.Tensor:
        n_pos, rate = negatives.shape
        coords = outputs.t().contiguous()  # (d, n)
        source_coords = coords.index_select(1, sources)  # (d, B)
        diff_pos = source_coords - coords.index_select(1, dests)  # (d, B)
        diff_neg = source_coords.unsqueeze(-1) - coords.index_select(1, negatives.reshape(-1)).view(-1, n_pos, rate)
        q_pos = (diff_pos * diff_pos).sum(0).add_(1.0).reciprocal_()  # (B,)
        q_neg = (diff_neg * diff_neg).sum(0).add_(1.0).reciprocal_()  # (B, r)
        total = q_pos + q_neg.sum(-1)  # S_b
        loss = (torch.log(total) - torch.log(q_pos)).mean()
        ctx.save_for_backward(diff_pos, diff_neg, q_pos, q_neg, total, sources, dests, negatives)
        ctx.n_items = outputs.shape[0]
        return loss

    @staticmethod
    def backward(ctx: Any, grad_output: torch.Tensor):
        diff_pos, diff_neg, q_pos, q_neg, total, sources, dests, negatives = ctx.saved_tensors
        scale = 2.0 * grad_output / q_pos.shape[0]
        weight_pos = scale * q_pos * (1.0 - q_pos / total)  # 2 dL/ds_b
        weight_neg = (q_neg * q_neg).mul_((-scale / total).unsqueeze(-1))  # 2 dL/ds_bk, (B, r)
        grad_pos = diff_pos * weight_pos  # (d, B)
        grad_neg = diff_neg * weight_neg  # (d, B, r)
        grad = diff_pos.new_zeros((diff_pos.shape[0], ctx.n_items))
        grad.index_add_(1, sources, grad_pos + grad_neg.sum(-1))
        # negated sources, not alpha=-1: index_add_'s alpha path is far slower
        grad.index_add_(1, dests, grad_pos.neg_())
        grad.index_add_(1, negatives.reshape(-1), grad_neg.neg_().reshape(grad.shape[0], -1))
        return grad.t(), None, None, None


def paired_negative_infonce(outputs: torch.Tensor, batch: Batch) -> torch.Tensor:
    """The fused loss for a batch laid out as B positives then each positive's r negatives."""
    n_edges = batch.edge_rows.shape[0]
    n_pos = int((batch.edge_targets > 0).sum())
    rate = (n_edges - n_pos) // n_pos
    device = outputs.device
    return PairedNegativeInfoNCE.apply(outputs.float(), batch.edge_rows[:n_pos].to(device),
                                       batch.edge_cols[:n_pos].to(device),
                                       batch.edge_cols[n_pos:].reshape(n_pos, rate).to(device))


def _paired_negative_layout(batch: Batch) -> bool:
    """Whether the edges are B positives, then r negatives per positive sharing its source
    (``edge_rows[B + b r + k] == edge_rows[b]``), as the edge sampler lays them out."""
    targets = batch.edge_targets
    n_edges = int(batch.edge_rows.shape[0])
    n_pos = int((targets > 0).sum())
    if n_pos == 0 or n_pos == n_edges or (n_edges - n_pos) % n_pos:
        return False
    rate = (n_edges - n_pos) // n_pos
    if not bool((targets[:n_pos] > 0).all()):
        return False
    sources = batch.edge_rows[:n_pos]
    return bool(torch.equal(batch.edge_rows[n_pos:].reshape(n_pos, rate), sources.unsqueeze(1).expand(n_pos, rate)))


def shared_negative_infonce(outputs: torch.Tensor, batch: Batch) -> torch.Tensor:
    """The fused loss on ``outputs`` (the batch's embedded items) for a shared-negative batch."""
    groups = batch.negative_groups
    n_groups, rate = groups.shape
    n_pos = batch.edge_rows.shape[0] // (1 + rate)
    outputs = outputs.float()
    sources = gather_rows(outputs, batch.edge_rows[:n_pos])
    dests = gather_rows(outputs, batch.edge_cols[:n_pos])
    negatives = gather_rows(outputs, groups.reshape(-1)).reshape(n_groups, rate, -1)
    return SharedNegativeInfoNCE.apply(sources, dests, negatives)


class EdgeCrossEntropy(torch.autograd.Function):
    """Fuzzy cross entropy of the kernel ``q = 1 / (1 + a s^b)`` along the edges ``(rows, cols)``
    of the (n, d) output (see module doc), coordinate-major like :class:`PairedNegativeInfoNCE`."""

    @staticmethod
    def forward(ctx: Any, outputs: torch.Tensor, rows: torch.Tensor, cols: torch.Tensor, targets: torch.Tensor,
                a: float, b: float, eps: float, clamp: bool, repulsion: float = 1.0) -> torch.Tensor:
        coords = outputs.t().contiguous()  # (d, n)
        diff = coords.index_select(1, rows) - coords.index_select(1, cols)  # (d, m)
        sq = (diff * diff).sum(0)
        s = sq.clamp_min(SQ_EPS) if clamp else sq
        power = s if b == 1.0 else s.pow(b)
        q = (a * power).add_(1.0).reciprocal_()
        positive = torch.log(q + eps)
        negative = torch.log1p(eps - q)
        if repulsion != 1.0:
            negative = negative * repulsion
        loss = -(negative + targets * (positive - negative)).sum() / sq.shape[0]
        ctx.save_for_backward(diff, sq, s, power, q, targets, rows, cols)
        ctx.constants = (a, b, eps, clamp, repulsion, outputs.shape[0])
        return loss

    @staticmethod
    def backward(ctx: Any, grad_output: torch.Tensor):
        diff, sq, s, power, q, targets, rows, cols = ctx.saved_tensors
        a, b, eps, clamp, repulsion, n_items = ctx.constants
        n_edges = sq.shape[0]
        dl_dq = repulsion * (1.0 - targets) / (1.0 + eps - q) - targets / (q + eps)
        dq_ds = (q * q).mul_(-a * b)
        if b != 1.0:
            dq_ds.mul_(power / s)  # s^(b-1)
        if clamp:  # the clamped s is constant below SQ_EPS
            dq_ds = torch.where(sq > SQ_EPS, dq_ds, 0.0)
        weight = dl_dq.mul_(dq_ds).mul_(2.0 * grad_output / n_edges)
        grad_diff = diff * weight  # (d, m): the gradient of the rows' ends; the columns' is its negative
        grad = diff.new_zeros((diff.shape[0], n_items))
        grad.index_add_(1, rows, grad_diff)
        grad.index_add_(1, cols, grad_diff.neg_())  # negated, not alpha=-1 (far slower)
        return grad.t(), None, None, None, None, None, None, None, None


def edge_cross_entropy(a: float, b: float, eps: float, clamp: bool, repulsion: float = 1.0):
    """The fused loss for kernel ``(a, b)`` and repulsion strength γ as a function of (outputs, batch)."""

    def loss(outputs: torch.Tensor, batch: Batch) -> torch.Tensor:
        outputs = outputs.float()
        device = outputs.device
        targets = batch.edge_targets.to(device=device, dtype=outputs.dtype)
        return EdgeCrossEntropy.apply(outputs, batch.edge_rows.to(device), batch.edge_cols.to(device), targets,
                                      a, b, eps, clamp, repulsion)

    return loss


@dataclass(frozen=True)
class FusedEdgeLoss:
    """The fused form of a loss function on a batch relation's edge kernel.

    Chosen once, when a relation loss is bound to its batch relation
    (:func:`fused_edge_loss`); per batch, :meth:`for_batch` checks the batch's layout.
    """

    func: Any
    kernel: EdgeKernel
    repulsion_strength: float = 1.0

    def for_batch(self, target_name: str, batch: Batch) -> Any:
        """``loss(outputs, batch)`` for this batch, or None where its layout has no fused form.

        The target must be the relation the batch's edges were sampled from, with the
        sampler's targets (1 for positives, 0 for negatives). InfoNCE also needs equal groups
        of shared negatives or each positive's own negatives.
        """
        if not batch.has_edges or batch.edge_targets is None or target_name != batch.edge_relation:
            return None
        if self.func is cross_entropy:
            return edge_cross_entropy(self.kernel.a, self.kernel.b, EPS, self.kernel.clamp, self.repulsion_strength)
        groups = batch.negative_groups
        if groups is None:
            return paired_negative_infonce if _paired_negative_layout(batch) else None
        n_groups, rate = groups.shape
        n_edges = batch.edge_rows.shape[0]
        if rate == 0 or n_edges % (1 + rate) != 0 or (n_edges // (1 + rate)) % n_groups != 0:
            return None
        return shared_negative_infonce


def fused_edge_loss(func: Any, kernel: EdgeKernel | None, repulsion_strength: float = 1.0) -> FusedEdgeLoss | None:
    """The fused form of loss function ``func`` on edge kernel ``kernel``, or None.

    Fused: the built-in ``cross_entropy`` on any :class:`~paradime_core.protocols.EdgeKernel`
    (UMAP's Cauchy kernel, LargeVis' Student-t), and the built-in ``infonce`` on the
    Student-t kernel (parametric t-SNE). Every other pair takes the generic path.
    ``repulsion_strength`` is the cross entropy's (1 for InfoNCE, which has none).
    """
    if kernel is None:
        return None
    if func is cross_entropy:
        return FusedEdgeLoss(func, kernel, float(repulsion_strength))
    if func is infonce and kernel == STUDENT_T and repulsion_strength == 1.0:
        return FusedEdgeLoss(func, kernel)
    return None
