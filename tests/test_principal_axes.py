"""Principal axes from the blocked covariance: exact against an SVD, float64 for any input."""

from __future__ import annotations

import numpy as np
import pytest

from paradime_core.derived import pca
from paradime_core.derived import principal_axes as pa


def _correlated(n: int, d: int, seed: int = 0, dtype=np.float64) -> np.ndarray:
    rng = np.random.default_rng(seed)
    scales = np.linspace(3.0, 0.1, d)  # distinct variances, so the axes are well defined
    return ((rng.normal(size=(n, d)) * scales) @ np.linalg.qr(rng.normal(size=(d, d)))[0] + 5.0).astype(dtype)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_axes_match_the_svd_of_the_centred_data(dtype, monkeypatch):
    monkeypatch.setattr(pa, "_BLOCK_ROWS", 700)  # several blocks, the last one partial
    x = _correlated(2_500, 40, dtype=dtype)
    axes = pa.principal_axes(x, 5)
    centred = x.astype(np.float64) - x.astype(np.float64).mean(axis=0)
    _, singular, vt = np.linalg.svd(centred, full_matrices=False)
    np.testing.assert_allclose(axes.variances, singular[:5] ** 2 / (len(x) - 1), rtol=1e-9)
    # Same axes up to sign, and the sign rule: each axis's largest loading is positive.
    np.testing.assert_allclose(np.abs(axes.components @ vt[:5].T), np.eye(5), atol=1e-7)
    rows = np.arange(5)
    assert (axes.components[rows, np.abs(axes.components).argmax(axis=1)] > 0).all()
    scores = pa.project(x, axes)
    assert scores.dtype == np.float64 and scores.shape == (2_500, 5)
    np.testing.assert_allclose(scores.std(axis=0, ddof=1) ** 2, axes.variances, rtol=1e-4)


def test_integer_data_and_bad_component_count():
    x = np.random.default_rng(1).integers(0, 16, size=(400, 8))
    axes = pa.principal_axes(x, 2)
    ref = pa.principal_axes(x.astype(np.float64), 2)
    np.testing.assert_allclose(axes.components, ref.components)
    with pytest.raises(ValueError, match="n_components"):
        pa.principal_axes(x, 9)


def test_derived_pca_of_float32_data_equals_scikit_learn_exactly_and_whitens():
    """The float32 result is the one scikit-learn's exact solver gives (float64 inside), so
    seeded figures that start from a PCA layout did not move when the solver changed."""
    from sklearn.decomposition import PCA

    x = _correlated(3_000, 60, seed=2, dtype=np.float32)
    ref = PCA(n_components=3, svd_solver="full").fit_transform(x.astype(np.float64)).astype(np.float32)
    np.testing.assert_allclose(pca(x, n_components=3, scale="none"), ref, rtol=1e-6, atol=1e-6)
    white = pca(x, n_components=3, whiten=True, scale="none")
    np.testing.assert_allclose(white.std(axis=0, ddof=1), np.ones(3), rtol=1e-4)
