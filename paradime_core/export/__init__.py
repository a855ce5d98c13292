"""Export a trained routine: ONNX for any runtime, and a static web page that embeds in the browser.

``routine_to_onnx`` and ``routine_to_web`` are what :meth:`Routine.to_onnx` and
:meth:`Routine.to_web` call; ``paradime export`` calls them with a stored model. ``onnx`` and
``onnxruntime`` come with the ``explain`` extra.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from paradime_core.export.onnx import OPSET, export_onnx, inference_copy, read_metadata, run_onnx
from paradime_core.export.web import SAMPLE_ROWS, check_target, points_document, write_web_page
from paradime_core.export.web_runtime import ensure_runtime


def _require_fitted(routine: Any) -> torch.nn.Module:
    model = getattr(routine, "model_", None)
    if model is None:
        raise RuntimeError("the routine is not fitted yet: call fit() first")
    return model


def float32_transform(model: torch.nn.Module, rows: np.ndarray, method: str = "embed") -> np.ndarray:
    """``model.<method>(rows)`` computed as the exported graph computes it (float32, CPU, eval).

    Parameters
    ----------
    model : torch.nn.Module
        The trained model.
    rows : numpy.ndarray
        Input rows.
    method : str
        The model method.

    Returns
    -------
    numpy.ndarray
        The outputs.
    """
    clone = inference_copy(model)
    with torch.no_grad():
        x = torch.as_tensor(np.asarray(rows, dtype=np.float32))
        fn = getattr(clone, method, None) or clone
        return fn(x).numpy()


def routine_to_onnx(routine: Any, path: str | os.PathLike[str], *, method: str = "embed",
                    X_train: np.ndarray | None = None, feature_names: Sequence[str] | None = None,
                    opset: int = OPSET) -> Path:
    """Export a fitted routine's model method as ONNX with paradime's metadata.

    Parameters
    ----------
    routine : Routine
        A fitted routine.
    path : str or os.PathLike
        The ``.onnx`` file to write.
    method : str
        The model method (``embed`` by default; ``classify``, ``encode``, ``decode`` on request).
    X_train : numpy.ndarray, optional
        The training rows; their embedding's bounds go into the metadata (a direct model
        takes the bounds of its coordinates).
    feature_names : sequence of str, optional
        Names of the input columns.
    opset : int
        The ONNX operator set.

    Returns
    -------
    pathlib.Path
        The written file.
    """
    model = _require_fitted(routine)
    if getattr(model, "input_key", None) == "index":  # a coordinate table: its bounds are its own
        train_embedding = routine.embedding_of_training_items(None)
    else:
        train_embedding = routine.transform(X_train) if X_train is not None else None
    return export_onnx(model, path, method=method, spec=routine.spec, feature_names=feature_names,
                       train_embedding=train_embedding, opset=opset)


def routine_to_web(routine: Any, out_dir: str | os.PathLike[str], X_train: np.ndarray, *,
                   labels: np.ndarray | None = None, train_embedding: np.ndarray | None = None,
                   feature_names: Sequence[str] | None = None, sample_rows: np.ndarray | None = None,
                   title: str = "paradime embedding", runtime_dir: str | os.PathLike[str] | None = None,
                   overwrite: bool = False) -> Path:
    """Write a static web page that embeds new rows in the browser (see :mod:`paradime_core.export.web`).

    Parameters
    ----------
    routine : Routine
        A fitted routine with a parametric model.
    out_dir : str or os.PathLike
        The folder to write.
    X_train : numpy.ndarray
        The training rows (their embedding is drawn; the first rows are the self-check's samples).
    labels : numpy.ndarray, optional
        Labels of the training rows (colours).
    train_embedding : numpy.ndarray, optional
        The training rows' embedding if already computed (else computed here).
    feature_names : sequence of str, optional
        Names of the input columns.
    sample_rows : numpy.ndarray, optional
        Rows for the self-check (default: the first training rows).
    title : str
        The page's title.
    runtime_dir : str or os.PathLike, optional
        A folder with the browser runtime files (default: :func:`ensure_runtime`'s choice).
    overwrite : bool
        Replace an earlier page at ``out_dir``.

    Returns
    -------
    pathlib.Path
        The written folder.
    """
    model = _require_fitted(routine)
    check_target(out_dir, overwrite)
    if getattr(model, "input_key", None) == "index":
        raise RuntimeError("a direct (non-parametric) model cannot embed new rows: nothing to put on a web page")
    runtime = ensure_runtime(runtime_dir)
    X_train = np.asarray(X_train)
    embedding = routine.transform(X_train) if train_embedding is None else np.asarray(train_embedding)
    samples = np.asarray(X_train[:SAMPLE_ROWS] if sample_rows is None else sample_rows, dtype=np.float32)
    samples = samples.reshape(len(samples), -1)
    document = points_document(embedding, labels, samples, float32_transform(model, samples),
                               input_width=samples.shape[1], feature_names=feature_names, title=title)
    with tempfile.TemporaryDirectory() as scratch:
        onnx_path = export_onnx(model, Path(scratch) / "model.onnx", spec=routine.spec,
                                feature_names=feature_names, train_embedding=embedding)
        return write_web_page(out_dir, onnx_path, document, runtime, overwrite=overwrite)


__all__ = ["OPSET", "ensure_runtime", "export_onnx", "float32_transform", "read_metadata", "routine_to_onnx",
           "routine_to_web", "run_onnx"]
