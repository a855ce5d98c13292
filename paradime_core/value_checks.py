"""Values that do not survive the change to the dtype a computation uses.

kNN search and training compute in float32. A float64 value above float32's largest finite
value (about 3.4e38) becomes ``inf`` there, and NaN or inf rows give meaningless
neighbours, relations and losses. The checks here find the first such cell, so a caller can
refuse the data before any work, naming the row and column.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

FLOAT32_MAX = float(np.finfo(np.float32).max)
"""The largest finite float32 value; larger magnitudes overflow to inf when cast."""


class BadCell(NamedTuple):
    """The first unusable cell of a block: its row and column (0-based), value and why."""

    row: int
    column: int
    value: float
    problem: str

    def describe(self) -> str:
        """``row R, column C: <problem>``."""
        return f"row {self.row}, column {self.column}: {self.problem}"


def first_bad_cell(block: np.ndarray, offset: int = 0) -> BadCell | None:
    """The first cell of ``block`` (rows x anything) that is NaN, inf, or outside float32's
    range, scanning rows in order; None if every cell is usable.

    Integer and boolean blocks always fit: float32 covers every int64 and uint64 magnitude
    (rounded to 24 bits of precision).

    Parameters
    ----------
    block : ndarray
        Rows of values; dimensions after the first are flattened into columns.
    offset : int
        Row number of the block's first row in the whole array (added to the row reported).
    """
    values = np.asarray(block)
    if values.dtype.kind not in "fc" or values.size == 0:
        return None
    flat = values.reshape(len(values), -1)
    if values.dtype.kind == "c":
        raise TypeError("complex values cannot be checked as real numbers")
    if values.dtype.itemsize <= 4:
        ok = np.isfinite(flat)
    else:
        with np.errstate(invalid="ignore"):
            ok = np.abs(flat) <= FLOAT32_MAX  # False for NaN, inf and overflowing values
    if ok.all():
        return None
    rows = np.flatnonzero(~ok.all(axis=1))
    row = int(rows[0])
    column = int(np.flatnonzero(~ok[row])[0])
    value = float(flat[row, column])
    if np.isnan(value):
        problem = "NaN (a missing value)"
    elif np.isinf(value):
        problem = f"{value} (not a finite number)"
    else:
        problem = (f"{value:g} does not fit float32 (|x| <= {FLOAT32_MAX:.4g}), in which "
                   "neighbours and training are computed")
    return BadCell(offset + row, column, value, problem)


def all_rows_identical(X: np.ndarray, block_rows: int = 65_536) -> bool:
    """Whether every row of ``X`` (n >= 1 rows) equals its first row, compared in row blocks.

    Parameters
    ----------
    X : ndarray
        Rows of values.
    block_rows : int
        Rows compared at a time (memory stays flat).
    """
    first = X[:1]
    for start in range(0, X.shape[0], block_rows):
        if not np.array_equal(X[start:start + block_rows], np.broadcast_to(first, X[start:start + block_rows].shape)):
            return False
    return True


def count_bad_rows(block: np.ndarray) -> int:
    """Number of rows of ``block`` holding a NaN, inf or out-of-float32-range value.

    Parameters
    ----------
    block : ndarray
        Rows of values (float; other dtypes have no bad rows).
    """
    values = np.asarray(block)
    if values.dtype.kind != "f" or values.size == 0:
        return 0
    with np.errstate(invalid="ignore"):
        ok = np.abs(values.reshape(len(values), -1)) <= FLOAT32_MAX
    return int((~ok.all(axis=1)).sum())
