r"""Weights of a phase's compound loss: fixed, or balanced by running magnitude (``auto``).

A phase minimises ``L = sum_c w_c L_c``. With fixed weights ``w_c`` is the number the spec
gives (1 when it gives none). With ``weights: auto`` each step uses

.. math:: w_c = 1 / \hat m_c, \qquad m_c \leftarrow \beta m_c + (1 - \beta) |L_c|,
          \qquad \hat m_c = m_c / (1 - \beta^t)

where ``t`` counts the steps so far (the current one included) and ``m_c`` starts at 0: a
bias-corrected exponential moving average of the component's magnitude (as Adam corrects
its moments), computed from detached values, so the weights carry no gradient. Every
component then contributes about 1 to the total whatever its units or scale, and its
gradient is ``∇L_c / \hat m_c ≈ ∇ log L_c``: each component is followed in relative, not
absolute, terms. This is the fixed point of homoscedastic uncertainty weighting (Kendall,
Gal and Cipolla, CVPR 2018: minimising ``L_c / (2 s_c^2) + log s_c`` over ``s_c`` gives
``1 / (2 s_c^2) = 1 / (2 L_c)``), reached without extra parameters.

A component that approaches 0 (a satisfied hinge, a correlation near 1, a training
classification loss) gets an ever larger weight under the running form. ``weights: {auto:
true, freeze_after: k}`` stops updating the magnitudes after ``k`` epochs: from then on the
weights stay those of the end of epoch ``k``, the components' scales early in the phase.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch

AUTO = "auto"
"""The spelling of ``weights: auto`` in a phase's loss."""
MAGNITUDE_DECAY = 0.99
"""``β`` of the running magnitude: a memory of about 100 steps."""
MAGNITUDE_FLOOR = 1e-12
"""Smallest magnitude divided by (a component that is exactly 0 gets weight ``1e12 * 0``)."""
WEIGHT_KEY_PREFIX = "weight:"
"""Loss-history keys of the weights used: ``weight:<component>`` (epoch means)."""


class FixedWeights:
    """The weights a spec gives (``None``: 1 for every component)."""

    recorded = False  # the weights never change: the history holds the losses only

    def __init__(self, weights: Sequence[float] | None, n_components: int):
        self.values = [1.0] * n_components if weights is None else [float(w) for w in weights]

    def step(self, values: Sequence[torch.Tensor]) -> list[float]:
        """The weights for this step's component values (always the same)."""
        return self.values

    def end_epoch(self, epochs_done: int) -> None:
        """Nothing changes between epochs."""


class MagnitudeBalancing:
    """``w_c = 1 / m̂_c``: each component scaled by its bias-corrected running magnitude.

    Parameters
    ----------
    n_components : int
        Number of loss components.
    decay : float
        ``β`` in ``m_c ← β m_c + (1 - β) |L_c|`` (0 <= β < 1).
    freeze_after : int or None
        Epochs after which the magnitudes (and so the weights) stop changing; None: never.
    """

    recorded = True  # the history records the weights used, per epoch

    def __init__(self, n_components: int, decay: float = MAGNITUDE_DECAY, freeze_after: int | None = None):
        self.decay = float(decay)
        self.freeze_after = freeze_after
        self.magnitudes = [0.0] * n_components
        self.weights = [1.0] * n_components
        self.frozen = False
        self.steps = 0

    def end_epoch(self, epochs_done: int) -> None:
        """Freeze the weights once ``freeze_after`` epochs are done."""
        if self.freeze_after is not None and epochs_done >= self.freeze_after:
            self.frozen = True

    def step(self, values: Sequence[torch.Tensor]) -> list[float]:
        """Update the running magnitudes with this step's values and return the weights
        (the frozen weights, unchanged, once frozen)."""
        if self.frozen:
            return self.weights
        self.steps += 1
        correction = 1.0 - self.decay ** self.steps
        weights = []
        for c, value in enumerate(values):
            magnitude = abs(float(value.detach()))
            self.magnitudes[c] = self.decay * self.magnitudes[c] + (1.0 - self.decay) * magnitude
            weights.append(1.0 / max(self.magnitudes[c] / correction, MAGNITUDE_FLOOR))
        self.weights = weights
        return weights


def loss_weighting(weights: Sequence[float] | str | Mapping[str, Any] | None,
                   n_components: int) -> FixedWeights | MagnitudeBalancing:
    """The weighting a phase's ``loss.weights`` asks for: ``auto``, ``{auto: true, freeze_after:
    k}``, a list, or none."""
    if weights == AUTO:
        return MagnitudeBalancing(n_components)
    if isinstance(weights, Mapping):
        return MagnitudeBalancing(n_components, freeze_after=weights.get("freeze_after"))
    return FixedWeights(weights, n_components)


def weighted_total(values: Sequence[torch.Tensor], weights: Sequence[float], device: torch.device) -> torch.Tensor:
    """``sum_c w_c L_c``, summed in component order (the same float result on every run)."""
    total = torch.zeros((), device=device)
    for value, weight in zip(values, weights, strict=True):
        total = total + weight * value
    return total
