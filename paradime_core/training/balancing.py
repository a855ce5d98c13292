r"""Weights of a phase's compound loss: fixed, or balanced (``auto``) by each component's
running gradient norm at the model outputs or by its running magnitude.

A phase minimises ``L = sum_c w_c L_c``. With fixed weights ``w_c`` is the number the spec
gives (1 when it gives none). Balanced weights divide each component by a bias-corrected
exponential moving average of a measure ``a_c`` of it:

.. math:: w_c = 1 / \hat m_c, \qquad m_c \leftarrow \beta m_c + (1 - \beta) a_c,
          \qquad \hat m_c = m_c / (1 - \beta^t)

where ``t`` counts the steps so far (the current one included) and ``m_c`` starts at 0 (as
Adam corrects its moments); the measures are detached, so the weights carry no gradient.

``{auto: gradient}`` measures ``a_c = ||∂L_c / ∂Y||``, ``Y`` the model
outputs the batch's components read (every output the step computed, concatenated; a
component that does not read an output contributes 0 there): each component pulls on the
model outputs with a norm of about 1. Balancing gradients at the last shared representation
is the criterion of MGDA-UB (Sener and Koltun, NeurIPS 2018) and GradNorm (Chen et al., ICML
2018, without its learned asymmetry); the outputs are the last representation every
component shares with the network whatever its architecture, and ``∂L_c / ∂Y`` costs a
backward pass through the loss only, not through the network.

``{auto: magnitude}`` measures ``a_c = |L_c|``: every component contributes about 1 to the
total, and its gradient is ``∇L_c / \hat m_c ≈ ∇ log L_c``, the fixed point of homoscedastic
uncertainty weighting (Kendall, Gal and Cipolla, CVPR 2018: minimising ``L_c / (2 s_c^2) +
log s_c`` over ``s_c`` gives ``s_c^2 = L_c``). Equal values are not equal pulls: a component
whose value is large next to its gradient (an irreducible KL divergence) gets less pull.

A component whose measure approaches 0 (a satisfied hinge, a correlation near 1, a training
classification loss) gets an ever larger weight while the average runs, and weights that
keep moving make the balance the phase ends with differ from the one it trained under.
``freeze_after: k`` (default 1) stops updating the averages after ``k`` epochs: from then on
the weights stay those of the end of epoch ``k``, the components' scales early in the phase,
and no measure is computed; ``freeze_after: never`` keeps the running weights. ``weights:
auto`` is ``{auto: gradient, freeze_after: 1}``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch

from paradime_core.spec.elements import DEFAULT_FREEZE_AFTER, NEVER_FREEZE

AUTO = "auto"
"""The spelling of ``weights: auto`` in a phase's loss (gradient balancing, frozen after 1 epoch)."""
MAGNITUDE = "magnitude"
"""``weights: {auto: magnitude}``: balanced loss values (``{auto: gradient}``: gradients)."""
MAGNITUDE_DECAY = 0.99
"""``β`` of the running averages: a memory of about 100 steps."""
MAGNITUDE_FLOOR = 1e-12
"""Smallest average divided by: a component whose measure has always been exactly 0 (a zero
value; a zero gradient, which no weight changes) gets weight ``1e12``."""
WEIGHT_KEY_PREFIX = "weight:"
"""Loss-history keys of the weights used: ``weight:<component>`` (epoch means)."""


class FixedWeights:
    """The weights a spec gives (``None``: 1 for every component)."""

    recorded = False  # the weights never change: the history holds the losses only

    def __init__(self, weights: Sequence[float] | None, n_components: int):
        self.values = [1.0] * n_components if weights is None else [float(w) for w in weights]

    def step(self, values: Sequence[torch.Tensor], outputs: Sequence[torch.Tensor] = ()) -> list[float]:
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

    def measures(self, values: Sequence[torch.Tensor], outputs: Sequence[torch.Tensor]) -> list[float]:
        """``|L_c|`` of each component (detached)."""
        return [abs(float(value.detach())) for value in values]

    def step(self, values: Sequence[torch.Tensor], outputs: Sequence[torch.Tensor] = ()) -> list[float]:
        """Update the running magnitudes with this step's measures and return the weights
        (the frozen weights, unchanged, once frozen).

        Parameters
        ----------
        values : sequence of torch.Tensor
            This step's component values ``L_c`` (scalars, with their graphs).
        outputs : sequence of torch.Tensor
            The model outputs the step's components read (used by gradient balancing).
        """
        if self.frozen:
            return self.weights
        self.steps += 1
        correction = 1.0 - self.decay ** self.steps
        weights = []
        for c, magnitude in enumerate(self.measures(values, outputs)):
            self.magnitudes[c] = self.decay * self.magnitudes[c] + (1.0 - self.decay) * magnitude
            weights.append(1.0 / max(self.magnitudes[c] / correction, MAGNITUDE_FLOOR))
        self.weights = weights
        return weights


class GradientBalancing(MagnitudeBalancing):
    """``w_c = 1 / ĝ_c``: each component scaled by the bias-corrected running norm of its
    gradient at the model outputs, ``g_c = ||∂L_c / ∂Y||`` (parameters as
    :class:`MagnitudeBalancing`)."""

    def measures(self, values: Sequence[torch.Tensor], outputs: Sequence[torch.Tensor]) -> list[float]:
        """``||∂L_c / ∂Y||`` of each component over all ``outputs`` together (0 for a component
        that reads none of them); the graphs are kept for the step's backward pass."""
        outputs = [y for y in outputs if y.requires_grad]
        norms = []
        for value in values:
            if not outputs or not value.requires_grad:
                norms.append(0.0)
                continue
            grads = torch.autograd.grad(value, outputs, retain_graph=True, allow_unused=True)
            squares = sum(float(g.detach().pow(2).sum()) for g in grads if g is not None)
            norms.append(squares ** 0.5)
        return norms


def loss_weighting(weights: Sequence[float] | str | Mapping[str, Any] | None,
                   n_components: int) -> FixedWeights | MagnitudeBalancing:
    """The weighting a phase's ``loss.weights`` asks for: ``auto``, ``{auto: gradient |
    magnitude, freeze_after: k | never}`` (in the spec's canonical form), a list, or none."""
    if weights == AUTO:
        return GradientBalancing(n_components, freeze_after=DEFAULT_FREEZE_AFTER)
    if isinstance(weights, Mapping):
        balancing = MagnitudeBalancing if weights.get(AUTO) == MAGNITUDE else GradientBalancing
        freeze_after = weights.get("freeze_after", DEFAULT_FREEZE_AFTER)
        return balancing(n_components, freeze_after=None if freeze_after == NEVER_FREEZE else freeze_after)
    return FixedWeights(weights, n_components)


def weighted_total(values: Sequence[torch.Tensor], weights: Sequence[float], device: torch.device) -> torch.Tensor:
    """``sum_c w_c L_c``, summed in component order (the same float result on every run)."""
    total = torch.zeros((), device=device)
    for value, weight in zip(values, weights, strict=True):
        total = total + weight * value
    return total
