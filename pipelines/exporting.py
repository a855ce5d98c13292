"""``paradime export``: a stored model as an ONNX file or as a static web page.

The model argument is what ``paradime embed`` takes (a stored model key, a routine file, or
a spec whose latest model is meant). The training rows drawn on a web page (and whose
embedding bounds go into the ONNX metadata) are the dataset the model was fitted on,
found in the store's model catalog, or the rows given with ``--data``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import numpy as np

from pipelines.errors import PipelineError
from pipelines.store import ArtifactStore

FORMATS = ("onnx", "web")
EXPORT_NAMES = {"onnx": "model.onnx", "web": "web"}  # inside a run's --out folder


@dataclass
class TrainingRows:
    """The rows a model was fitted on, with their labels and column names when known."""

    features: np.ndarray | None
    labels: np.ndarray | None
    feature_names: list[str] | None
    dataset_key: str | None


def fitted_dataset(store: ArtifactStore, model_key: str) -> str | None:
    """The dataset key the model catalog records for ``model_key`` (None if none does)."""
    folder = store.path("index", "models")
    if not store.fs.exists(folder):
        return None
    for entry in sorted(store.fs.ls(folder, detail=False)):
        name = store.fs._strip_protocol(entry).rstrip("/").rsplit("/", 1)[-1]
        record = store.read_json(f"index/models/{name}") or {}
        for fit in reversed(record.get("fits", [])):
            if fit.get("model") == model_key:
                return fit.get("dataset")
    return None


def training_rows(store: ArtifactStore, model_key: str, data: str | None = None,
                  label_column: str | None = None) -> TrainingRows:
    """The training rows of ``model_key``: ``data`` if given, else the catalog's dataset."""
    from pipelines.ingest import LABEL_KEY, load_dataset

    if data is not None:
        from pipelines.flows import ingest_stage

        dataset_key = ingest_stage(data, store, label_column, progress=False)[0].key
    else:
        dataset_key = fitted_dataset(store, model_key)
        if dataset_key is None or store.manifest("datasets", dataset_key) is None:
            return TrainingRows(None, None, None, None)
    arrays = load_dataset(store, dataset_key)
    attrs = store.open_group("datasets", dataset_key).attrs
    names = attrs.get("feature_names")
    return TrainingRows(arrays["main"], arrays.get(LABEL_KEY), list(names) if names else None, dataset_key)


def write_export(store: ArtifactStore, model_key: str, fmt: str, path: str, *, method: str = "embed",
                 data: str | None = None, label_column: str | None = None, runtime_dir: str | None = None,
                 title: str | None = None) -> dict[str, Any]:
    """Write model ``model_key`` as ``fmt`` to the new path ``path`` (no output rules: the caller's).

    Parameters are those of :func:`export_model`; ``path`` must not exist yet.

    Returns
    -------
    dict
        What was written: format, model key, dataset key, rows drawn (web).
    """
    from paradime_core.export import routine_to_onnx, routine_to_web
    from pipelines import artifacts

    routine = artifacts.load_routine(store, model_key)
    rows = training_rows(store, model_key, data, label_column)
    direct = getattr(routine.model_, "input_key", None) == "index"
    written: dict[str, Any] = {"format": fmt, "model": model_key, "dataset": rows.dataset_key}
    if fmt == "onnx":
        routine_to_onnx(routine, path, method=method, X_train=None if direct else rows.features,
                        feature_names=None if direct else rows.feature_names)
        return written
    if direct:
        raise PipelineError(f"model {model_key[:12]} is a direct (non-parametric) model: it cannot embed new "
                            "rows, so it has no web page; export it as onnx")
    if rows.features is None:
        raise PipelineError(f"model {model_key[:12]}: its training dataset is not in store {store.url}; "
                            "give the rows to draw with --data")
    routine_to_web(routine, path, rows.features, labels=rows.labels, feature_names=rows.feature_names,
                   title=title or f"paradime model {model_key[:12]}", runtime_dir=runtime_dir)
    return {**written, "rows": int(len(rows.features))}


def export_model(model: str, fmt: str, out: str, store: str | None = None, *, method: str = "embed",
                 data: str | None = None, label_column: str | None = None, seed: int = 0, out_dim: int = 2,
                 overwrite: bool = False, runtime_dir: str | None = None, title: str | None = None) -> dict[str, Any]:
    """Export ``model`` as ``fmt`` (``onnx`` or ``web``) to ``out`` (the rules of :mod:`pipelines.outputs`).

    Parameters
    ----------
    model : str
        A stored model key (prefix), a routine file (``.pt``) or a spec.
    fmt : str
        ``onnx`` (one file) or ``web`` (a static folder).
    out : str
        The file or folder to write.
    store : str, optional
        The store root.
    method : str
        The model method exported (ONNX only; a web page embeds with ``embed``).
    data : str, optional
        Training rows to draw and to take bounds from (default: the model's own dataset).
    label_column : str, optional
        Label column of a table given as ``data``.
    seed : int
        With a spec as ``model``: the seed it was fitted with.
    out_dim : int
        With a spec as ``model``: the embedding dimension it was fitted with.
    overwrite : bool
        Replace an earlier, unchanged export of paradime's at ``out``.
    runtime_dir : str, optional
        Folder with the browser runtime files (web only).
    title : str, optional
        The web page's title.

    Returns
    -------
    dict
        What was written: format, path, model key, dataset key, rows drawn.
    """
    from pipelines.flows import _local_root, resolve_model
    from pipelines.outputs import check_output, staged_output

    if fmt not in FORMATS:
        raise PipelineError(f"--format must be one of {', '.join(FORMATS)}, got '{fmt}'")
    st = ArtifactStore(store)
    rules = {"overwrite": overwrite, "inputs": [model, data], "store_root": _local_root(st)}
    check_output(out, **rules)  # before any work
    model_key = resolve_model(model, st, seed, out_dim)
    with staged_output(out, **rules) as tmp:
        written = write_export(st, model_key, fmt, tmp, method=method, data=data, label_column=label_column,
                               runtime_dir=runtime_dir, title=title)
    return {**written, "path": os.path.abspath(os.path.expanduser(out))}


__all__ = ["EXPORT_NAMES", "FORMATS", "TrainingRows", "export_model", "fitted_dataset", "training_rows",
           "write_export"]
