"""What a sampler yields and what a loss sees.

A :class:`Batch` names the items of one training step, and, for edge sampling, the
sampled edges between them (positions into ``items``); for triplet sampling, the
triplets. A :class:`BatchContext` wraps a batch with the model, the dataset tensors and
the relations, and memoises the model outputs so that several loss components of a
compound loss share one forward pass per (method, data key).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from paradime_core.errors import SpecError
from paradime_core.relation_data import RelationValue, edge_values, submatrix


@dataclass
class Batch:
    """One training step's items (unique global indices) and optional edges/triplets."""

    items: torch.Tensor  # (b,) int64, unique global item indices
    edge_rows: torch.Tensor | None = None  # (m,) positions into items
    edge_cols: torch.Tensor | None = None  # (m,) positions into items
    edge_targets: torch.Tensor | None = None  # (m,) 1.0 for sampled positive edges, 0.0 for negatives
    edge_relation: str | None = None  # name of the global relation the edges were sampled from
    triplets: torch.Tensor | None = None  # (t, 3) positions into items: anchor, positive, negative
    # Optional structure of the negatives (``negatives="shared"``): a (G, r) tensor of positions
    # into items, set when the B positives split into G equal groups; positive ``b``'s r
    # negatives are row ``b // (B / G)``, so
    # ``edge_cols[B + b*r + k] == negative_groups[b // (B / G), k]``. Edge relations use it to
    # compute the B*r negative distances by broadcasting instead of gathering B*r row pairs.
    negative_groups: torch.Tensor | None = None

    @property
    def has_edges(self) -> bool:
        return self.edge_rows is not None

    def __len__(self) -> int:
        return int(self.items.shape[0])


def batch_triplets(batch: Batch) -> torch.Tensor | None:
    """The batch's ``(anchor, positive, negative)`` positions: its ``triplets``, or for an edge
    batch laid out as ``[B positives, B*r negatives]`` (negatives ``b*r .. b*r + r - 1`` of
    positive ``b``), each positive edge ``(a, p)`` with each of its negatives ``(a, n)``."""
    if batch.triplets is not None or not batch.has_edges or batch.edge_targets is None:
        return batch.triplets
    n_edges = batch.edge_rows.shape[0]
    b = int(batch.edge_targets[: n_edges].count_nonzero())
    if b == 0 or n_edges % b != 0 or not bool((batch.edge_targets[:b] == 1).all()):
        return None
    rate = n_edges // b - 1
    src, dst = batch.edge_rows[:b], batch.edge_cols[:b]
    return torch.stack([src.repeat_interleave(rate), dst.repeat_interleave(rate), batch.edge_cols[b:]], dim=1)


def gather_rows(outputs: torch.Tensor, positions: torch.Tensor) -> torch.Tensor:
    """``outputs[positions]`` via ``index_select``: its backward (``index_add``) is
    deterministic on CPU with several threads, unlike advanced indexing's (an unordered
    parallel ``index_put`` with accumulation, whose float sums change from run to run)."""
    return torch.index_select(outputs, 0, positions.to(outputs.device))


def call_model_method(model: torch.nn.Module, method: str, inputs: torch.Tensor) -> torch.Tensor:
    """``model.<method>(inputs)``; ``embed`` falls back to ``forward`` for plain modules."""
    fn: Callable[..., torch.Tensor] | None = getattr(model, method, None)
    if fn is None and method in ("embed", "forward"):
        fn = model
    if fn is None:
        raise SpecError("model", f"the model has no method '{method}'")
    return fn(inputs)


class BatchContext:
    """A batch plus everything a loss needs, with memoised model outputs."""

    def __init__(
        self,
        batch: Batch,
        model: torch.nn.Module,
        data: Mapping[str, torch.Tensor],
        global_relations: Mapping[str, RelationValue],
        batch_relations: Mapping[str, Any],
        device: torch.device,
        model_inputs: Mapping[str, torch.Tensor] | None = None,
    ):
        self.batch = batch
        self.model_inputs = model_inputs or {}
        self.model = model
        self.dataset = data
        self.global_relations = global_relations
        self.batch_relations = batch_relations
        self.device = device
        self._outputs: dict[tuple[str, str], torch.Tensor] = {}
        self._items_np: np.ndarray | None = None

    def over_items(self) -> BatchContext:
        """This context with the batch's items only (no edges or triplets); it shares the
        memoised model outputs, which depend on the items alone."""
        view = BatchContext(Batch(items=self.batch.items), self.model, self.dataset, self.global_relations,
                            self.batch_relations, self.device, self.model_inputs)
        view._outputs = self._outputs
        view._items_np = self._items_np
        return view

    @property
    def items_numpy(self) -> np.ndarray:
        if self._items_np is None:
            self._items_np = self.batch.items.cpu().numpy()
        return self._items_np

    def data(self, key: str) -> torch.Tensor:
        """Rows of dataset entry ``key`` for the batch's items."""
        return gather_rows(self.dataset[key], self.batch.items).to(self.device)

    def output(self, method: str = "embed", data_key: str = "main") -> torch.Tensor:
        """``model.<method>(data[data_key][items])``, computed once per batch."""
        if data_key == "main":
            data_key = getattr(self.model, "input_key", data_key)  # direct models read item indices
        key = (method, data_key)
        if key not in self._outputs:
            if data_key in self.model_inputs:  # features precomputed by frozen front layers
                source = self.model_inputs[data_key]
                inputs = gather_rows(source, self.batch.items).to(self.device)
            else:
                inputs = self.data(data_key)
            self._outputs[key] = call_model_method(self.model, method, inputs)
        return self._outputs[key]

    def computed_outputs(self) -> list[torch.Tensor]:
        """The model outputs computed for this batch so far, in the order they were computed."""
        return list(self._outputs.values())

    def global_relation(self, name: str) -> torch.Tensor:
        """Global relation ``name`` read for this batch.

        Edge batches: one value per edge; the relation the edges were sampled from gives
        the edge targets (1 for sampled positives, 0 for negatives). Item batches: the dense
        (b, b) sub-matrix over the batch's items.
        """
        batch = self.batch
        if batch.has_edges:
            if name == batch.edge_relation and batch.edge_targets is not None:
                return batch.edge_targets.to(self.device)
            rows = self.items_numpy[batch.edge_rows.cpu().numpy()]
            cols = self.items_numpy[batch.edge_cols.cpu().numpy()]
            values = edge_values(self.global_relations[name], rows, cols)
        else:
            values = submatrix(self.global_relations[name], self.items_numpy)
        return torch.as_tensor(np.asarray(values), dtype=torch.float32, device=self.device)

    def batch_relation(self, name: str, method: str = "embed", data_key: str = "main") -> torch.Tensor:
        """Batch relation ``name`` computed on ``output(method, data_key)`` (differentiable)."""
        return self.batch_relations[name](self.output(method, data_key), self.batch)
