"""Shared test settings: one torch thread, headless matplotlib, small fixed datasets."""

from __future__ import annotations

import os

os.environ.setdefault("MPLBACKEND", "Agg")

import functools  # noqa: E402

import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

torch.set_num_threads(1)


@functools.cache
def _digits(n: int) -> tuple[np.ndarray, np.ndarray]:
    from sklearn.datasets import load_digits

    X, y = load_digits(return_X_y=True)
    rows = np.random.default_rng(0).choice(len(X), size=n, replace=False)
    return (X[rows] / 16.0).astype(np.float32), y[rows].astype(np.int64)


@pytest.fixture
def digits() -> tuple[np.ndarray, np.ndarray]:
    """300 random scikit-learn digits scaled to [0, 1] (float32) and their labels (a fresh copy)."""
    X, y = _digits(300)
    return X.copy(), y.copy()
