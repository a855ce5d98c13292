"""The training loop: one phase = epochs of batches minimising a weighted loss sum.

For phase ``p`` with loss components ``L_1..L_m`` and weights ``w_1..w_m`` each step
minimises ``L = sum_c w_c L_c(batch)`` over the parameters of the phase's model parts.
Each component's value is averaged per epoch into the loss history. A non-finite loss
stops training with a :class:`~paradime_core.errors.TrainingError` naming the phase and
epoch.

The weights are fixed, or with ``weights: auto`` balanced by the running norm of each
component's gradient at the batch's model outputs and fixed after the first epoch
(``{auto: magnitude, freeze_after: k | never}`` and the other forms:
:mod:`~paradime_core.training.balancing`; the history then also holds the weights used,
``weight:<component>``).

Phase options: ``lr_schedule`` (per-epoch factor, see :func:`learning_rate_schedule`),
``ema`` (weight averaging): with decay ``a`` the trainer keeps ``θ̄ ← a θ̄ + (1 - a) θ``
after every step, and the phase ends with the averaged parameters ``θ̄`` (Polyak
averaging: a smoother map, which narrows the gap between training and held-out items),
and ``early_stopping`` (a held-out split of the items, scored after every epoch; see
:mod:`~paradime_core.training.early_stopping`; the history's ``held_out`` holds the scores).
"""

from __future__ import annotations

import contextlib
import copy
import inspect
import logging
import math
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import torch

from paradime_core.batch import Batch, BatchContext
from paradime_core.errors import SpecError, TrainingError
from paradime_core.models.layers import apply_in_blocks, parameters_of
from paradime_core.relation_data import RelationValue
from paradime_core.spec import PhaseSpec, Spec, blocks
from paradime_core.training.balancing import (
    WEIGHT_KEY_PREFIX,
    FixedWeights,
    loss_weighting,
    weighted_total,
)
from paradime_core.training.early_stopping import EarlyStopping, HeldOutMonitor, held_out_split
from paradime_core.training.optimizers import with_fast_defaults

_log = logging.getLogger(__name__)


@dataclass
class PhaseResult:
    """What a phase leaves behind: per-component epoch means and the optimizer state.

    With early stopping, ``best_epoch`` is the (1-based) epoch whose parameters the phase
    ended with, ``stopped_early`` whether it stopped before its last epoch, and
    ``history["held_out"]`` the held-out score after every epoch.
    """

    name: str
    history: dict[str, list[float]] = field(default_factory=dict)
    epochs_run: int = 0
    optimizer_state: dict[str, Any] | None = None
    best_epoch: int | None = None
    stopped_early: bool = False

    @property
    def held_out(self) -> list[float]:
        """Held-out score after every epoch (empty without early stopping)."""
        return self.history.get("held_out", [])


def phase_label(phase: PhaseSpec, index: int) -> str:
    return phase.name or f"phase_{index}"


def build_batch_relations(spec: Spec) -> dict[str, blocks.BuiltRelation]:
    return {
        r.name: blocks.build_relation(r, f"relations[{i}]")
        for i, r in enumerate(spec.relations)
        if r.level == "batch"
    }


def trainable_parameters(model: torch.nn.Module, parts: list[str] | None, where: str) -> list[torch.nn.Parameter]:
    """All trainable parameters (parts None) or those of the named parts of the model."""
    try:
        params = [p for p in parameters_of(model, parts) if p.requires_grad]
    except ValueError as exc:
        raise SpecError(f"{where}.params", str(exc)) from exc
    if not params:
        raise SpecError(f"{where}.params", "selects no trainable parameters")
    return params


def frozen_front(model: torch.nn.Module) -> int:
    """Number of leading ``model.trunk`` modules without parameters (e.g. a frozen PCA layer).

    Their output does not change during training, so the trainer computes it once per phase
    instead of once per batch.
    """
    trunk = getattr(model, "trunk", None)
    if not isinstance(trunk, torch.nn.Sequential):
        return 0
    count = 0
    for module in trunk:
        stochastic = getattr(module, "stochastic", False) or isinstance(module, torch.nn.Dropout)
        if stochastic or any(True for _ in module.parameters()):
            break
        count += 1
    return count


@contextlib.contextmanager
def precomputed_front(model: torch.nn.Module, data: Mapping[str, torch.Tensor], block: int = 65536):
    """Yield ``{"main": features}`` with the frozen front of ``model.trunk`` applied once, and the
    model's trunk temporarily shortened to the rest (restored afterwards)."""
    count = frozen_front(model)
    if count == 0 or getattr(model, "input_key", None) == "index":
        yield {}
        return
    trunk = model.trunk
    front = torch.nn.Sequential(*list(trunk)[:count])
    features = apply_in_blocks(front, data["main"], block)
    model.trunk = torch.nn.Sequential(*list(trunk)[count:])
    try:
        yield {"main": features}
    finally:
        model.trunk = trunk


class ParameterAverage:
    """Exponential moving average ``θ̄ ← a θ̄ + (1 - a) θ`` of ``params`` (decay ``a``; None: off)."""

    def __init__(self, params: list[torch.nn.Parameter], decay: float | None):
        self.params = params
        self.decay = None if decay is None else float(decay)
        self.average = [p.detach().clone() for p in params] if self.decay is not None else []

    @torch.no_grad()
    def update(self) -> None:
        if self.decay is not None:
            torch._foreach_lerp_(self.average, [p.detach() for p in self.params], 1.0 - self.decay)

    @torch.no_grad()
    def apply(self) -> None:
        """Copy the averages into the parameters."""
        if self.decay is None:
            return
        for param, average in zip(self.params, self.average, strict=True):
            param.copy_(average)




def learning_rate_schedule(optimizer: torch.optim.Optimizer, kind: str, epochs: int, where: str):
    """Per-epoch learning-rate factor: constant 1; linear ``1 - e/E``; cosine ``(1 + cos(pi e/E))/2``."""
    if kind in (None, "constant"):
        return None
    if kind == "linear":
        return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda e: max(1.0 - e / epochs, 0.02))
    if kind == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=epochs)
    raise SpecError(f"{where}.options.lr_schedule", f"'{kind}' is not one of constant, linear, cosine")


SPLIT_SEED_OFFSET = 7919
"""Offset of a phase's held-out split seed from its sampling seed (two independent streams)."""
DEFAULT_STEPS = 2000
"""Optimizer steps a phase without ``epochs`` aims at (see :func:`default_epochs`)."""
MIN_DEFAULT_EPOCHS = 10


def default_epochs(batches_per_epoch: int) -> int:
    """Epochs of a phase that names none: ``max(10, ceil(2000 / batches per epoch))``.

    The number of optimizer steps, not of epochs, decides whether a neural network's
    embedding has converged; a fixed epoch count gives small data too few steps (digits,
    1,797 items in batches of 500: four steps an epoch). So a phase without ``epochs``
    runs about 2,000 steps (at least 10 epochs), from the sampler's batches per epoch.
    """
    return max(MIN_DEFAULT_EPOCHS, math.ceil(DEFAULT_STEPS / max(int(batches_per_epoch), 1)))


def phase_epochs(phase: PhaseSpec, sampler: Any, n_items: int, relations: Mapping[str, RelationValue]) -> int:
    """The phase's ``epochs``, or :func:`default_epochs` of its sampler's batches per epoch."""
    if phase.epochs is not None:
        return phase.epochs
    count = getattr(sampler, "batches_in_epoch", None)
    batches = count(n_items, relations) if count is not None else sum(
        1 for _ in sampler.epoch(n_items, relations, torch.Generator().manual_seed(0)))
    return default_epochs(batches)


def needs_closure(optimizer: torch.optim.Optimizer) -> bool:
    """Whether ``optimizer.step`` requires a closure re-evaluating the loss (L-BFGS does)."""
    closure = inspect.signature(optimizer.step).parameters.get("closure")
    return closure is not None and closure.default is inspect.Parameter.empty


def train_phase(
    model: torch.nn.Module,
    spec: Spec,
    index: int,
    data: Mapping[str, torch.Tensor],
    relations: Mapping[str, RelationValue],
    *,
    seed: int = 0,
    device: torch.device | None = None,
    progress: bool = True,
) -> PhaseResult:
    """Run training phase ``index`` of ``spec`` on ``model`` (in place) and return its result."""
    phase = spec.training_phases[index]
    where = f"training_phases[{index}]"
    label = phase_label(phase, index)
    device = device or next(model.parameters()).device
    n_items = int(next(iter(data.values())).shape[0])

    losses = []
    for comp in phase.components:
        loss_index = next(i for i, loss in enumerate(spec.losses) if loss.name == comp)
        losses.append((comp, blocks.build_loss(spec.losses[loss_index], spec, f"losses[{loss_index}]")))
    weighting = loss_weighting(phase.weights, len(losses))
    sampler = blocks.build_sampler(phase.sampling, spec, f"{where}.sampling")
    stopping = EarlyStopping.from_option(phase.options.get("early_stopping"))
    split_seed = int(seed) * 1009 + index + SPLIT_SEED_OFFSET
    training, held_out = (None, None) if stopping is None else held_out_split(
        sampler, phase.sampling.options, n_items, relations, stopping, split_seed, f"{where}.options.early_stopping")
    train_items, train_relations = (n_items, relations) if training is None else (training.n_items, training.relations)

    def training_batches(generator: torch.Generator) -> Iterator[Batch]:
        return sampler.epoch(n_items, relations, generator) if training is None else training.epoch(generator)
    batch_relations = build_batch_relations(spec)
    optimizer_cls = blocks.check_optimizer(phase.optimizer, f"{where}.optimizer", trial=True)
    params = trainable_parameters(model, phase.params, where)
    optimizer = optimizer_cls(params, **with_fast_defaults(optimizer_cls, phase.optimizer.options, params))
    n_epochs = phase_epochs(phase, sampler, train_items, train_relations)
    schedule = learning_rate_schedule(optimizer, phase.options.get("lr_schedule", "constant"), n_epochs, where)
    # Freeze what this phase does not train (restored at the end).
    trained = {id(p) for p in params}
    frozen = [p for p in model.parameters() if p.requires_grad and id(p) not in trained]
    for p in frozen:
        p.requires_grad_(False)

    averaged = ParameterAverage(params, phase.options.get("ema"))
    generator = torch.Generator().manual_seed(int(seed) * 1009 + index)
    history: dict[str, list[float]] = {name: [] for name, _ in losses}
    history["total"] = []
    if weighting.recorded:
        history.update({f"{WEIGHT_KEY_PREFIX}{name}": [] for name, _ in losses})
    result = PhaseResult(name=label, history=history)
    monitor = None
    if stopping is not None:
        monitor = HeldOutMonitor(
            stopping, held_out, seed=split_seed,
            tensors=[*params, *averaged.average, *model.buffers()],
            fixed_weights=weighting.values if isinstance(weighting, FixedWeights) else None)
        monitor.check_batches(f"{where}.options.early_stopping")
        history["held_out"] = monitor.scores

    epochs = range(n_epochs)
    report_interval = phase.options.get("report_interval")
    closure_step = needs_closure(optimizer)
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=n_epochs, desc=f"{label}", unit="epoch", leave=False)
    model.train()
    front = precomputed_front(model, data)
    model_inputs = front.__enter__()
    try:

        def batch_context(batch: Batch) -> BatchContext:
            return BatchContext(batch, model, data, relations, batch_relations, device, model_inputs)

        def component_values(batch: Batch) -> list[torch.Tensor]:
            ctx = batch_context(batch)
            return [loss(ctx) for _, loss in losses]

        for epoch in epochs:
            sums = {name: 0.0 for name in history}
            n_batches = 0
            for batch in training_batches(generator):
                ctx = batch_context(batch)
                values = [loss(ctx) for _, loss in losses]
                weights = weighting.step(values, ctx.computed_outputs())
                total = weighted_total(values, weights, device)
                parts = {name: value for (name, _), value in zip(losses, values, strict=True)}
                if not torch.isfinite(total):
                    bad = [n for n, v in parts.items() if not torch.isfinite(v)]
                    raise TrainingError(
                        f"{where} ('{label}'), epoch {epoch + 1}: loss is {total.item()} "
                        f"(non-finite components: {', '.join(bad) or 'weighted sum'}); "
                        "try a smaller learning rate or check the data for extreme values"
                    )
                optimizer.zero_grad(set_to_none=True)
                total.backward()
                if closure_step:  # L-BFGS re-evaluates the loss of this batch during its line search

                    def closure(batch=batch, weights=weights) -> torch.Tensor:
                        optimizer.zero_grad(set_to_none=True)
                        again = weighted_total(component_values(batch), weights, device)
                        again.backward()
                        return again

                    optimizer.step(closure)
                else:
                    optimizer.step()
                averaged.update()
                for name, value in parts.items():
                    sums[name] += float(value.detach())
                sums["total"] += float(total.detach())
                if weighting.recorded:
                    for (name, _), weight in zip(losses, weights, strict=True):
                        sums[f"{WEIGHT_KEY_PREFIX}{name}"] += weight
                n_batches += 1
            for name in history:
                if name != "held_out":
                    history[name].append(sums[name] / max(n_batches, 1))
            result.epochs_run = epoch + 1
            weighting.end_epoch(epoch + 1)
            if monitor is not None and monitor.after_epoch(model, component_values, epoch):
                result.stopped_early = epoch + 1 < n_epochs
                if result.stopped_early:
                    _log.info("%s: stopped after epoch %d: the held-out loss did not improve by more than %g "
                              "for %d epochs; parameters of epoch %s restored", label, epoch + 1,
                              stopping.min_delta, stopping.patience, monitor.best_epoch_number)
                break
            if report_interval and (epoch + 1) % report_interval == 0:
                _log.info("%s: epoch %d/%d, loss %.6g", label, epoch + 1, n_epochs, history["total"][-1])
            if schedule is not None:
                schedule.step()
            if bar is not None:
                bar.update(1)
                bar.set_postfix(loss=f"{history['total'][-1]:.4g}")
        if monitor is not None:
            monitor.restore_best()
            result.best_epoch = monitor.best_epoch_number
        averaged.apply()
    finally:
        front.__exit__(None, None, None)
        if bar is not None:
            bar.close()
        for p in frozen:
            p.requires_grad_(True)
        model.eval()
    result.optimizer_state = copy.deepcopy(optimizer.state_dict())
    return result
