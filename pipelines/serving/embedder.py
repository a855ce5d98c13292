"""A trained model loaded once, and the checks every batch of rows passes before it.

The numbers are those of ``paradime embed``: the same stored model, the same float32
conversion and the same model method (:func:`pipelines.parallel.embed_rows`).
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import numpy as np

from pipelines.errors import PipelineError


class RowsError(ValueError):
    """Rows a client sent that cannot be embedded (answered with HTTP 422)."""


@dataclass(frozen=True)
class ModelInfo:
    """What ``GET /health`` reports about the served model."""

    key: str
    method: str
    input_width: int
    output_width: int
    spec: str | None

    def to_dict(self) -> dict[str, Any]:
        return {"model": self.key, "method": self.method, "input_width": self.input_width,
                "output_width": self.output_width, "spec": self.spec}


class Embedder:
    """Embeds batches of rows with one stored model, one batch at a time.

    Batches run one after another on a single worker thread that owns ``torch_threads``
    torch threads: concurrent requests queue instead of splitting the cores between
    competing OpenMP thread pools.

    Parameters
    ----------
    store : ArtifactStore
        The store holding the model's phase stage.
    model_key : str
        Key of the phase stage whose model is served (see :func:`pipelines.flows.resolve_model`).
    method : str
        Model method applied to the rows (``embed``, ``classify``, ``encode``...).
    torch_threads : int
        Torch threads of the worker thread.
    """

    def __init__(self, store: Any, model_key: str, method: str = "embed", torch_threads: int = 1):
        from pipelines.artifacts import load_routine

        routine = load_routine(store, model_key)
        self.model = routine.model_
        if getattr(self.model, "input_key", None) == "index":
            raise PipelineError(f"model {model_key[:12]} is non-parametric (it embeds only its training "
                                "items): nothing to serve")
        in_dim = routine.model_spec_.options.get("in_dim")
        if in_dim is None:
            raise PipelineError(f"model {model_key[:12]}: its input width is not recorded")
        self.method = method
        self._worker = ThreadPoolExecutor(max_workers=1, thread_name_prefix="paradime-embed",
                                          initializer=_set_torch_threads, initargs=(int(torch_threads),))
        probe = self.embed(np.zeros((2, int(in_dim)), dtype=np.float32))
        self.info = ModelInfo(model_key, method, int(in_dim), int(probe.shape[1]) if probe.ndim > 1 else 1,
                              routine.spec.name)

    def check(self, rows: Any) -> np.ndarray:
        """``rows`` as a 2-D numeric array of the model's input width with finite values.

        Raises :class:`RowsError` naming the first problem (empty, ragged, not numeric,
        wrong width, NaN or infinite value with its row).
        """
        try:
            array = np.asarray(rows)
        except (ValueError, TypeError) as exc:
            raise RowsError(f"rows must be a list of equally long lists of numbers ({_first_line(exc)})") from None
        if array.dtype.kind not in "biuf":
            raise RowsError(f"rows must hold numbers only (got {_describe_dtype(array)})")
        if array.ndim >= 1 and array.shape[0] == 0:
            raise RowsError("no rows to embed")
        if array.ndim != 2:
            raise RowsError(f"rows must be a 2-D list (rows of {self.info.input_width} numbers), "
                            f"got {array.ndim} dimension(s)")
        if array.shape[1] != self.info.input_width:
            raise RowsError(f"each row must hold {self.info.input_width} numbers (the model's input width), "
                            f"got {array.shape[1]}")
        if array.dtype.kind == "f":
            finite = np.isfinite(array).all(axis=1)
            if not finite.all():
                raise RowsError(f"row {int(np.argmin(finite))} contains NaN or inf")
        return array

    def embed(self, rows: np.ndarray) -> np.ndarray:
        """The model's output for checked ``rows`` (n, input width) -> (n, output width), float32."""
        from pipelines.parallel import embed_rows

        return self._worker.submit(embed_rows, self.model, rows, self.method).result()

    def close(self) -> None:
        self._worker.shutdown(wait=True, cancel_futures=True)


def _set_torch_threads(threads: int) -> None:
    import torch

    torch.set_num_threads(threads)


def _describe_dtype(array: np.ndarray) -> str:
    return "text" if array.dtype.kind in "US" else "null or mixed values" if array.dtype.kind == "O" else str(array.dtype)


def _first_line(exc: BaseException) -> str:
    return str(exc).splitlines()[0] if str(exc) else type(exc).__name__
