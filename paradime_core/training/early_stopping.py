"""Early stopping of a phase on a held-out split of the training items.

With the phase option ``early_stopping: {validation_fraction: f, patience: p, min_delta: d}``
a seeded random ``f`` of the items is held out: the phase's sampler works on the remaining
items as if they were the whole dataset (each global relation it reads restricted to them),
so no training batch holds a held-out item, not even as an edge's target or a negative.
After every epoch the phase's loss is evaluated (eval mode, no gradient) on one epoch of the
same sampler over the held-out items alone: item batches of held-out items, edges between
held-out items with negatives among them, triplets among them. The same held-out batches are
drawn after every epoch, so the scores differ only by the parameters.

The score is the weighted loss ``sum_c w_c L_c`` with the phase's fixed weights; with
``weights: auto`` it is ``sum_c L_c / |L_c^(1)|``, each component divided by its held-out
value after the first epoch (balanced weights change during training; fixed reference
scales keep the scores comparable). An epoch improves when its score is below the best so
far by more than ``min_delta``; after ``patience`` epochs without improvement the phase
stops. Either way the phase ends with the parameters (and averaged parameters, and buffers)
of its best epoch.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from paradime_core.batch import Batch
from paradime_core.errors import DataError, SpecError
from paradime_core.relation_data import RelationValue, restrict

SCALE_FLOOR = 1e-12
"""Smallest reference scale of a component's held-out loss under ``weights: auto``."""


@dataclass(frozen=True)
class EarlyStopping:
    """Settings of the ``early_stopping`` phase option.

    Parameters
    ----------
    validation_fraction : float
        Share of the items held out, in (0, 1).
    patience : int
        Epochs without improvement after which the phase stops (>= 1).
    min_delta : float
        Least decrease of the held-out score that counts as an improvement (>= 0).
    """

    validation_fraction: float = 0.1
    patience: int = 10
    min_delta: float = 0.0

    @classmethod
    def from_option(cls, value: bool | Mapping[str, Any] | None) -> EarlyStopping | None:
        """The settings of a validated option value (``true``: the defaults; ``false``/absent: off)."""
        if value is None or value is False:
            return None
        if value is True:
            return cls()
        return cls(**dict(value))


class ItemSubset:
    """A sampler's epochs over a subset of the items, as if the subset were the whole dataset.

    The sampler sees ``len(items)`` items and the global relations it reads (``relation_names``)
    restricted to the subset; the batches it yields are mapped back to global item indices.
    """

    def __init__(self, sampler: Any, items: np.ndarray, relations: Mapping[str, RelationValue],
                 relation_names: Sequence[str]):
        self.sampler = sampler
        self.items = torch.as_tensor(np.sort(np.asarray(items, dtype=np.int64)))
        self.n_items = int(self.items.shape[0])
        self.relations = dict(relations)
        for name in relation_names:
            if name in relations:
                self.relations[name] = restrict(relations[name], self.items.numpy())

    def epoch(self, generator: torch.Generator) -> Iterator[Batch]:
        for batch in self.sampler.epoch(self.n_items, self.relations, generator):
            batch.items = torch.index_select(self.items, 0, batch.items)
            yield batch


def split_items(n_items: int, fraction: float, seed: int, where: str) -> tuple[np.ndarray, np.ndarray]:
    """A seeded random split into (training, held-out) item indices, each sorted.

    ``round(fraction * n_items)`` items (at least one) are held out; at least one remains.
    """
    n_held = max(1, round(fraction * n_items))
    if n_held >= n_items:
        raise SpecError(f"{where}.validation_fraction",
                        f"holds out all {n_items} items; use a smaller fraction or more items")
    order = torch.randperm(n_items, generator=torch.Generator().manual_seed(seed)).numpy()
    return np.sort(order[n_held:]), np.sort(order[:n_held])


def held_out_split(sampler: Any, sampling_options: Mapping[str, Any], n_items: int,
                   relations: Mapping[str, RelationValue], settings: EarlyStopping, seed: int,
                   where: str) -> tuple[ItemSubset, ItemSubset]:
    """The sampler over the training items and over the held-out items (see :class:`ItemSubset`).

    The relations restricted are those the sampler's ``relation_options`` name.
    """
    kept, held = split_items(n_items, settings.validation_fraction, seed, where)
    names = [sampling_options[o] for o in getattr(sampler, "relation_options", ())
             if isinstance(sampling_options.get(o), str)]
    return ItemSubset(sampler, kept, relations, names), ItemSubset(sampler, held, relations, names)


@dataclass
class HeldOutMonitor:
    """Scores the held-out items after each epoch and keeps the best epoch's tensors."""

    settings: EarlyStopping
    held_out: ItemSubset
    seed: int
    tensors: list[torch.Tensor]  # what "the parameters" are: restored from the best epoch
    fixed_weights: list[float] | None  # None: weights: auto (reference scales from the first score)
    scores: list[float] = field(default_factory=list)
    best_epoch: int | None = None
    best_score: float = math.inf
    stale_epochs: int = 0
    _reference: list[float] | None = None
    _best: list[torch.Tensor] = field(default_factory=list)

    @property
    def best_epoch_number(self) -> int | None:
        """The best epoch counted from 1 (None before a finite score)."""
        return None if self.best_epoch is None else self.best_epoch + 1

    def check_batches(self, where: str) -> None:
        """Fail early, naming the option, when the held-out items yield no batch."""
        try:
            has_batch = next(iter(self.held_out.epoch(torch.Generator().manual_seed(self.seed))), None) is not None
        except DataError as exc:
            raise SpecError(f"{where}.validation_fraction",
                            f"the {self.held_out.n_items} held-out items give no batch ({exc})") from exc
        if not has_batch:
            raise SpecError(f"{where}.validation_fraction",
                            f"the {self.held_out.n_items} held-out items give no batch")

    @torch.no_grad()
    def score(self, component_values: Callable[[Batch], list[torch.Tensor]]) -> float:
        """The held-out score of the current parameters (see the module docstring)."""
        generator = torch.Generator().manual_seed(self.seed)
        sums: list[float] | None = None
        n_batches = 0
        for batch in self.held_out.epoch(generator):
            values = [float(v) for v in component_values(batch)]
            sums = values if sums is None else [s + v for s, v in zip(sums, values, strict=True)]
            n_batches += 1
        means = [s / n_batches for s in sums or []]
        weights = self.fixed_weights
        if weights is None:
            if self._reference is None:
                self._reference = [max(abs(m), SCALE_FLOOR) for m in means]
            weights = [1.0 / r for r in self._reference]
        return sum(w * m for w, m in zip(weights, means, strict=True))

    def after_epoch(self, model: torch.nn.Module, component_values: Callable[[Batch], list[torch.Tensor]],
                    epoch: int) -> bool:
        """Score epoch ``epoch`` (0-based) in eval mode; True when the phase should stop."""
        model.eval()
        try:
            score = self.score(component_values)
        finally:
            model.train()
        return self.update(epoch, score)

    def update(self, epoch: int, score: float) -> bool:
        """Record epoch ``epoch``'s score (0-based); True when the phase should stop."""
        self.scores.append(score)
        if score < self.best_score - self.settings.min_delta:
            self.best_score, self.best_epoch, self.stale_epochs = score, epoch, 0
            self._best = [t.detach().clone() for t in self.tensors]
        else:
            self.stale_epochs += 1
        return self.stale_epochs >= self.settings.patience

    @torch.no_grad()
    def restore_best(self) -> None:
        """Copy the best epoch's tensors back (nothing when no epoch was scored)."""
        for tensor, best in zip(self.tensors, self._best, strict=False):
            tensor.copy_(best)
