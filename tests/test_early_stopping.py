"""Early stopping on a held-out split of the items: the split, the stop, the restored
parameters, the held-out batches per sampler, and the option's errors."""

from __future__ import annotations

import logging

import numpy as np
import pytest
import torch
from test_routine import MDS_SPEC as ROUTINE_MDS_SPEC

from paradime_core import Routine, Spec, SpecError
from paradime_core.losses.loss_types import LossType
from paradime_core.spec.registry import register_loss_type
from paradime_core.training.early_stopping import (
    EarlyStopping,
    HeldOutMonitor,
    ItemSubset,
    split_items,
)

MDS_SPEC = (ROUTINE_MDS_SPEC.replace("epochs: 4", "epochs: EPOCHS")
            .replace("lr: 0.01}", "lr: LR}\n    options: {early_stopping: STOPPING}")
            .replace("model: {type: fully_connected, options: {hidden_dims: [16]}}", "model: MODEL"))


def mds_spec(epochs: int = 4, lr: float = 0.01, stopping: str = "{validation_fraction: 0.2, patience: 3}",
             model: str = "{type: fully_connected, options: {hidden_dims: [16]}}") -> str:
    return (MDS_SPEC.replace("EPOCHS", str(epochs)).replace("LR", str(lr)).replace("STOPPING", stopping)
            .replace("MODEL", model))


def test_monitor_stops_after_patience_epochs_without_improvement_and_restores_the_best():
    """Scores 3, 2, 1, 1.5, 2 with patience 2: epochs 4 and 5 do not improve, stop after 5;
    the tensor is restored to its value after epoch 3 (0-based 2)."""
    weight = torch.zeros(2)
    monitor = HeldOutMonitor(EarlyStopping(0.1, patience=2), held_out=None, seed=0, tensors=[weight],
                             fixed_weights=[1.0])
    stops = []
    for epoch, score in enumerate([3.0, 2.0, 1.0, 1.5, 2.0]):
        weight.fill_(float(epoch))
        stops.append(monitor.update(epoch, score))
    assert stops == [False, False, False, False, True]
    assert monitor.best_epoch_number == 3 and monitor.scores == [3.0, 2.0, 1.0, 1.5, 2.0]
    monitor.restore_best()
    assert weight.tolist() == [2.0, 2.0]


def test_min_delta_is_the_least_improvement_that_counts():
    monitor = HeldOutMonitor(EarlyStopping(0.1, patience=1, min_delta=0.5), None, 0, [], [1.0])
    assert not monitor.update(0, 3.0)
    assert monitor.update(1, 2.6)  # better, but by less than 0.5
    assert monitor.best_epoch_number == 1


def test_a_phase_whose_held_out_loss_cannot_improve_stops_and_restores_the_best_epoch(digits, caplog):
    """A direct model: held-out items are never in a training batch, so their coordinates and
    the held-out loss stay as they were after epoch 1; with patience 3 the phase stops after
    epoch 4 and ends with epoch 1's coordinates."""
    X, _ = digits
    spec = mds_spec(epochs=50, lr=0.1, model="{type: direct}")
    after_epochs = []
    from torch.optim.optimizer import register_optimizer_step_post_hook

    routine = Routine(spec, seed=0, device="cpu", verbose=False)
    hook = register_optimizer_step_post_hook(
        lambda opt, *_: after_epochs.append(opt.param_groups[0]["params"][0].detach().clone()))
    try:
        with caplog.at_level(logging.INFO, logger="paradime_core.training.loop"):
            routine.fit(X)
    finally:
        hook.remove()
    history = routine.history_["mds"]
    assert len(history["mds"]) == 4 and len(history["held_out"]) == 4
    assert history["held_out"] == [history["held_out"][0]] * 4
    assert history["mds"][-1] < history["mds"][0]  # the training items kept moving
    steps_per_epoch = len(after_epochs) // 4  # 240 training items in batches of 50
    assert steps_per_epoch == 5
    coordinates = routine.model_.state_dict()
    (value,) = [v for v in coordinates.values() if v.shape[0] == 300]
    torch.testing.assert_close(value, after_epochs[steps_per_epoch - 1], rtol=0, atol=0)
    assert not torch.equal(value, after_epochs[-1])
    stopped = [r.getMessage() for r in caplog.records if "stopped after epoch" in r.getMessage()]
    assert stopped == ["mds: stopped after epoch 4: the held-out loss did not improve by more than 0 "
                       "for 3 epochs; parameters of epoch 1 restored"]


def test_a_phase_whose_held_out_loss_keeps_falling_runs_all_its_epochs(digits):
    X, _ = digits
    spec = mds_spec(epochs=6, lr=0.003, stopping="{validation_fraction: 0.2, patience: 1}")
    fitted = Routine(spec, seed=0, device="cpu", verbose=False).fit(X)
    held_out = fitted.history_["mds"]["held_out"]
    assert len(held_out) == 6 and len(fitted.history_["mds"]["mds"]) == 6
    assert all(b < a for a, b in zip(held_out, held_out[1:], strict=False))


def test_phase_result_records_epochs_the_best_epoch_and_the_held_out_scores(digits):
    from paradime_core.training import loop as training

    X, _ = digits
    spec = Spec.from_yaml(mds_spec(epochs=4, lr=0.003))
    model = torch.nn.Sequential(torch.nn.Linear(64, 16), torch.nn.Softplus(), torch.nn.Linear(16, 2))
    d = np.sqrt(((X[:, None] - X[None]) ** 2).sum(-1))
    result = training.train_phase(model, spec, 0, {"main": torch.as_tensor(X)}, {"d": d}, progress=False)
    assert result.epochs_run == 4 and result.best_epoch == 4 and not result.stopped_early
    assert len(result.held_out) == 4 and result.held_out == result.history["held_out"]
    assert all(b < a for a, b in zip(result.held_out, result.held_out[1:], strict=False))


# --------------------------------------------------------------------------- held-out batches
SEEN: dict[bool, list[np.ndarray]] = {True: [], False: []}


@register_loss_type("test_recording_loss", overwrite=True)
class RecordingLoss(LossType):
    """Records each batch's items, split by whether gradients are on (training) or off (held out)."""

    def __call__(self, ctx):
        SEEN[torch.is_grad_enabled()].append(ctx.items_numpy.copy())
        return ctx.output("embed").pow(2).mean()


@pytest.mark.parametrize("sampling", [
    "{type: item, batch_size: 40}",
    "{type: edge, rels: p, batch_size: 64, neg_rate: 3}",
    "{type: triplet, rels: same, batch_size: 30}",
])
def test_no_training_batch_holds_a_held_out_item(digits, sampling):
    X, y = digits
    spec = f"""
relations:
  - {{name: p, level: global, type: neighbor, options: {{n_neighbors: 10}}, transforms: [connect, symmetrize]}}
  - {{name: same, level: global, type: pairwise_eq, data: labels}}
losses: [{{name: rec, type: test recording loss}}]
training_phases:
  - {{epochs: 2, sampling: {sampling}, loss: {{components: rec}}, options: {{early_stopping: {{validation_fraction: 0.3}}}}}}
model: {{type: fully_connected, options: {{hidden_dims: [8]}}}}
"""
    SEEN[True].clear()
    SEEN[False].clear()
    Routine(spec, seed=2, device="cpu", verbose=False).fit({"main": X, "labels": y})
    trained = np.unique(np.concatenate(SEEN[True]))
    held = np.unique(np.concatenate(SEEN[False]))
    assert np.intersect1d(trained, held).size == 0
    assert held.size <= 90 and trained.size <= 210
    assert held.size > 0 and trained.size > 0


def test_split_is_seeded_and_disjoint():
    kept, held = split_items(100, 0.1, seed=5, where="x")
    again = split_items(100, 0.1, seed=5, where="x")
    assert held.size == 10 and kept.size == 90
    np.testing.assert_array_equal(held, again[1])
    assert np.union1d(kept, held).tolist() == list(range(100))
    assert not np.array_equal(held, split_items(100, 0.1, seed=6, where="x")[1])


def test_item_subset_maps_batches_back_to_global_items():
    from paradime_core.sampling import ItemSampler

    subset = ItemSubset(ItemSampler(batch_size=2, shuffle=False), np.array([7, 3, 9]), {}, [])
    batches = [b.items.tolist() for b in subset.epoch(torch.Generator().manual_seed(0))]
    assert batches == [[3, 7], [9]]


# --------------------------------------------------------------------------- spec errors
@pytest.mark.parametrize(("stopping", "path", "message"), [
    ("{validation_fraction: 1.5}", "early_stopping.validation_fraction", "must lie in (0, 1)"),
    ("{validation_fraction: 0}", "early_stopping.validation_fraction", "must lie in (0, 1)"),
    ("{patience: 0}", "early_stopping.patience", "expected a positive integer"),
    ("{patience: 2.5}", "early_stopping.patience", "expected a positive integer"),
    ("{min_delta: -1}", "early_stopping.min_delta", "must be >= 0"),
    ("{min_delta: .nan}", "early_stopping.min_delta", "expected a number"),
    ("{patients: 3}", "early_stopping.patients", "unknown field (allowed: min_delta, patience, "
                                                 "validation_fraction); did you mean 'patience'?"),
    ("often", "early_stopping", "expected true, false or a mapping"),
])
def test_bad_early_stopping_options_are_named_with_their_path(stopping, path, message):
    with pytest.raises(SpecError) as info:
        Spec.from_yaml(mds_spec(stopping=stopping))
    assert str(info.value).startswith(f"training_phases[0].options.{path}: ")
    assert message in str(info.value)


def test_early_stopping_options_are_canonical_and_round_trip():
    spec = Spec.from_yaml(mds_spec(stopping="{validation fraction: 0.25, patience: 4}"))
    options = spec.training_phases[0].options["early_stopping"]
    assert options == {"validation_fraction": 0.25, "patience": 4}
    assert Spec.from_dict(spec.to_dict()).training_phases[0].options == {"early_stopping": options}
    assert EarlyStopping.from_option(options) == EarlyStopping(0.25, 4, 0.0)
    assert EarlyStopping.from_option(True) == EarlyStopping() and EarlyStopping.from_option(False) is None


def test_a_held_out_split_of_all_items_is_refused(digits):
    X, _ = digits
    with pytest.raises(SpecError, match=r"training_phases\[0\]\.options\.early_stopping\.validation_fraction: "
                                        r"holds out all 3 items"):
        Routine(mds_spec(stopping="{validation_fraction: 0.9}"), seed=0, device="cpu", verbose=False).fit(X[:3])


def test_with_auto_weights_the_held_out_score_is_relative_to_the_first_epoch(digits):
    """Balanced weights move during training; the score divides each component by its own
    held-out value after epoch 1, so the first score is 1 per component."""
    X, _ = digits
    spec = mds_spec(epochs=3, lr=0.003).replace("loss: {components: mds}", "loss: {components: mds, weights: auto}")
    history = Routine(spec, seed=0, device="cpu", verbose=False).fit(X).history_["mds"]
    assert history["held_out"][0] == pytest.approx(1.0)
    assert history["held_out"][-1] < 1.0 and len(history["weight:mds"]) == 3
