"""``weights: auto``: each loss component scaled by its running gradient norm at the model
outputs (``{auto: magnitude}``: by its running magnitude); and specs without the new phase
options train exactly as before."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from paradime_core import Routine, Spec, SpecError
from paradime_core.losses.loss_types import LossType
from paradime_core.spec.registry import register_loss_type
from paradime_core.training import loop as training
from paradime_core.training.balancing import (
    FixedWeights,
    GradientBalancing,
    MagnitudeBalancing,
    loss_weighting,
)


@register_loss_type("test_constant_magnitude", overwrite=True)
class ConstantMagnitude(LossType):
    """``scale`` at every step, whatever the batch (differentiable, zero gradient)."""

    def __init__(self, func=None, data=None, rels=None, methods=None, scale: float = 1.0):
        super().__init__(func, data, rels, methods)
        self.scale = scale

    def __call__(self, ctx):
        return self.scale + 0.0 * ctx.output("embed").sum()


def two_scales_spec(weights, loss_type: str = "test constant magnitude", epochs: int = 3) -> Spec:
    """Components ``big`` (scale 200) and ``small`` (scale 0.04) of ``loss_type``, batches of 4 items."""
    return Spec.from_dict({
        "losses": [{"name": "big", "type": loss_type, "options": {"scale": 200.0}},
                   {"name": "small", "type": loss_type, "options": {"scale": 0.04}}],
        "training_phases": [{"epochs": epochs, "sampling": {"type": "item", "batch_size": 4},
                             "loss": {"components": ["big", "small"], "weights": weights}}],
    })


def test_constant_magnitudes_contribute_equally_and_the_weights_are_recorded():
    """Constant |L_c|: the bias-corrected running mean is L_c from the first step, so
    w_c = 1 / L_c and each component adds exactly 1 to the total."""
    result = training.train_phase(nn.Linear(3, 2), two_scales_spec({"auto": "magnitude"}), 0,
                                  {"main": torch.randn(10, 3)}, {}, progress=False)
    history = result.history
    assert history["big"] == pytest.approx([200.0] * 3) and history["small"] == pytest.approx([0.04] * 3)
    assert history["weight:big"] == pytest.approx([1 / 200.0] * 3, rel=1e-6)
    assert history["weight:small"] == pytest.approx([1 / 0.04] * 3, rel=1e-6)
    assert history["total"] == pytest.approx([2.0] * 3, rel=1e-6)


def test_fixed_weights_record_no_weights():
    result = training.train_phase(nn.Linear(3, 2), two_scales_spec([1.0, 10.0]), 0, {"main": torch.randn(10, 3)},
                                  {}, progress=False)
    assert set(result.history) == {"big", "small", "total"}
    assert result.history["total"] == pytest.approx([200.4] * 3)


def test_running_magnitude_is_a_bias_corrected_moving_average():
    """β = 0.5, |L| = 1 then 3: m = 0.5 -> 0.5/(1-0.5) = 1; m = 0.25 + 1.5 = 1.75 -> 1.75/0.75."""
    balancing = MagnitudeBalancing(2, decay=0.5)
    assert balancing.step([torch.tensor(1.0), torch.tensor(-4.0)]) == pytest.approx([1.0, 0.25])
    assert balancing.step([torch.tensor(3.0), torch.tensor(-4.0)]) == pytest.approx([0.75 / 1.75, 0.25])
    assert loss_weighting(None, 2).step([torch.tensor(5.0)] * 2) == [1.0, 1.0]
    assert isinstance(loss_weighting([2.0, 3.0], 2), FixedWeights)


def test_auto_weights_are_seed_stable(digits):
    X, _ = digits
    spec = """
relations:
  - {name: d, level: global, type: pdist}
  - {name: e, level: batch, type: pdist}
losses:
  - {name: mds, type: relation, func: mse, keys: {rels: [d, e]}}
  - {name: norm, type: test constant magnitude, options: {scale: 3.0}}
training_phases:
  - {name: mds, epochs: 2, sampling: {type: item, batch_size: 50}, loss: {components: [mds, norm], weights: WEIGHTS}}
model: {type: fully_connected, options: {hidden_dims: [16]}}
"""
    for weights in ("auto", "{auto: magnitude}"):
        fits = [Routine(spec.replace("WEIGHTS", weights), seed=1, device="cpu", verbose=False).fit(X)
                for _ in range(2)]
        np.testing.assert_array_equal(fits[0].transform(X), fits[1].transform(X))
        assert fits[0].history_ == fits[1].history_
    assert fits[0].history_["mds"]["weight:norm"] == pytest.approx([1 / 3.0] * 2)


def test_auto_weights_round_trip_in_the_spec():
    spec = Spec.from_yaml("""
losses: [{name: a, type: position, func: mse, keys: {data: [t]}}, {name: b, type: position, func: mse, keys: {data: [u]}}]
training_phases: [{loss: {components: [a, b], weights: Auto}}]
""")
    assert spec.training_phases[0].weights == "auto"
    assert spec.to_dict()["training_phases"][0]["loss"]["weights"] == "auto"
    assert Spec.from_dict(spec.to_dict()).training_phases[0].weights == "auto"


@pytest.mark.parametrize(("weights", "message"), [
    ("half", "expected a list of numbers, 'auto' or {auto: true | gradient | magnitude, "
             "freeze_after: <epochs> | never}, got 'half'"),
    ("automatic", "expected a list of numbers, 'auto' or {auto: true | gradient | magnitude, "
                  "freeze_after: <epochs> | never}, got 'automatic'"),
])
def test_bad_weights_are_named_with_their_path(weights, message):
    with pytest.raises(SpecError) as info:
        two_scales_spec(weights)
    assert str(info.value) == f"training_phases[0].loss.weights: {message}"


# --------------------------------------------------------------------------- unchanged path
PINNED_SPEC = """
relations:
  - {name: d, level: global, type: pdist}
  - {name: e, level: batch, type: pdist}
  - {name: p, level: global, type: neighbor, options: {n_neighbors: 10}, transforms: [connect, symmetrize]}
  - {name: q, level: batch, type: edge_dist, transforms: [cauchy]}
losses:
  - {name: mds, type: relation, func: mse, keys: {rels: [d, e]}}
  - {name: umap, type: relation, func: cross_entropy, keys: {rels: [p, q]}}
training_phases:
  - {name: items, epochs: 2, sampling: {type: item, batch_size: 50}, loss: {components: [mds]}}
  - {name: edges, epochs: 2, sampling: {type: edge, rels: p, batch_size: 256},
     loss: {components: [umap, mds], weights: [1.0, 0.01]}}
model: {type: fully_connected, options: {hidden_dims: [16]}}
"""
# The result of PINNED_SPEC on the digits fixture (seed 0, one torch thread) as trained before
# `weights: auto` and `early_stopping` existed.
PINNED_HISTORY = {
    "items": {"mds": [7.641207853953044, 4.726080457369487], "total": [7.641207853953044, 4.726080457369487]},
    "edges": {"umap": [0.3761870376765728, 0.3289892505854368], "mds": [2.4542194604873657, 2.407296158373356],
              "total": [0.4007292315363884, 0.35306221060454845]},
}
PINNED_FIRST_ROWS = [[-1.8076748847961426, 2.7430832386016846], [-0.7679991722106934, -0.772357165813446],
                     [-0.510058581829071, -2.778287172317505]]
PINNED_ABS_SUM = 882.123779296875


def test_specs_without_the_new_options_train_as_before(digits):
    X, _ = digits
    routine = Routine(PINNED_SPEC, seed=0, device="cpu", verbose=False).fit(X)
    assert set(routine.history_) == set(PINNED_HISTORY)
    for phase, components in PINNED_HISTORY.items():
        assert set(routine.history_[phase]) == set(components)
        for name, values in components.items():
            assert routine.history_[phase][name] == pytest.approx(values, rel=1e-6, abs=0)
    Y = routine.transform(X)
    np.testing.assert_allclose(Y[:3], PINNED_FIRST_ROWS, rtol=1e-5)
    assert float(np.abs(Y).sum()) == pytest.approx(PINNED_ABS_SUM, rel=1e-6)


def test_frozen_weights_keep_the_weights_of_the_end_of_epoch_k():
    """|L| = 1, 1 (epoch 1, frozen after it), then 4: the weights stay 1 / 1."""
    balancing = MagnitudeBalancing(1, decay=0.5, freeze_after=1)
    balancing.step([torch.tensor(1.0)])
    assert balancing.step([torch.tensor(1.0)]) == pytest.approx([1.0])
    balancing.end_epoch(1)
    assert balancing.step([torch.tensor(4.0)]) == pytest.approx([1.0])
    running = MagnitudeBalancing(1, decay=0.5)
    for value in (1.0, 1.0):
        running.step([torch.tensor(value)])
    running.end_epoch(1)
    assert running.step([torch.tensor(4.0)])[0] < 0.5


def test_frozen_auto_weights_in_a_phase():
    spec = two_scales_spec({"auto": "Magnitude", "freeze after": 2})
    assert spec.training_phases[0].weights == {"auto": "magnitude", "freeze_after": 2}
    assert Spec.from_dict(spec.to_dict()).training_phases[0].weights == {"auto": "magnitude", "freeze_after": 2}
    result = training.train_phase(nn.Linear(3, 2), spec, 0, {"main": torch.randn(10, 3)}, {}, progress=False)
    assert result.history["weight:big"] == pytest.approx([1 / 200.0] * 3, rel=1e-6)


@pytest.mark.parametrize(("weights", "path", "message"), [
    ({"auto": False}, "weights.auto", "must be true or one of gradient, magnitude (balanced weights), got False"),
    ({"auto": "grad"}, "weights.auto", "must be true or one of gradient, magnitude (balanced weights), got 'grad'"),
    ({"auto": "gradient", "freeze_after": 1.5}, "weights.freeze_after",
     "expected a positive integer (epochs) or 'never', got 1.5"),
    ({"auto": "gradient", "freeze_after": "later"}, "weights.freeze_after",
     "expected a positive integer (epochs) or 'never', got 'later'"),
    ({"auto": True, "freeze_after": 0}, "weights.freeze_after", "expected a positive integer (epochs) or 'never', got 0"),
    ({"auto": True, "freeze": 2}, "weights.freeze", "unknown field (allowed: auto, freeze_after)"),
])
def test_bad_balanced_weights_are_named_with_their_path(weights, path, message):
    with pytest.raises(SpecError) as info:
        two_scales_spec(weights)
    assert str(info.value).startswith(f"training_phases[0].loss.{path}: {message}")


# --------------------------------------------------------------------------- gradient balancing
@register_loss_type("test linear pull", overwrite=True)
class LinearPull(LossType):
    """``scale * sum(Y)`` over the batch's embedding: ``∂L/∂Y = scale`` everywhere, so
    ``||∂L/∂Y|| = scale * sqrt(b * d)`` for ``b`` items in ``d`` dimensions."""

    def __init__(self, func=None, data=None, rels=None, methods=None, scale: float = 1.0):
        super().__init__(func, data, rels, methods)
        self.scale = scale

    def __call__(self, ctx):
        return self.scale * ctx.output("embed").sum()


def test_gradient_weights_are_the_inverse_gradient_norms_at_the_outputs():
    """Y (2 x 2) = [[1, 2], [2, 4]]: L_1 = 3 sum(Y) has gradient 3 everywhere, norm 6;
    L_2 = ||Y||^2 / 2 has gradient Y, norm 5; L_3 reads a second output Z = [3, 4] only
    through 2 (sum(Y) + sum(Z)): norm 2 sqrt(6); L_4 reads no output: weight 1 / floor.
    The first step's bias-corrected average is the measure itself."""
    Y = torch.tensor([[1.0, 2.0], [2.0, 4.0]], requires_grad=True)
    Z = torch.tensor([3.0, 4.0], requires_grad=True)
    other = torch.tensor(2.0, requires_grad=True)
    values = [3 * Y.sum(), 0.5 * (Y ** 2).sum(), 2 * (Y.sum() + Z.sum()), other * 1.0]
    balancing = GradientBalancing(4, decay=0.5)
    weights = balancing.step(values, [Y, Z])
    assert weights[:3] == pytest.approx([1 / 6, 1 / 5, 1 / (2 * 6 ** 0.5)])
    assert weights[3] == pytest.approx(1e12)
    # The graphs survive for the step's backward pass, and the next step averages the norms.
    sum(values).backward()
    values = [3 * Y.sum(), 0.5 * (Y ** 2).sum(), 2 * (Y.sum() + Z.sum()), other * 1.0]
    assert balancing.step([6 * Y.sum(), *values[1:]], [Y, Z])[0] == pytest.approx(0.75 / (0.25 * 6 + 0.5 * 12))


def pull_spec(weights) -> Spec:
    return two_scales_spec(weights, "test linear pull", epochs=2)


def test_gradient_weights_in_a_phase_equalise_the_pulls_on_the_embedding():
    """Batches of 4 items in 2 dimensions: ||∂L_c/∂Y|| = scale_c sqrt(8), so w_c =
    1 / (scale_c sqrt(8)); magnitude balancing gives different weights (|L_c| depends on Y)."""
    spec = pull_spec("auto")
    assert Spec.from_dict(spec.to_dict()).training_phases[0].weights == "auto"
    data = {"main": torch.randn(12, 3, generator=torch.Generator().manual_seed(0))}
    result = training.train_phase(nn.Linear(3, 2), spec, 0, data, {}, progress=False)
    assert result.history["weight:big"] == pytest.approx([1 / (200.0 * 8 ** 0.5)] * 2, rel=1e-6)
    assert result.history["weight:small"] == pytest.approx([1 / (0.04 * 8 ** 0.5)] * 2, rel=1e-6)
    magnitude = training.train_phase(nn.Linear(3, 2), pull_spec({"auto": "magnitude"}), 0, data, {}, progress=False)
    assert magnitude.history["weight:big"] != pytest.approx(result.history["weight:big"], rel=1e-3)


def test_spellings_of_the_balanced_weights():
    """``auto`` is gradient balancing frozen after epoch 1; ``freeze_after: never`` runs to the end."""
    for same in ({"auto": "Gradient"}, {"auto": True}, {"auto": "gradient", "freeze_after": 1}):
        assert pull_spec(same).training_phases[0].weights == "auto"
    weighting = loss_weighting("auto", 2)
    assert isinstance(weighting, GradientBalancing) and weighting.freeze_after == 1
    magnitude = pull_spec({"auto": "magnitude"}).training_phases[0].weights
    assert magnitude == {"auto": "magnitude", "freeze_after": 1}
    assert isinstance(loss_weighting(magnitude, 2), MagnitudeBalancing)
    running = pull_spec({"auto": True, "freeze after": "Never"})
    assert running.training_phases[0].weights == {"auto": "gradient", "freeze_after": "never"}
    assert Spec.from_dict(running.to_dict()).training_phases[0].weights == {"auto": "gradient", "freeze_after": "never"}
    weighting = loss_weighting(running.training_phases[0].weights, 2)
    assert isinstance(weighting, GradientBalancing) and weighting.freeze_after is None
    assert loss_weighting({"auto": "gradient", "freeze_after": 3}, 2).freeze_after == 3


@register_loss_type("test squared pull", overwrite=True)
class SquaredPull(LossType):
    """``||Y||^2 / 2``: its gradient at the outputs is ``Y``, which changes as the model trains."""

    def __call__(self, ctx):
        return 0.5 * ctx.output("embed").pow(2).sum()


def test_auto_freezes_the_gradient_weights_after_the_first_epoch():
    def spec(weights) -> Spec:
        return Spec.from_dict({
            "losses": [{"name": "pull", "type": "test linear pull"}, {"name": "shrink", "type": "test squared pull"}],
            "training_phases": [{"epochs": 3, "sampling": {"type": "item", "batch_size": 4},
                                 "optimizer": {"type": "sgd", "options": {"lr": 0.05}},
                                 "loss": {"components": ["pull", "shrink"], "weights": weights}}],
        })
    data = {"main": torch.randn(12, 3, generator=torch.Generator().manual_seed(0))}
    histories = {}
    for weights in ("auto", {"auto": "gradient", "freeze_after": "never"}):
        torch.manual_seed(0)
        histories[str(weights)] = training.train_phase(nn.Linear(3, 2), spec(weights), 0, data, {},
                                                       progress=False).history["weight:shrink"]
    frozen, running = histories["auto"], histories[str({"auto": "gradient", "freeze_after": "never"})]
    assert frozen[1] == frozen[2] and frozen[0] == pytest.approx(running[0])
    assert running[2] != pytest.approx(frozen[2], rel=1e-3)
