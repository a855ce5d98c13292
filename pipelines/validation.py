"""Checks of a user's data as it is read: every block of rows, every table cell, every read.

Ingest refuses data that would change type or meaning on its way into a computation, before
any stage runs: NaN and inf, float values outside float32's range (kNN search and training
compute in float32, where they become inf), unsigned integers beyond int64 (labels are used
as int64), text in a numeric column at any row (not only the rows a table's types were
guessed from), label values that are not whole numbers. Each refusal is one
:class:`~paradime_core.errors.DataError` naming the file, the row and the column.

A file that cannot be parsed (empty, truncated, corrupt, ragged rows) is reported as one
error naming the file and the reader's own reason, wherever the reading fails: when the
file is opened or while its rows are streamed.
"""

from __future__ import annotations

import contextlib
import zipfile
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import numpy as np

from paradime_core.errors import DataError, ParadimeError
from paradime_core.value_checks import first_bad_cell

INT64_MAX = np.iinfo(np.int64).max

READ_ERRORS: tuple[type[BaseException], ...] = (OSError, ValueError, KeyError, TypeError, EOFError,
                                                IndexError, RuntimeError, zipfile.BadZipFile)
"""What readers (numpy, pandas, pyarrow, zarr, xarray, codecs) raise for a file they cannot
parse: pandas' ParserError, pyarrow's ArrowInvalid, UnicodeDecodeError, a codec's
RuntimeError on a damaged chunk. Caught only around reading a user's file."""


def check_block(block: Mapping[str, np.ndarray], offset: int, where: str) -> None:
    """Refuse a block of rows holding a value that does not fit the dtype it is computed in.

    Parameters
    ----------
    block : Mapping
        Array name -> rows (first axis: items).
    offset : int
        Row number of the block's first row in the whole source.
    where : str
        The source's path or URL, named in the error.
    """
    for name, values in block.items():
        kind = values.dtype.kind
        if kind == "f":
            bad = first_bad_cell(values, offset)
            if bad is not None:
                raise DataError(f"{where}: array '{name}' {bad.describe()}")
        elif kind == "u" and values.dtype.itemsize >= 8 and values.size:
            flat = values.reshape(len(values), -1)
            over = flat > INT64_MAX
            if over.any():
                row = int(np.flatnonzero(over.any(axis=1))[0])
                column = int(np.flatnonzero(over[row])[0])
                raise DataError(f"{where}: array '{name}' row {offset + row}, column {column}: "
                                f"{int(flat[row, column])} does not fit int64")


@contextlib.contextmanager
def reading(where: str, what: str = "data") -> Iterator[None]:
    """Turn a reader's parse error inside the block into one :class:`DataError` naming
    ``where``; paradime's own errors pass unchanged.

    Parameters
    ----------
    where : str
        The file's path or URL.
    what : str
        The format being read (``npz``, ``csv``...), named in the message.
    """
    try:
        yield
    except ParadimeError:
        raise
    except READ_ERRORS as exc:
        reason = " ".join(str(exc).split()) or "no detail"
        raise DataError(f"{where}: cannot read as {what} ({type(exc).__name__}: {reason})") from None


def checked_blocks(blocks: Iterator[dict[str, np.ndarray]], where: str, what: str
                   ) -> Iterator[dict[str, np.ndarray]]:
    """``blocks`` with every block checked (:func:`check_block`) and read errors reported
    (:func:`reading`), row numbers counted from the first block.

    Parameters
    ----------
    blocks : Iterator
        Blocks of rows of one source.
    where : str
        The source's path or URL.
    what : str
        Its format.
    """
    offset = 0
    iterator = iter(blocks)
    while True:
        with reading(where, what):
            block = next(iterator, None)
        if block is None:
            return
        check_block(block, offset, where)
        yield block
        offset += len(next(iter(block.values()))) if block else 0


def numeric_columns(frame: Any, columns: Sequence[str], dtype: np.dtype, where: str, first_row: int,
                    header_lines: int | None) -> np.ndarray:
    """The ``columns`` of a table block as one ``dtype`` array, or a :class:`DataError` naming
    the first cell that is not a number.

    Parameters
    ----------
    frame : pandas.DataFrame
        One block of the table.
    columns : Sequence[str]
        The feature columns.
    dtype : numpy.dtype
        The features' dtype.
    where : str
        The table's path or URL.
    first_row : int
        Data row number (0-based, header excluded) of the block's first row.
    header_lines : int or None
        Lines before the first data row in a text table (its line numbers are named too);
        None for binary tables.
    """
    try:
        array = frame[list(columns)].to_numpy(dtype=dtype)
    except (ValueError, TypeError):
        row, column, value = _first_text_cell(frame, columns)
        if row is None:
            raise
        raise DataError(f"{where}: {_row_label(first_row + row, header_lines)}, column '{column}': "
                        f"{value!r} is not a number") from None
    bad = first_bad_cell(array)
    if bad is not None:  # named by column here (a missing cell of a short row is NaN)
        raise DataError(f"{where}: {_row_label(first_row + bad.row, header_lines)}, column "
                        f"'{columns[bad.column]}': {bad.problem}")
    return array


def label_codes(values: Any, where: str, column: str, first_row: int, header_lines: int | None,
                dtype: np.dtype) -> np.ndarray:
    """A numeric label column as whole numbers of ``dtype``; missing, text or fractional labels
    are refused naming the row.

    Parameters
    ----------
    values : pandas.Series
        The label column of one block.
    where : str
        The table's path or URL.
    column : str
        The label column's name.
    first_row : int
        Data row number of the block's first row.
    header_lines : int or None
        Lines before the first data row in a text table; None for binary tables.
    dtype : numpy.dtype
        The labels' dtype.
    """
    import pandas as pd

    numbers = pd.to_numeric(values, errors="coerce")
    bad = numbers.isna().to_numpy()
    if bad.any():
        row = int(np.flatnonzero(bad)[0])
        shown = values.iloc[row]
        problem = "is missing" if pd.isna(shown) else f"{shown!r} is not a number"
        raise DataError(f"{where}: {_row_label(first_row + row, header_lines)}, label column '{column}': "
                        f"{problem}")
    array = numbers.to_numpy()
    if np.dtype(dtype).kind in "iu" and array.dtype.kind == "f":
        unfit = (array != np.round(array)) | (np.abs(array) >= 2.0**63)  # fractional, or beyond int64
        if unfit.any():
            row = int(np.flatnonzero(unfit)[0])
            raise DataError(f"{where}: {_row_label(first_row + row, header_lines)}, label column '{column}': "
                            f"{float(array[row])!r} is not a whole-number class label within int64")
    return array.astype(dtype)


def _first_text_cell(frame: Any, columns: Sequence[str]) -> tuple[int | None, str, Any]:
    import pandas as pd

    best: tuple[int | None, str, Any] = (None, "", None)
    for column in columns:
        values = frame[column]
        numbers = pd.to_numeric(values, errors="coerce")
        bad = (numbers.isna() & values.notna()).to_numpy()
        if bad.any():
            row = int(np.flatnonzero(bad)[0])
            if best[0] is None or row < best[0]:
                best = (row, str(column), values.iloc[row])
    return best


def _row_label(row: int, header_lines: int | None) -> str:
    return f"row {row}" if header_lines is None else f"row {row} (line {row + header_lines + 1})"
