"""Ingest: a user's data (a :class:`~pipelines.sources.Source`: npz, npy, csv, parquet, Zarr,
xarray, or arrays in memory) into a dataset group of the store, streamed in row blocks and
fingerprinted on the way.

Specs read the labels as ``labels`` (the grammar's conventional key) or ``y``: both name the
same stored array. All arrays share the ``sample`` dimension (chunked by rows); ``main`` has
a second dimension ``feature``.

The dataset's key is its content fingerprint (:mod:`pipelines.fingerprint`). A path read
before with an unchanged signature is looked up in the store's source index and not read at
all; otherwise the rows are hashed while they are written to a temporary group, which is
then published under the fingerprint (or dropped if that dataset already exists).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from pipelines import errors
from pipelines.errors import PipelineError
from pipelines.fingerprint import (
    ArrayHasher,
    SourceIndex,
    combine,
    file_signature,
    local_url,
)
from pipelines.sources import (  # noqa: F401 (re-exported: the names callers read data with)
    LABEL_ALIAS,
    LABEL_KEY,
    Source,
    chunk_rows_for,
    from_arrays,
    open_source,
)
from pipelines.store import ArtifactStore, StageRef


@dataclass
class Probe:
    """What an ingest needs to know before reading: the input's URL, its signature and how
    to open it (opening may read the whole file; a warm run never does)."""

    url: str
    signature: str | None
    open: Any  # () -> Source
    options: dict[str, Any] = field(default_factory=dict)


def named_dataset(name: str) -> Any:
    """The :mod:`paradime_core.datasets` registry's descriptor for ``name`` (None if unknown or not a name)."""
    if not name or "/" in name or os.sep in name or "." in name:
        return None
    try:
        from paradime_core.datasets import dataset_info
    except ImportError:  # the data package is not installed
        return None
    try:
        return dataset_info(name)
    except (errors.DataError, ValueError, KeyError):
        return None


def probe(data: str | os.PathLike[str], label_column: str | None = None) -> Probe:
    """A :class:`Probe` for a path/URL or a registered dataset name (``mnist``, ``digits``)."""
    import fsspec

    options = {"label_column": label_column}
    text = str(data)
    url = local_url(text)
    fs, fs_path = fsspec.core.url_to_fs(url)
    if not fs.exists(fs_path):
        info = named_dataset(text)
        if info is None:
            raise errors.DataError(f"data not found: {text} (not a file, folder or URL, and not a dataset name; "
                            f"see `python -c 'from paradime_core.datasets import list_datasets; print(list_datasets())'`)")
        return _named_probe(info, options)
    try:
        signature = file_signature(fs, fs_path)
    except OSError as exc:
        raise errors.DataError(f"{text}: cannot read ({exc})") from exc

    def opener() -> Source:
        source = open_source(text, label_column)
        source.signature = signature
        return source

    return Probe(url, signature, opener, options)


def _named_probe(info: Any, options: dict[str, Any]) -> Probe:
    import fsspec

    from paradime_core.datasets import default_cache_dir, default_data_dirs

    url = f"dataset:{info.name}"
    signature = None
    if getattr(info, "bundled", None) is not None:
        from importlib.metadata import version  # not `import sklearn`: that takes seconds

        signature = f"bundled:{info.name}:{version('scikit-learn')}"
    elif getattr(info, "filename", None):
        for folder in (*default_data_dirs(), default_cache_dir()):
            path = os.path.join(str(folder), info.filename)
            if os.path.isfile(path):
                signature = file_signature(fsspec.filesystem("file"), path)
                break

    def opener() -> Source:
        from paradime_core.datasets import load_dataset

        dataset = load_dataset(info.name)
        arrays = {"main": dataset.X, "y": dataset.y, **dict(getattr(dataset, "extras", {}) or {})}
        source = from_arrays(arrays, url)
        source.signature = signature
        source.options = options
        return source

    return Probe(url, signature, opener, options)


# --------------------------------------------------------------------------- ingest
@dataclass
class IngestResult:
    ref: StageRef
    status: str  # "cached" | "computed"
    fingerprints: dict[str, str]


def known_fingerprints(source: Source, store: ArtifactStore) -> dict[str, Any] | None:
    """The remembered record of a path source whose signature is unchanged (no reading)."""
    if source.signature is None:
        return None
    return SourceIndex(store).lookup(source.url, source.signature, source.options)


def dataset_ref(store: ArtifactStore, key: str) -> StageRef | None:
    """A reference to a complete dataset stage, or None."""
    manifest = store.manifest("datasets", key)
    if manifest is None:
        return None
    return StageRef(store.url, "datasets", key, manifest.get("name", ""), manifest.get("summary", {}))


def ingest(source: Source, store: ArtifactStore, name: str | None = None,
           progress: bool = False, replace: bool = False) -> IngestResult:
    """Publish ``source`` as a dataset group keyed by its content fingerprint (``replace``:
    read it again and replace the stored copy, a damaged one)."""
    record = None if replace else known_fingerprints(source, store)
    if record is not None:
        ref = dataset_ref(store, record["fingerprint"])
        if ref is not None:
            return IngestResult(ref, "cached", dict(record["arrays"]))
    name = name or os.path.splitext(os.path.basename(source.url.rstrip("/")))[0] or "data"
    main_dtype, main_row = source.schema["main"]
    row_bytes = int(np.prod(main_row, dtype=np.int64)) * main_dtype.itemsize
    rows = chunk_rows_for(row_bytes, source.n_rows)
    hashers = {k: ArrayHasher(d, s) for k, (d, s) in source.schema.items()}
    with store.begin("datasets", "pending", name=name, replace=replace) as writer:
        group = writer.group
        arrays = {}
        for key, (dtype, row_shape) in source.schema.items():
            dims = ["sample", "feature"] if key == "main" else ["sample"] + [f"{key}_dim{i + 1}" for i in range(len(row_shape))]
            arrays[key] = group.create_array(key, shape=(0, *row_shape), chunks=(rows, *row_shape),
                                             dtype=dtype, dimension_names=dims)
        buffers = {k: _RowBuffer(a, rows) for k, a in arrays.items()}
        n = 0
        bar = _progress_bar(progress, source.n_rows, f"ingest {name}")
        try:
            for block in source.blocks(rows):
                if "main" in block and block["main"].ndim == 1:
                    block["main"] = block["main"][:, None]
                for key, values in block.items():
                    values = np.asarray(values, dtype=source.schema[key][0])
                    hashers[key].update(values)
                    buffers[key].append(values)
                n += len(block["main"])
                if bar is not None:
                    bar.update(len(block["main"]))
        finally:
            if bar is not None:
                bar.close()
        for buffer in buffers.values():
            buffer.flush()
        if n < 2:
            raise errors.DataError(f"{source.url}: {n} row(s); at least 2 items are needed")
        fingerprints = {k: h.hexdigest() for k, h in hashers.items()}
        key = combine(fingerprints)
        codes = source.attrs.get("_codes")
        attrs = {k: v for k, v in source.attrs.items() if not k.startswith("_")}
        if codes is not None and codes.classes:
            attrs["label_classes"] = list(codes.classes)
        group.attrs.update({"source": source.url, "format": source.format, "n_items": n,
                            "fingerprints": fingerprints, "chunk_rows": rows, **attrs})
        writer.key = key
        writer.summary = {"n_items": n, "arrays": {k: [n, *s] for k, (_, s) in source.schema.items()},
                          "source": source.url}
        status = "computed"
        if not replace and dataset_ref(store, key) is not None:  # same content read before from elsewhere
            writer.discard()
            status = "cached"
    return _finish_ingest(store, source, key, fingerprints, status)


def _finish_ingest(store: ArtifactStore, source: Source, key: str, fingerprints: dict[str, str],
                   status: str) -> IngestResult:
    if source.signature is not None:
        SourceIndex(store).remember(source.url, source.signature,
                                    {"fingerprint": key, "arrays": fingerprints}, source.options)
    ref = dataset_ref(store, key)
    if ref is None:
        raise PipelineError(f"dataset {key} was not published")
    return IngestResult(ref, status, fingerprints)


class _RowBuffer:
    """Appends rows to a Zarr array in whole chunks (the last chunk at flush)."""

    def __init__(self, array: Any, rows: int):
        self.array = array
        self.rows = rows
        self.pending: list[np.ndarray] = []
        self.count = 0
        self.written = 0

    def append(self, values: np.ndarray) -> None:
        self.pending.append(values)
        self.count += len(values)
        if self.count >= self.rows:
            self._write(full_only=True)

    def flush(self) -> None:
        if self.count:
            self._write(full_only=False)

    def _write(self, full_only: bool) -> None:
        data = np.concatenate(self.pending) if len(self.pending) > 1 else self.pending[0]
        take = (len(data) // self.rows) * self.rows if full_only else len(data)
        if take:
            end = self.written + take
            self.array.resize((end, *self.array.shape[1:]))
            self.array[self.written:end] = data[:take]
            self.written = end
        rest = data[take:]
        self.pending = [rest] if len(rest) else []
        self.count = len(rest)


def _progress_bar(enabled: bool, total: int | None, desc: str) -> Any:
    if not enabled:
        return None
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=desc, unit="row", unit_scale=True, leave=False)


def with_label_alias(entries: dict[str, Any]) -> dict[str, Any]:
    """``entries`` with the stored labels ``y`` also under ``labels`` (same value), unless a
    dataset brings its own ``labels`` array."""
    if LABEL_KEY in entries and LABEL_ALIAS not in entries:
        return {**entries, LABEL_ALIAS: entries[LABEL_KEY]}
    return dict(entries)


def load_dataset(store: ArtifactStore, key: str, keys: list[str] | None = None) -> dict[str, np.ndarray]:
    """The dataset's arrays in memory (all, or the named ones), labels also as ``labels``."""
    group = store.open_group("datasets", key)
    names = keys or [name for name, _ in group.arrays()]
    return with_label_alias({name: np.asarray(group[name][...]) for name in names})


def dataset_fingerprints(store: ArtifactStore, key: str) -> dict[str, str]:
    """Per-array fingerprints of a stored dataset (from its attributes)."""
    return dict(store.open_group("datasets", key).attrs["fingerprints"])
