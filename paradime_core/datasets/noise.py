"""Larger-than-memory datasets from real rows plus small noise, generated block by block.

Row ``i`` of an ``n_rows``-row noisy copy of ``X`` (``n`` rows, ``d`` features) is

    Z_i = X_{i mod n} + noise * sigma ⊙ eps_i,    eps_i ~ N(0, I_d),

where ``sigma_j`` is the standard deviation of feature ``j`` over ``X`` (constant features get
no noise). The real rows are taken cyclically, so rows ``0..n-1`` are the real rows (plus
noise) in their original order and ``source = i mod n`` gives each row's label ``y[source]``.

``eps`` is drawn in fixed tiles of ``TILE_ROWS`` rows, tile ``t`` from
``numpy.random.default_rng([seed, t])``: any row range can be generated on its own
(:func:`noisy_rows`, e.g. one Dask/Zarr chunk per task), and the output does not depend on
``chunk_rows``.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import NamedTuple

import numpy as np

from paradime_core.errors import DataError

TILE_ROWS = 4096
_STATS_CHUNK_ROWS = 16_384


class NoisyBlock(NamedTuple):
    """Rows ``start .. start + len(X) - 1`` of a noisy copy; ``source`` indexes the real rows."""

    start: int
    X: np.ndarray
    source: np.ndarray


def feature_std(X: np.ndarray) -> np.ndarray:
    """Per-feature population standard deviation, two passes over row chunks in float64."""
    n = len(X)
    total = np.zeros(X.shape[1])
    for a in range(0, n, _STATS_CHUNK_ROWS):
        total += X[a : a + _STATS_CHUNK_ROWS].sum(axis=0, dtype=np.float64)
    mean = total / n
    squares = np.zeros(X.shape[1])
    for a in range(0, n, _STATS_CHUNK_ROWS):
        centred = X[a : a + _STATS_CHUNK_ROWS].astype(np.float64) - mean
        squares += np.einsum("ij,ij->j", centred, centred)
    return np.sqrt(squares / n)


def _check_source(X: np.ndarray) -> np.ndarray:
    X = np.asarray(X)
    if X.ndim != 2 or X.shape[0] == 0 or X.shape[1] == 0:
        raise DataError(f"X: expected a non-empty 2-D array (rows x features), got {X.shape}")
    if not (np.issubdtype(X.dtype, np.integer) or np.issubdtype(X.dtype, np.floating)):
        raise DataError(f"X: expected a numeric array, got dtype {X.dtype}")
    if np.issubdtype(X.dtype, np.floating) and not np.isfinite(X).all():
        raise DataError("X: holds NaN or infinite values")
    return X


def _check_options(noise: float, seed: int, dtype: np.dtype) -> None:
    if not np.isfinite(noise) or noise < 0:
        raise ValueError(f"noise must be a finite number >= 0, got {noise}")
    if not isinstance(seed, int | np.integer) or seed < 0:
        raise ValueError(f"seed must be an integer >= 0, got {seed!r}")
    if not (np.issubdtype(dtype, np.integer) or np.issubdtype(dtype, np.floating)):
        raise TypeError(f"dtype must be a numeric dtype, got {dtype}")


def _add_noise(values: np.ndarray, scale: np.ndarray, seed: int, start: int) -> None:
    """``values += scale * eps`` in place for rows ``start..start+len(values)-1`` of the
    tiled N(0, 1) stream (only one tile of noise is in memory at a time)."""
    stop = start + len(values)
    for tile in range(start // TILE_ROWS, (stop - 1) // TILE_ROWS + 1):
        t0 = tile * TILE_ROWS
        eps = np.random.default_rng([int(seed), tile]).standard_normal(
            (TILE_ROWS, values.shape[1]), dtype=np.float32
        )
        a, b = max(start, t0), min(stop, t0 + TILE_ROWS)
        eps_rows = eps[a - t0 : b - t0]
        eps_rows *= scale
        values[a - start : b - start] += eps_rows


def _block(
    X: np.ndarray, scale: np.ndarray, start: int, stop: int, seed: int, dtype: np.dtype
) -> NoisyBlock:
    source = np.arange(start, stop, dtype=np.int64) % len(X)
    if not scale.any():
        return NoisyBlock(start, X[source].astype(dtype, copy=False), source)
    work = np.float64 if dtype == np.float64 else np.float32
    values = X[source].astype(work, copy=False)
    _add_noise(values, scale.astype(work), seed, start)
    if np.issubdtype(dtype, np.integer):
        info = np.iinfo(dtype)
        np.rint(values, out=values)
        np.clip(values, info.min, info.max, out=values)
    return NoisyBlock(start, values.astype(dtype, copy=False), source)


def noisy_rows(
    X: np.ndarray,
    start: int,
    stop: int,
    *,
    noise: float = 0.05,
    seed: int = 0,
    dtype: np.dtype | type | str = np.float32,
    std: np.ndarray | None = None,
) -> np.ndarray:
    """Rows ``start..stop-1`` of the noisy copy of ``X`` (the formula in the module docstring).

    Pass ``std`` (from :func:`feature_std`) to avoid recomputing it for every block.
    Integer ``dtype`` rounds and clips to its range.
    """
    X = _check_source(X)
    dtype = np.dtype(dtype)
    _check_options(noise, seed, dtype)
    if not 0 <= start <= stop:
        raise ValueError(f"need 0 <= start <= stop, got start={start}, stop={stop}")
    sigma = feature_std(X) if std is None else np.asarray(std, dtype=np.float64)
    if sigma.shape != (X.shape[1],):
        raise ValueError(f"std must have shape ({X.shape[1]},), got {sigma.shape}")
    if start == stop:
        return np.empty((0, X.shape[1]), dtype=dtype)
    scale = (noise * sigma).astype(np.float32)
    return _block(X, scale, start, stop, seed, dtype).X


def make_noisy_copies(
    X: np.ndarray,
    n_rows: int,
    *,
    noise: float = 0.05,
    seed: int = 0,
    chunk_rows: int = 65_536,
    dtype: np.dtype | type | str = np.float32,
) -> Iterator[NoisyBlock]:
    """Iterate over ``n_rows`` noisy copies of the rows of ``X`` in blocks of ``chunk_rows``.

    Yields :class:`NoisyBlock` ``(start, X, source)``; only one block is in memory at a time
    (about ``chunk_rows * d * 4`` bytes for float32, plus the tile of noise). Arguments are
    checked at the call, not at the first ``next()``. Example, a covtype-sized set::

        for block in make_noisy_copies(X20k, 581_012, noise=0.05, chunk_rows=100_000):
            store[block.start : block.start + len(block.X)] = block.X
    """
    X = _check_source(X)
    dtype = np.dtype(dtype)
    _check_options(noise, seed, dtype)
    if not isinstance(n_rows, int | np.integer) or n_rows < 0:
        raise ValueError(f"n_rows must be an integer >= 0, got {n_rows!r}")
    if not isinstance(chunk_rows, int | np.integer) or chunk_rows < 1:
        raise ValueError(f"chunk_rows must be an integer >= 1, got {chunk_rows!r}")
    scale = (noise * feature_std(X)).astype(np.float32)

    def blocks() -> Iterator[NoisyBlock]:
        for start in range(0, int(n_rows), int(chunk_rows)):
            yield _block(X, scale, start, min(start + int(chunk_rows), int(n_rows)), seed, dtype)

    return blocks()
