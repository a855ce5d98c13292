r"""Loss functions: ``f(target, prediction) -> scalar Tensor``.

Registered with ``register_loss_function``. Notation: ``p`` is the target (a global
relation read for the batch: a dense ``(b, b)`` block on item batches, one value per edge
on edge batches), ``q`` the prediction (a batch relation on the model's output), ``eps`` a
small constant keeping logarithms finite.

Loss functions
--------------

``kl_div`` (alias ``kl``)
    Kullback-Leibler divergence of the normalised target from the normalised prediction,

    .. math:: \mathrm{KL}(P \| Q) = \sum_{ij} P_{ij} \log \frac{P_{ij}}{Q_{ij}},
              \qquad P = p / \textstyle\sum p, \quad Q = q / \textstyle\sum q,

    summed over every entry given (a dense block whose diagonal the relation loss has set
    to 0, or an edge vector). On a ``(b, b)`` block of an item batch the sum is divided by
    ``b`` (per item of the batch, as the paper's library does), so the loss weights of the
    paper's compound specs (t-SNE + triplet, t-SNE + correlation) carry over as printed.
    Terms with ``P_ij = 0`` contribute 0; ``Q`` is clamped below at ``eps`` inside the
    logarithm. It is 0 exactly when ``P = Q``.

``mse`` (alias ``stress``)
    Mean squared error :math:`\frac{1}{N}\sum_k (p_k - q_k)^2` over the ``N`` entries given
    (metric MDS's stress when ``p`` and ``q`` are distances).

``mae``
    Mean absolute error :math:`\frac{1}{N}\sum_k |p_k - q_k|`.

``huber``
    Mean Huber loss with :math:`\delta = 1`: :math:`\frac{1}{2}(p-q)^2` where
    :math:`|p-q| \le \delta`, :math:`\delta(|p-q| - \frac{\delta}{2})` elsewhere.

``cross_entropy`` (aliases ``umap_cross_entropy``, ``fuzzy_cross_entropy``)
    UMAP's cross entropy between two fuzzy sets, its repulsion term weighted by
    ``repulsion_strength`` :math:`\gamma` (default 1),

    .. math:: -\frac{1}{N}\sum_k \big[ p_k \log (q_k + \varepsilon)
              + \gamma (1 - p_k) \log(1 - q_k + \varepsilon) \big], \qquad \varepsilon = 10^{-4}.

    :math:`\gamma` is LargeVis' weight of the negative edges (Tang et al. 2016 use 7) and
    umap-learn's ``repulsion_strength``; a relation loss passes its option of that name.

    The ``eps`` is added, not clamped: a clamp at ``1 - eps`` would zero the repulsion of
    exactly the pairs that need it most (items embedded on top of each other, as every item
    is when a deep network starts with a nearly constant output), and training could stall
    there.

    With edge sampling, positive edges carry ``p = 1`` (attraction, :math:`-\log q`) and
    negative edges ``p = 0`` (repulsion, :math:`-\log(1 - q)`), and ``N`` is the number of
    edges; on item batches ``p`` is the dense ``(b, b)`` membership-strength block and ``N =
    b`` (the sum per item of the batch, as in the paper's library).

``infonce`` (aliases ``nce_tsne``, ``contrastive``)
    The t-SNE-like contrastive loss of Damrich et al. (2023), "From t-SNE to UMAP with
    contrastive learning". For each positive edge ``(i, j)`` with similarity ``q_ij`` and the
    ``r`` negative edges ``(i, m)`` of the same source ``i``,

    .. math:: -\frac{1}{B}\sum_{(i,j)} \log \frac{q_{ij}}{q_{ij} + \sum_{m} q_{im}}.

    It works on the edge layout of the ``edge`` sampler (see
    :class:`paradime_core.sampling.EdgeSampler`): the vectors hold ``B`` positives first
    (target 1), then ``B * r`` negatives (target 0) where negatives ``b*r .. b*r + r - 1``
    share positive ``b``'s source. A vector in another layout raises a :class:`DataError`.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F

from paradime_core.errors import DataError
from paradime_core.spec.registry import register_loss_function

EPS = 1e-4  # clamp of fuzzy memberships inside logarithms (UMAP's choice)
LOG_EPS = 1e-12  # lower clamp of normalised similarities inside logarithms
TINY = 1e-12  # guards divisions by a sum that may be 0

LossFunction = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def _aligned(target: torch.Tensor, prediction: torch.Tensor, name: str) -> torch.Tensor:
    """``target`` as a tensor of the prediction's dtype/device; shapes must agree."""
    target = torch.as_tensor(target).to(device=prediction.device, dtype=prediction.dtype)
    if target.shape != prediction.shape:
        raise DataError(
            f"loss function '{name}': target shape {tuple(target.shape)} differs from "
            f"prediction shape {tuple(prediction.shape)}"
        )
    return target


def _block_items(values: torch.Tensor) -> int | None:
    """``b`` for a square ``(b, b)`` relation block of an item batch, None for an edge vector."""
    return int(values.shape[0]) if values.ndim == 2 and values.shape[0] == values.shape[1] else None


# ---------------------------------------------------------------------------------------
# Loss functions
# ---------------------------------------------------------------------------------------


@register_loss_function("kl_div", aliases=("kl",))
def kl_div(target: torch.Tensor, prediction: torch.Tensor, eps: float = LOG_EPS) -> torch.Tensor:
    """KL(P || Q) = sum P log(P / Q), P, Q the inputs normalised to sum 1; / b on a (b, b) block."""
    p = _aligned(target, prediction, "kl_div")
    p = p / p.sum().clamp_min(TINY)
    q = prediction / prediction.sum().clamp_min(TINY)
    return (torch.special.xlogy(p, p) - p * torch.log(q.clamp_min(eps))).sum() / (_block_items(p) or 1)


@register_loss_function("mse", aliases=("stress",))
def mse(target: torch.Tensor, prediction: torch.Tensor) -> torch.Tensor:
    """mean (p - q)^2."""
    return F.mse_loss(prediction, _aligned(target, prediction, "mse"))


@register_loss_function("mae")
def mae(target: torch.Tensor, prediction: torch.Tensor) -> torch.Tensor:
    """mean |p - q|."""
    return F.l1_loss(prediction, _aligned(target, prediction, "mae"))


@register_loss_function("huber")
def huber(target: torch.Tensor, prediction: torch.Tensor, delta: float = 1.0) -> torch.Tensor:
    """mean Huber(p - q): quadratic within ``delta``, linear beyond."""
    return F.huber_loss(prediction, _aligned(target, prediction, "huber"), delta=delta)


@register_loss_function("cross_entropy", aliases=("umap_cross_entropy", "fuzzy_cross_entropy"))
def cross_entropy(target: torch.Tensor, prediction: torch.Tensor, eps: float = EPS,
                  repulsion_strength: float = 1.0) -> torch.Tensor:
    """-(1/N) sum[p log(q + eps) + γ (1 - p) log(1 - q + eps)], γ = ``repulsion_strength``;
    N: edges, or b of a block."""
    p = _aligned(target, prediction, "cross_entropy")
    q = prediction.clamp(0.0, 1.0)
    terms = p * torch.log(q + eps) + repulsion_strength * (1.0 - p) * torch.log1p(eps - q)
    return -terms.sum() / (_block_items(p) or terms.numel())


def edge_layout(target: torch.Tensor) -> tuple[int, int]:
    """``(B, r)`` of an edge vector laid out as ``[B positives (1), B*r negatives (0)]``."""
    target = torch.as_tensor(target).reshape(-1)
    n = int(target.numel())
    n_pos = int((target > 0).sum())
    if n_pos == 0 or n == n_pos or (n - n_pos) % n_pos != 0:
        raise DataError(
            f"infonce needs edge batches laid out as B positive edges then B*r negative edges "
            f"(the 'edge' sampler with neg_rate >= 1); got {n_pos} positives among {n} edges"
        )
    if not bool((target[:n_pos] > 0).all()) or bool((target[n_pos:] > 0).any()):
        raise DataError("infonce needs the positive edges first, then the negative edges ('edge' sampler layout)")
    return n_pos, (n - n_pos) // n_pos


@register_loss_function("infonce", aliases=("nce_tsne", "contrastive", "info_nce"))
def infonce(target: torch.Tensor, prediction: torch.Tensor, eps: float = LOG_EPS) -> torch.Tensor:
    """-mean_b log(q_b / (q_b + sum_m q_bm)) on the edge sampler's layout (see module doc)."""
    _aligned(target, prediction, "infonce")
    n_pos, rate = edge_layout(target)
    q = prediction.reshape(-1).clamp_min(eps)
    q_pos = q[:n_pos]
    q_neg = q[n_pos:].reshape(n_pos, rate)
    return (torch.log(q_pos + q_neg.sum(dim=1)) - torch.log(q_pos)).mean()


@register_loss_function("margin", aliases=("triplet_margin",))
def margin(positive_distances: torch.Tensor, negative_distances: torch.Tensor, margin: float = 1.0) -> torch.Tensor:
    """Triplet margin (paper Eq. 2): ``mean_t max(0, d(y_a, y_p) - d(y_a, y_n) + m)``.

    Mean over the ``t`` triplets (the triplet loss passes anchor-positive and
    anchor-negative distances); ``m`` is the triplet loss's ``margin`` option.
    """
    return torch.relu(positive_distances - negative_distances + margin).mean()


__all__ = ["EPS", "LOG_EPS", "TINY", "cross_entropy", "edge_layout", "huber", "infonce", "kl_div", "mae",
           "margin", "mse"]
