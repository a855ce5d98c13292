"""A self-contained web page that embeds new rows in the browser with an exported model.

:func:`write_web_page` writes a static folder that needs no network when viewed (serve it
over HTTP, e.g. ``python -m http.server``: browsers load WebAssembly only from a server)::

    index.html                    the page (scatter plot, CSV drop / paste, self-check)
    paradime-web.js               the page's script
    model.onnx                    the model (:func:`paradime_core.export.onnx.export_onnx`)
    points.json                   training embedding (subsampled, with labels), sample rows
                                  and their embedding computed in Python, input width and
                                  feature names
    ort.wasm.min.js, ort-wasm-simd-threaded.{mjs,wasm}
                                  onnxruntime-web (:mod:`paradime_core.export.web_runtime`)
    .paradime-web                 marks the folder as paradime's, so it may be replaced

On load the page embeds the bundled sample rows with onnxruntime-web and writes ``ok`` and
the largest absolute difference from Python's embedding of the same rows into the element
with id ``selfcheck`` (``FAILED`` and the difference when it exceeds the tolerance). A
person drops a CSV file or pastes rows; the page embeds them and draws them over the
training points in a colour of their own.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Sequence
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np

from paradime_core.errors import DataError

MARKER = ".paradime-web"
ASSETS = ("index.html", "paradime-web.js")
MAX_TRAIN_POINTS = 20_000
SAMPLE_ROWS = 8
SELFCHECK_TOLERANCE = 1e-3


def subsample(n: int, limit: int, seed: int = 0) -> np.ndarray:
    """Sorted row indices of at most ``limit`` of ``n`` rows (all when ``n <= limit``).

    Parameters
    ----------
    n : int
        Number of rows.
    limit : int
        Largest number of rows kept.
    seed : int
        Seed of the random choice.

    Returns
    -------
    numpy.ndarray
        The kept rows' indices, ascending.
    """
    if n <= limit:
        return np.arange(n)
    return np.sort(np.random.default_rng(seed).choice(n, size=limit, replace=False))


def _rounded(values: np.ndarray, digits: int = 7) -> list[Any]:
    return np.round(np.asarray(values, dtype=np.float64), digits).tolist()


def points_document(train_embedding: np.ndarray | None, labels: np.ndarray | None, sample_rows: np.ndarray,
                    sample_embedding: np.ndarray, *, input_width: int, feature_names: Sequence[str] | None = None,
                    title: str = "paradime embedding", max_points: int = MAX_TRAIN_POINTS,
                    tolerance: float = SELFCHECK_TOLERANCE) -> dict[str, Any]:
    """The JSON document a page reads: training points, sample rows, what the model expects.

    Parameters
    ----------
    train_embedding : numpy.ndarray, optional
        The training items' embedding ``(n, d)``; subsampled to ``max_points`` rows.
    labels : numpy.ndarray, optional
        One label per training item (drawn as colours).
    sample_rows : numpy.ndarray
        A few input rows ``(m, input_width)`` the page embeds on load.
    sample_embedding : numpy.ndarray
        Python's embedding of ``sample_rows`` (the self-check's reference).
    input_width : int
        Number of input columns.
    feature_names : sequence of str, optional
        Names of the input columns (a CSV header naming them selects and orders columns).
    title : str
        The page's title.
    max_points : int
        Most training points kept.
    tolerance : float
        Largest absolute difference the self-check accepts.

    Returns
    -------
    dict
        The document, ready for ``json.dumps``.
    """
    train: dict[str, Any] = {"points": [], "labels": None}
    if train_embedding is not None:
        embedding = np.asarray(train_embedding)
        keep = subsample(len(embedding), max_points)
        train["points"] = _rounded(embedding[keep])
        train["total"] = int(len(embedding))
        if labels is not None:
            labels = np.asarray(labels)
            if len(labels) != len(embedding):
                raise DataError(f"{len(labels)} labels for {len(embedding)} training points")
            kept = labels[keep]
            train["labels"] = [x.item() if hasattr(x, "item") else x for x in kept]
    sample_rows = np.asarray(sample_rows, dtype=np.float32)
    return {
        "title": title,
        "input_width": int(input_width),
        "feature_names": [str(n) for n in feature_names] if feature_names is not None else [],
        "train": train,
        "samples": {"rows": sample_rows.tolist(), "embedding": _rounded(sample_embedding, 9)},
        "tolerance": float(tolerance),
    }


def _copy_assets(target: Path) -> None:
    folder = resources.files("paradime_core.export").joinpath("web_assets")
    for name in ASSETS:
        (target / name).write_bytes(folder.joinpath(name).read_bytes())


def check_target(path: str | os.PathLike[str], overwrite: bool) -> None:
    """Refuse to replace anything but an earlier page of ours, and that only with ``overwrite``.

    Parameters
    ----------
    path : str or os.PathLike
        The folder a page is to be written to.
    overwrite : bool
        Whether an earlier page there may be replaced.
    """
    path = Path(path)
    if not path.exists():
        return
    if not path.is_dir() or not (path / MARKER).is_file():
        raise DataError(f"{path}: exists and is not a web page written by paradime; choose another --out")
    if not overwrite:
        raise DataError(f"{path}: exists; pass --overwrite to replace the page written there")


def write_web_page(out_dir: str | os.PathLike[str], onnx_path: str | os.PathLike[str], document: dict[str, Any],
                   runtime_dir: str | os.PathLike[str], *, overwrite: bool = False) -> Path:
    """Write the static page folder ``out_dir`` (assembled under a temporary name, then renamed).

    Parameters
    ----------
    out_dir : str or os.PathLike
        The folder to create. An existing folder is replaced only if it is an earlier page
        (it holds the marker file) and ``overwrite`` is set.
    onnx_path : str or os.PathLike
        The exported model.
    document : dict
        The page's data (:func:`points_document`).
    runtime_dir : str or os.PathLike
        A folder with the pinned browser runtime (:func:`~paradime_core.export.web_runtime.ensure_runtime`).
    overwrite : bool
        Replace an earlier page at ``out_dir``.

    Returns
    -------
    pathlib.Path
        The written folder.
    """
    from paradime_core.export.web_runtime import FILES, check_runtime

    target = Path(out_dir).resolve()
    check_target(target, overwrite)
    problems = check_runtime(runtime_dir)
    if problems:
        raise DataError(f"web runtime: {problems[0]}")
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent))
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(staging, 0o777 & ~umask)  # a folder to serve, not mkdtemp's private 0700
    try:
        _copy_assets(staging)
        shutil.copyfile(onnx_path, staging / "model.onnx")
        for name in FILES:
            shutil.copyfile(Path(runtime_dir) / name, staging / name)
        (staging / "points.json").write_text(json.dumps(document, separators=(",", ":")))
        (staging / MARKER).write_text("written by paradime export --format web\n")
        if target.exists():
            old = target.with_name(f".{target.name}.old-{os.getpid()}")
            os.replace(target, old)
            os.replace(staging, target)
            shutil.rmtree(old)
        else:
            os.replace(staging, target)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return target


__all__ = ["MARKER", "check_target", "points_document", "subsample", "write_web_page"]
