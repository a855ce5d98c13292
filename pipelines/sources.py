"""Sources: a user's data (npz, npy, csv, parquet, Zarr, xarray, a folder of parts, or arrays
in memory) opened as named arrays with a common row count, read in row blocks.

Naming. The items' features become ``main`` (an array named ``main``, ``data``, ``X`` or
``x``, or the only array; in a table, every numeric column except the label column). A
table's label column (``label_column``, else the first of ``y``, ``label``, ``labels``,
``target``, ``class``) becomes ``y``; text labels are stored as integer codes with the
classes in the group's attributes. Other arrays keep their names.

A folder that is not a Zarr store is read as the concatenation of its data files in name
order (new data arriving as new part files makes a new dataset version).
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from pipelines import errors, validation
from pipelines.errors import PipelineError
from pipelines.fingerprint import (
    canonical_dtype,
    file_signature,
    local_url,
)

MAIN_ALIASES = ("main", "data", "X", "x")
LABEL_COLUMNS = ("y", "label", "labels", "target", "class")
LABEL_KEY, LABEL_ALIAS = "y", "labels"  # stored name, the name specs use
FILE_FORMATS = {
    ".npz": "npz", ".npy": "npy", ".csv": "csv", ".tsv": "csv", ".txt": "csv",
    ".parquet": "parquet", ".pq": "parquet", ".zarr": "zarr", ".nc": "netcdf", ".nc4": "netcdf",
    ".netcdf": "netcdf", ".h5": "netcdf",
}
TARGET_CHUNK_BYTES = 16 << 20


def chunk_rows_for(row_bytes: int, n_rows: int | None = None) -> int:
    """Rows per chunk: a power of two giving ~16 MiB chunks, between 1,024 and 65,536."""
    rows = max(1, TARGET_CHUNK_BYTES // max(int(row_bytes), 1))
    rows = 1 << (rows.bit_length() - 1)
    rows = min(max(rows, 1024), 65536)
    if n_rows is not None and n_rows > 0:
        rows = min(rows, max(n_rows, 1))
    return int(rows)


# --------------------------------------------------------------------------- sources
@dataclass
class Source:
    """Named arrays readable in aligned row blocks (``blocks(rows)``)."""

    url: str
    format: str
    schema: dict[str, tuple[np.dtype, tuple[int, ...]]]  # name -> (dtype, row shape)
    n_rows: int | None
    attrs: dict[str, Any] = field(default_factory=dict)
    _arrays: dict[str, Any] | None = None  # random-access arrays (None for streamed tables)
    _stream: Any = None  # callable(rows) -> iterator of dict blocks
    signature: str | None = None
    options: dict[str, Any] = field(default_factory=dict)

    def blocks(self, rows: int) -> Iterator[dict[str, np.ndarray]]:
        """Aligned blocks of ``rows`` rows, each checked (:mod:`pipelines.validation`)."""
        if self.format == "folder":  # each part checks its own rows (errors name the part)
            yield from self._stream(rows)
            return
        yield from validation.checked_blocks(self._raw_blocks(rows), self.url, self.format)

    def _raw_blocks(self, rows: int) -> Iterator[dict[str, np.ndarray]]:
        if self._arrays is not None:
            for start in range(0, int(self.n_rows or 0), rows):
                yield {k: np.asarray(a[start:start + rows]) for k, a in self._arrays.items()}
        else:
            yield from self._stream(rows)

    def array(self, name: str = "main") -> Any:
        """Random access to one array (sources with random access only)."""
        if self._arrays is None:
            raise PipelineError(f"{self.url}: {self.format} data can only be streamed")
        return self._arrays[name]


def _name_arrays(arrays: Mapping[str, Any], where: str) -> dict[str, Any]:
    """Rename the features array to ``main``; check shapes and lengths."""
    arrays = {str(k): v for k, v in arrays.items()}
    if not arrays:
        raise errors.DataError(f"{where}: holds no arrays")
    if "main" not in arrays:
        alias = next((a for a in MAIN_ALIASES if a in arrays), None)
        if alias is None:
            two_d = [k for k, v in arrays.items() if len(v.shape) == 2]
            alias = two_d[0] if len(two_d) == 1 else (next(iter(arrays)) if len(arrays) == 1 else None)
        if alias is None:
            raise errors.DataError(f"{where}: no features array (name one 'main', 'data' or 'X'; found "
                            f"{', '.join(f'{k} {tuple(v.shape)}' for k, v in arrays.items())})")
        arrays = {"main": arrays.pop(alias), **arrays}
    n = arrays["main"].shape[0] if len(arrays["main"].shape) else 0
    for name, value in arrays.items():
        if len(value.shape) == 0:
            raise errors.DataError(f"{where}: array '{name}' is a scalar, not one value per item")
        if value.shape[0] != n:
            raise errors.DataError(f"{where}: array '{name}' has {value.shape[0]} rows but the features "
                            f"array has {n}")
        dtype = np.dtype(value.dtype)
        if dtype.kind not in "biuf":
            raise errors.DataError(f"{where}: array '{name}' has dtype {dtype}; only numbers can be ingested")
    main = arrays["main"]
    if len(main.shape) > 2:
        raise errors.DataError(f"{where}: the features array must be 1-D or 2-D (items x features), "
                        f"got shape {tuple(main.shape)}")
    return arrays


def _array_source(url: str, fmt: str, arrays: Mapping[str, Any], where: str,
                  attrs: Mapping[str, Any] | None = None) -> Source:
    arrays = _name_arrays(arrays, where)
    main = arrays["main"]
    if len(main.shape) == 1:
        arrays["main"] = _Column(main)
    schema = {k: (canonical_dtype(v.dtype), tuple(int(s) for s in v.shape[1:])) for k, v in arrays.items()}
    return Source(url, fmt, schema, int(arrays["main"].shape[0]), dict(attrs or {}), _arrays=arrays)


class _Column:
    """A 1-D array seen as an (n, 1) array (sliced lazily)."""

    def __init__(self, array: Any):
        self.array = array
        self.shape = (array.shape[0], 1)
        self.dtype = array.dtype

    def __getitem__(self, item: Any) -> np.ndarray:
        return np.asarray(self.array[item])[:, None]


def from_arrays(data: Any, url: str = "memory") -> Source:
    """A source over arrays in memory: an array, a mapping of arrays, or an xarray object."""
    if _is_xarray(data):
        return _xarray_source(data, url)
    if isinstance(data, Mapping):
        arrays = {k: np.asarray(v) for k, v in data.items() if v is not None}
    else:
        arrays = {"main": np.asarray(data)}
    return _array_source(url, "arrays", arrays, "data")


def _is_xarray(obj: Any) -> bool:
    module = type(obj).__module__ or ""
    return module.startswith("xarray")


def _xarray_source(obj: Any, url: str) -> Source:
    import xarray as xr

    if isinstance(obj, xr.DataArray):
        obj = obj.to_dataset(name=obj.name or "main")
    if not obj.data_vars:
        raise errors.DataError(f"{url}: the xarray dataset has no data variables")
    sample_dim = "sample" if "sample" in obj.dims else next(iter(obj[next(iter(obj.data_vars))].dims))
    arrays = {}
    for name, var in obj.data_vars.items():
        if not var.dims or var.dims[0] != sample_dim:
            continue
        arrays[str(name)] = _LazyVariable(var)
    return _array_source(url, "xarray", arrays, url, attrs={"sample_dim": sample_dim})


class _LazyVariable:
    """An xarray variable read by row slices (dask/zarr backed variables stay lazy)."""

    def __init__(self, var: Any):
        self.var = var
        self.shape = tuple(var.shape)
        self.dtype = var.dtype

    def __getitem__(self, item: Any) -> np.ndarray:
        return np.asarray(self.var[item].values)


def open_source(path: str | os.PathLike[str], label_column: str | None = None,
                storage_options: Mapping[str, Any] | None = None) -> Source:
    """A source for a path or URL (format from the extension; folders: Zarr or data files)."""
    import fsspec

    url = local_url(path)
    options = dict(storage_options or {})
    fs, fs_path = fsspec.core.url_to_fs(url, **options)
    if not fs.exists(fs_path):
        raise errors.DataError(f"data not found: {path}")
    is_dir = fs.isdir(fs_path)
    fmt = _format_of(fs, fs_path, is_dir, path)
    if not is_dir and fs.size(fs_path) == 0:
        raise errors.DataError(f"{path}: the file is empty (0 bytes)")
    if fmt == "folder":
        return _folder_source(fs, fs_path, url, label_column, options)
    with validation.reading(str(path), fmt):
        source = _open_format(fmt, fs, fs_path, url, label_column, options)
    source.signature = file_signature(fs, fs_path)
    source.options = {"label_column": label_column}
    return source


def _format_of(fs: Any, fs_path: str, is_dir: bool, shown: Any) -> str:
    if is_dir:
        if fs.exists(f"{fs_path}/zarr.json") or fs.exists(f"{fs_path}/.zarray") or fs.exists(f"{fs_path}/.zgroup"):
            return "zarr"
        return "folder"
    ext = os.path.splitext(fs_path.lower())[1]
    if ext not in FILE_FORMATS:
        raise errors.DataError(f"{shown}: unknown data format '{ext or 'no extension'}' (known: "
                        f"{', '.join(sorted(set(FILE_FORMATS)))})")
    return FILE_FORMATS[ext]


def _open_format(fmt: str, fs: Any, fs_path: str, url: str, label_column: str | None,
                 options: Mapping[str, Any]) -> Source:
    if fmt == "npz":
        with fs.open(fs_path, "rb") as handle:
            with np.load(handle, allow_pickle=False) as npz:
                arrays = {k: npz[k] for k in npz.files}
        return _array_source(url, fmt, arrays, url)
    if fmt == "npy":
        with fs.open(fs_path, "rb") as handle:
            if handle.read(6) != b"\x93NUMPY":
                raise errors.DataError(f"{url}: not a NumPy .npy file (no .npy header)")
        if "file" in (fs.protocol if isinstance(fs.protocol, (tuple, list)) else (fs.protocol,)):
            array = np.load(fs_path, mmap_mode="r", allow_pickle=False)
        else:
            with fs.open(fs_path, "rb") as handle:
                array = np.load(handle, allow_pickle=False)
        return _array_source(url, fmt, {"main": array}, url)
    if fmt == "zarr":
        return _zarr_source(url, fs, fs_path, options)
    if fmt == "netcdf":
        import xarray as xr

        dataset = xr.open_dataset(fs_path if "://" not in url else fs.open(fs_path, "rb"), chunks={})
        return _xarray_source(dataset, url)
    if fmt in ("csv", "parquet"):
        return _table_source(fmt, fs, fs_path, url, label_column)
    raise errors.DataError(f"{url}: unsupported format {fmt}")


def _zarr_source(url: str, fs: Any, fs_path: str, options: Mapping[str, Any]) -> Source:
    import zarr

    location: Any = fs_path
    if "file" not in (fs.protocol if isinstance(fs.protocol, (tuple, list)) else (fs.protocol,)):
        location = zarr.storage.FsspecStore.from_url(url, storage_options=dict(options) or None)
    node = zarr.open(location, mode="r")
    if isinstance(node, zarr.Array):
        return _array_source(url, "zarr", {"main": node}, url)
    arrays = {name: array for name, array in node.arrays()}
    dims = {name: getattr(array.metadata, "dimension_names", None) for name, array in arrays.items()}
    named = {n: d for n, d in dims.items() if d}
    if named:  # xarray layout: keep the variables along the first dimension of the features
        main_name = "main" if "main" in arrays else next((a for a in MAIN_ALIASES if a in arrays), None)
        sample_dim = (named.get(main_name) or next(iter(named.values())))[0]
        arrays = {n: a for n, a in arrays.items() if dims.get(n) and dims[n][0] == sample_dim}
    return _array_source(url, "zarr", arrays, url)


def _table_columns(columns: list[str], dtypes: Mapping[str, Any], label_column: str | None,
                   url: str) -> tuple[list[str], str | None]:
    label = None
    if label_column is not None:
        if label_column not in columns:
            raise errors.DataError(f"{url}: no column '{label_column}' (columns: {', '.join(columns)})")
        label = label_column
    else:
        lower = {c.lower(): c for c in columns}
        label = next((lower[c] for c in LABEL_COLUMNS if c in lower), None)
    features = [c for c in columns if c != label]
    bad = [c for c in features if not _is_numeric(dtypes[c])]
    if bad:
        raise errors.DataError(f"{url}: non-numeric column(s) {', '.join(bad)} (name the label column "
                        "with --label-column, or drop text columns)")
    if not features:
        raise errors.DataError(f"{url}: no numeric feature columns")
    return features, label


def _is_numeric(dtype: Any) -> bool:
    """Numbers or booleans (numpy or pandas dtypes; text and objects are not)."""
    try:
        return np.dtype(dtype).kind in "biuf"
    except TypeError:  # pandas extension dtypes (string, categorical, nullable ints)
        import pandas as pd

        return bool(pd.api.types.is_numeric_dtype(dtype) or pd.api.types.is_bool_dtype(dtype))


class _LabelCodes:
    """Integer codes for text labels, stable across blocks (classes in order of appearance)."""

    def __init__(self) -> None:
        self.classes: dict[str, int] = {}

    def encode(self, values: Any) -> np.ndarray:
        out = np.empty(len(values), dtype=np.int64)
        for i, v in enumerate(values):
            out[i] = self.classes.setdefault(str(v), len(self.classes))
        return out


def _table_source(fmt: str, fs: Any, fs_path: str, url: str, label_column: str | None) -> Source:
    import pandas as pd

    if fmt == "csv":
        sep = "\t" if fs_path.lower().endswith(".tsv") else ","
        with fs.open(fs_path, "rb") as handle:
            head = pd.read_csv(handle, sep=sep, nrows=256)
        if head.empty:
            raise errors.DataError(f"{url}: the table has a header but no rows")
        dtypes = {c: head[c].dtype for c in head.columns}
    else:
        import pyarrow.parquet as pq

        with fs.open(fs_path, "rb") as handle:
            schema = pq.ParquetFile(handle).schema_arrow
        dtypes = {}
        for name, arrow_type in zip(schema.names, schema.types, strict=True):
            try:
                dtypes[name] = np.dtype(arrow_type.to_pandas_dtype())
            except (NotImplementedError, TypeError):
                dtypes[name] = np.dtype(object)
        head = None
    columns = [str(c) for c in dtypes]
    features, label = _table_columns(columns, dtypes, label_column, url)
    feature_dtype = np.dtype(np.float64)
    if fmt == "parquet":
        try:
            feature_dtype = np.result_type(*[np.dtype(dtypes[c]) for c in features])
        except TypeError:
            pass
    label_dtype = np.dtype(np.int64)
    text_label = label is not None and not _is_numeric(dtypes[label])
    if label is not None and not text_label and fmt == "parquet":
        label_dtype = np.dtype(dtypes[label])
    codes = _LabelCodes()
    header_lines = 1 if fmt == "csv" else None  # text tables: errors also name the line

    def to_block(frame: Any, first_row: int) -> dict[str, np.ndarray]:
        block = {"main": validation.numeric_columns(frame, features, feature_dtype, url, first_row, header_lines)}
        if label is not None:
            values = frame[label]
            if text_label:
                block["y"] = codes.encode(values.astype(str).to_numpy())
            else:
                block["y"] = validation.label_codes(values, url, label, first_row, header_lines, label_dtype)
        return block

    def stream(rows: int) -> Iterator[dict[str, np.ndarray]]:
        first_row = 0
        with fs.open(fs_path, "rb") as handle:
            if fmt == "csv":
                frames: Iterator[Any] = iter(pd.read_csv(handle, sep=sep, chunksize=rows))
            else:
                import pyarrow.parquet as pq

                frames = (batch.to_pandas() for batch in pq.ParquetFile(handle).iter_batches(batch_size=rows))
            for frame in frames:
                yield to_block(frame, first_row)
                first_row += len(frame)

    schema_out = {"main": (canonical_dtype(feature_dtype), (len(features),))}
    if label is not None:
        schema_out["y"] = (canonical_dtype(label_dtype), ())
    attrs = {"feature_names": features, "label_column": label}
    source = Source(url, fmt, schema_out, None, attrs, _stream=stream)
    source.attrs["_codes"] = codes  # filled while streaming
    del head
    return source


def _folder_source(fs: Any, fs_path: str, url: str, label_column: str | None,
                   options: Mapping[str, Any]) -> Source:
    entries = sorted(p for p in fs.ls(fs_path, detail=False)
                     if os.path.splitext(p.lower())[1] in FILE_FORMATS or fs.exists(f"{p}/zarr.json"))
    if not entries:
        raise errors.DataError(f"{url}: the folder holds no data files ({', '.join(sorted(set(FILE_FORMATS)))})")
    protocol = fs.protocol if isinstance(fs.protocol, str) else fs.protocol[0]
    parts = [open_source(p if protocol in ("file", "local") else f"{protocol}://{p}", label_column, options)
             for p in entries]
    schema = parts[0].schema
    for part in parts[1:]:
        if part.schema != schema:
            raise errors.DataError(f"{part.url}: its arrays {_describe(part.schema)} differ from "
                            f"{parts[0].url}'s {_describe(schema)}")

    def stream(rows: int) -> Iterator[dict[str, np.ndarray]]:
        for part in parts:
            yield from part.blocks(rows)

    n_rows = None if any(p.n_rows is None for p in parts) else sum(int(p.n_rows or 0) for p in parts)
    source = Source(url, "folder", schema, n_rows, {"parts": [p.url for p in parts], **parts[0].attrs},
                    _stream=stream)
    source.signature = file_signature(fs, fs_path)
    source.options = {"label_column": label_column}
    return source


def _describe(schema: Mapping[str, tuple[np.dtype, tuple[int, ...]]]) -> str:
    return ", ".join(f"{k} {d}{list(s)}" for k, (d, s) in schema.items())


# --------------------------------------------------------------------------- probing
