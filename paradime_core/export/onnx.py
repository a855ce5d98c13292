"""Export a trained routine's model to ONNX, for any ONNX runtime (Python, C++, browsers).

The exported graph is the model's inference path in float32, in evaluation mode:

- the front layers are kept (input scaling, the frozen PCA projection), the training-only
  input noise is the identity;
- layers trained in bfloat16 are exported in float32 (the stored weights are float32; only
  the matrix products ran in bfloat16), so the ONNX output equals ``paradime embed`` up to
  float32 rounding where the model was trained in float32 and up to bfloat16 rounding
  otherwise;
- one method of the model: ``embed`` by default, another (``classify``, ``encode``,
  ``decode``) on request;
- the batch axis is dynamic (input ``input`` of shape ``(rows, width)``, output named after
  the method).

The model's ONNX metadata (``metadata_props``) says what a consumer needs without reading
paradime's files: ``paradime.spec`` (the spec as JSON), ``paradime.method``,
``paradime.input_width``, ``paradime.input_dtype``, ``paradime.feature_names`` (JSON list,
empty when unknown), ``paradime.output_width``, ``paradime.embedding_bounds`` (JSON
``[[min, max], ...]`` per output dimension over the training items, when known),
``paradime.opset`` and ``paradime.version``.
"""

from __future__ import annotations

import copy
import io
import json
import os
import tempfile
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from paradime_core.errors import SpecError

OPSET = 17
INPUT_NAME = "input"


class _MethodModule(torch.nn.Module):
    """``model.<method>(x)`` as a module's forward (what the exporter traces)."""

    def __init__(self, model: torch.nn.Module, method: str):
        super().__init__()
        self.model = model
        self.method = method

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        fn = getattr(self.model, self.method, None)
        if fn is None:
            return self.model(x)
        return fn(x)


def inference_copy(model: torch.nn.Module) -> torch.nn.Module:
    """A float32, CPU, evaluation-mode copy of ``model`` for export.

    Parameters
    ----------
    model : torch.nn.Module
        The trained model; it is not modified.

    Returns
    -------
    torch.nn.Module
        A deep copy whose modules that declare a ``precision`` run in float32.
    """
    clone = copy.deepcopy(model).cpu().float().eval()
    for module in clone.modules():
        if isinstance(getattr(module, "precision", None), str):
            module.precision = "float32"
    return clone


def embedding_bounds(embedding: np.ndarray) -> list[list[float]]:
    """``[[min, max], ...]`` per column of a finite ``(n, d)`` embedding.

    Parameters
    ----------
    embedding : numpy.ndarray
        The training items' embedding.

    Returns
    -------
    list of list of float
        One ``[min, max]`` pair per output dimension.
    """
    values = np.asarray(embedding, dtype=np.float64)
    if values.ndim != 2 or values.shape[0] == 0:
        raise ValueError(f"embedding must be a non-empty (n, d) array, got shape {values.shape}")
    return [[float(lo), float(hi)] for lo, hi in zip(values.min(axis=0), values.max(axis=0), strict=True)]


def _method_input(model: torch.nn.Module, method: str) -> tuple[int, torch.dtype]:
    """Width and dtype of ``model.<method>``'s input, from the model's ``config``."""
    config = dict(getattr(model, "config", {}) or {})
    if getattr(model, "input_key", None) == "index":
        if method != "embed":
            raise SpecError("export", f"a direct model has only the method 'embed', not '{method}'")
        return 1, torch.int64
    if method == "decode":
        return int(config["out_dim"]), torch.float32
    if "in_dim" not in config:
        raise SpecError("export", "the model does not state its input width (config['in_dim'])")
    return int(config["in_dim"]), torch.float32


def model_to_onnx_bytes(model: torch.nn.Module, method: str = "embed", opset: int = OPSET) -> tuple[bytes, int, int]:
    """Serialise ``model.<method>`` as an ONNX graph with a dynamic batch axis.

    Parameters
    ----------
    model : torch.nn.Module
        A model of the model registry (it states ``config['in_dim']``), or a direct model.
    method : str
        The model method to export (``embed``, ``classify``, ``encode``, ``decode``).
    opset : int
        The ONNX operator set.

    Returns
    -------
    tuple of (bytes, int, int)
        The serialised model, its input width and its output width.
    """
    if getattr(model, method, None) is None and method not in ("embed", "forward"):
        raise SpecError("export", f"the model has no method '{method}'")
    width, dtype = _method_input(model, method)
    module = _MethodModule(inference_copy(model), method)
    example = torch.zeros((2, width), dtype=dtype) if dtype.is_floating_point else torch.zeros((2,), dtype=dtype)
    with torch.no_grad():
        out_width = int(module(example).shape[-1])
    buffer = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # tracer notes about constant Python branches
        torch.onnx.export(module, (example,), buffer, input_names=[INPUT_NAME], output_names=[method],
                          dynamic_axes={INPUT_NAME: {0: "rows"}, method: {0: "rows"}},
                          opset_version=opset, dynamo=False)
    return buffer.getvalue(), width, out_width


def export_onnx(model: torch.nn.Module, path: str | os.PathLike[str], *, method: str = "embed",
                spec: Any = None, feature_names: Sequence[str] | None = None,
                train_embedding: np.ndarray | None = None, opset: int = OPSET) -> Path:
    """Write ``model.<method>`` to ``path`` as ONNX, with paradime's metadata.

    Parameters
    ----------
    model : torch.nn.Module
        The trained model.
    path : str or os.PathLike
        Where to write the ``.onnx`` file (written to a temporary name, then renamed).
    method : str
        The model method to export; ``embed`` by default.
    spec : Any
        The routine's spec (a ``Spec`` or a dict); stored as JSON in the metadata.
    feature_names : sequence of str, optional
        Names of the input columns, in order.
    train_embedding : numpy.ndarray, optional
        The training items' embedding; its per-dimension bounds go into the metadata.
    opset : int
        The ONNX operator set.

    Returns
    -------
    pathlib.Path
        The written file.
    """
    import onnx

    from paradime_core import __version__

    data, width, out_width = model_to_onnx_bytes(model, method, opset)
    names = [str(n) for n in feature_names] if feature_names is not None else []
    if names and len(names) != width:
        raise SpecError("export", f"{len(names)} feature names for an input of width {width}")
    spec_dict = spec.to_dict() if hasattr(spec, "to_dict") else spec
    metadata = {
        "paradime.spec": json.dumps(spec_dict, default=str) if spec_dict is not None else "",
        "paradime.method": method,
        "paradime.input_width": str(width),
        "paradime.input_dtype": "int64" if getattr(model, "input_key", None) == "index" else "float32",
        "paradime.feature_names": json.dumps(names),
        "paradime.output_width": str(out_width),
        "paradime.embedding_bounds": json.dumps(embedding_bounds(train_embedding)) if train_embedding is not None else "",
        "paradime.opset": str(opset),
        "paradime.version": __version__,
    }
    proto = onnx.load_from_string(data)
    proto.producer_name = "paradime"
    proto.producer_version = __version__
    del proto.metadata_props[:]
    for key, value in metadata.items():
        entry = proto.metadata_props.add()
        entry.key, entry.value = key, value
    onnx.checker.check_model(proto)
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    handle, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    umask = os.umask(0)
    os.umask(umask)
    try:
        os.fchmod(handle, 0o666 & ~umask)  # an ordinary file, not mkstemp's private 0600
        with os.fdopen(handle, "wb") as stream:
            stream.write(proto.SerializeToString())
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return target


def read_metadata(path: str | os.PathLike[str]) -> dict[str, str]:
    """The ``metadata_props`` of an ONNX file as a dict.

    Parameters
    ----------
    path : str or os.PathLike
        An ONNX file.

    Returns
    -------
    dict of str to str
        Metadata keys and values.
    """
    import onnx

    proto = onnx.load(str(path), load_external_data=False)
    return {entry.key: entry.value for entry in proto.metadata_props}


def run_onnx(path: str | os.PathLike[str], rows: np.ndarray) -> np.ndarray:
    """Run an exported model on ``rows`` with onnxruntime's CPU provider.

    Parameters
    ----------
    path : str or os.PathLike
        An ONNX file written by :func:`export_onnx`.
    rows : numpy.ndarray
        Input rows ``(n, width)`` (item indices ``(n,)`` for a direct model).

    Returns
    -------
    numpy.ndarray
        The model's output for the rows.
    """
    import onnxruntime as ort

    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    feed = session.get_inputs()[0]
    dtype = np.int64 if "int64" in feed.type else np.float32
    return session.run(None, {feed.name: np.asarray(rows, dtype=dtype)})[0]


__all__ = ["OPSET", "embedding_bounds", "export_onnx", "inference_copy", "model_to_onnx_bytes",
           "read_metadata", "run_onnx"]
