"""Losses: loss functions, loss types, and the fused kernels of the common edge losses.

- :mod:`~paradime_core.losses.functions`: ``f(target, prediction) -> scalar`` (``kl_div``,
  ``mse``, ``cross_entropy``, ``infonce``, ...).
- :mod:`~paradime_core.losses.loss_types`: what a loss compares for a batch (``relation``,
  ``classification``, ``reconstruction``, ``position``, ``triplet``, ``correlation``) and
  the weighted :class:`CompoundLoss` of a phase.
- :mod:`~paradime_core.losses.density`: densMAP's density-preservation term (``density``),
  estimated per edge batch.
- :mod:`~paradime_core.losses.fused`: one autograd node with a closed-form gradient for an
  edge loss on a known kernel.

Importing this package registers the built-in loss functions and loss types.
"""

from __future__ import annotations

from paradime_core.losses.density import DensityLoss
from paradime_core.losses.functions import (
    EPS,
    LOG_EPS,
    cross_entropy,
    edge_layout,
    huber,
    infonce,
    kl_div,
    mae,
    margin,
    mse,
)
from paradime_core.losses.loss_types import (
    ClassificationLoss,
    CompoundLoss,
    CorrelationLoss,
    LossType,
    PositionLoss,
    ReconstructionLoss,
    RelationLoss,
    TripletLoss,
    pearson,
)

__all__ = [
    "EPS", "LOG_EPS", "ClassificationLoss", "CompoundLoss", "CorrelationLoss", "DensityLoss", "LossType",
    "PositionLoss", "ReconstructionLoss", "RelationLoss", "TripletLoss", "cross_entropy",
    "edge_layout", "huber", "infonce", "kl_div", "mae", "margin", "mse", "pearson",
]
