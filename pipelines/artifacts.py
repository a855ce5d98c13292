"""Reading and writing stage contents in Zarr groups: relation values, phase states, models.

Relation values (``relation_kind`` attribute of the group):

- ``neighbor_graph``: arrays ``indices`` (n, k) int64 and ``values`` (n, k);
- ``csr``: arrays ``indptr``, ``indices``, ``data`` and the ``shape`` attribute (explicit
  zeros kept);
- ``dense``: array ``dense`` (n, n);
- ``label_equality``: array ``labels`` (the relation itself stays implicit).

A training phase's group holds ``weights/<state_dict name>`` arrays, the optimizer state as
``optimizer/<parameter index>/<name>`` arrays plus JSON attributes (param groups, scalars),
and in its attributes the loss history, the model's type and options and the whole spec,
so that a routine can be rebuilt from the group alone (:func:`load_routine`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import scipy.sparse as sp

from pipelines.errors import CorruptArtifact
from pipelines.ingest import chunk_rows_for


def write_rows(group: Any, name: str, values: np.ndarray, dims: list[str] | None = None,
               chunk_rows: int | None = None) -> Any:
    """Store ``values`` as array ``name`` chunked by rows."""
    values = np.asarray(values)
    if values.ndim == 0:
        array = group.create_array(name, shape=(), dtype=values.dtype)
        array[...] = values
        return array
    row_bytes = int(np.prod(values.shape[1:], dtype=np.int64)) * values.dtype.itemsize
    rows = chunk_rows or chunk_rows_for(row_bytes, values.shape[0])
    rows = max(1, min(rows, values.shape[0] or 1))
    kwargs = {"dimension_names": dims} if dims else {}
    array = group.create_array(name, shape=values.shape, chunks=(rows, *values.shape[1:]),
                               dtype=values.dtype, **kwargs)
    if values.size:
        array[...] = values
    return array


# --------------------------------------------------------------------------- relations
def write_relation(group: Any, value: Any) -> dict[str, Any]:
    """Store a relation value; returns a small summary for the manifest."""
    from paradime_core.relation_data import LabelEquality, NeighborGraph

    if isinstance(value, NeighborGraph):
        write_rows(group, "indices", value.indices)
        write_rows(group, "values", value.values)
        kind, summary = "neighbor_graph", {"n_items": value.n_items, "k": value.n_neighbors}
    elif isinstance(value, LabelEquality):
        write_rows(group, "labels", np.asarray(value.labels))
        kind, summary = "label_equality", {"n_items": value.n_items}
    elif sp.issparse(value):
        matrix = sp.csr_array(value)
        write_rows(group, "indptr", matrix.indptr.astype(np.int64))
        write_rows(group, "indices", matrix.indices.astype(np.int64))
        write_rows(group, "data", matrix.data)
        group.attrs["shape"] = [int(s) for s in matrix.shape]
        kind, summary = "csr", {"n_items": int(matrix.shape[0]), "nnz": int(matrix.nnz)}
    else:
        dense = np.asarray(value)
        write_rows(group, "dense", dense)
        kind, summary = "dense", {"n_items": int(dense.shape[0])}
    group.attrs["relation_kind"] = kind
    return {"relation_kind": kind, **summary}


def read_relation(group: Any) -> Any:
    """The relation value stored by :func:`write_relation`."""
    from paradime_core.relation_data import LabelEquality, NeighborGraph

    kind = group.attrs.get("relation_kind")
    try:
        if kind == "neighbor_graph":
            return NeighborGraph(group["indices"][...], group["values"][...])
        if kind == "label_equality":
            return LabelEquality(group["labels"][...])
        if kind == "csr":
            shape = tuple(group.attrs["shape"])
            return sp.csr_array((group["data"][...], group["indices"][...], group["indptr"][...]), shape=shape)
        if kind == "dense":
            return group["dense"][...]
    except (KeyError, ValueError) as exc:
        raise CorruptArtifact(f"relation group is damaged ({exc})") from exc
    raise CorruptArtifact(f"unknown relation kind {kind!r}")


# --------------------------------------------------------------------------- phase states
def _to_numpy(tensor: Any) -> np.ndarray:
    return tensor.detach().cpu().numpy()


def write_state_dict(group: Any, state: Mapping[str, Any]) -> None:
    """Each tensor of a model's ``state_dict`` as array ``weights/<name>`` (order kept)."""
    weights = group.require_group("weights")
    for name, tensor in state.items():
        write_rows(weights, name, _to_numpy(tensor), chunk_rows=max(1, tensor.shape[0] if tensor.ndim else 1))
    weights.attrs["order"] = list(state)


def read_state_dict(group: Any) -> dict[str, Any]:
    import torch

    weights = group["weights"]
    return {name: torch.as_tensor(np.asarray(weights[name][...])) for name in weights.attrs["order"]}


def write_optimizer_state(group: Any, state: Mapping[str, Any]) -> None:
    """A torch optimizer ``state_dict``: tensors as arrays, everything else as JSON attributes."""
    import torch

    opt = group.require_group("optimizer")
    scalars: dict[str, dict[str, Any]] = {}
    for param_id, entries in state.get("state", {}).items():
        sub = opt.require_group(str(param_id))
        for name, value in entries.items():
            if isinstance(value, torch.Tensor):
                write_rows(sub, name, _to_numpy(value), chunk_rows=max(1, value.shape[0] if value.ndim else 1))
            else:
                scalars.setdefault(str(param_id), {})[name] = value
    opt.attrs["param_groups"] = _jsonable(state.get("param_groups", []))
    opt.attrs["scalars"] = _jsonable(scalars)
    opt.attrs["params"] = [str(p) for p in state.get("state", {})]


def _jsonable(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, (np.generic,)):
        return value.item()
    if hasattr(value, "item") and getattr(value, "ndim", 1) == 0:
        return value.item()
    return value


def load_routine(store: Any, key: str, device: str = "cpu") -> Any:
    """The routine trained up to phase stage ``key`` (spec, model, weights, history), after
    verifying the stage's checksums."""
    from paradime_core.routine import Routine
    from paradime_core.spec import ModelSpec, Spec
    from paradime_core.spec import registry as reg
    from paradime_core.spec.blocks import without_optimizer_trials

    store.verify("phases", key)  # raises CorruptArtifact naming a damaged file
    group = store.open_group("phases", key)
    attrs = group.attrs
    try:
        with without_optimizer_trials():  # checked when it was trained (and again if trained on)
            spec = Spec.from_dict(attrs["spec"])
        model_spec = ModelSpec.from_dict(attrs["model_spec"], "model")
        routine = Routine(spec, seed=int(attrs["seed"]), out_dim=int(attrs["out_dim"]), device=device,
                          verbose=False)
        model = reg.MODELS.get(model_spec.type, "model.type")(**model_spec.options)
        model.load_state_dict(read_state_dict(group))
    except (KeyError, RuntimeError, ValueError) as exc:
        raise CorruptArtifact(f"phases/{key}: cannot rebuild the model ({exc})") from exc
    routine.model_ = model.to(routine.device).eval()
    routine.model_spec_ = model_spec
    routine.history_ = dict(attrs.get("history", {}))
    routine.metadata_ = {"model_key": key}
    return routine
