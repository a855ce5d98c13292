"""Derived data functions: pca against scikit-learn, spectral on block graphs, utilities."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import scipy.sparse as sp

from paradime_core.derived import pca, select_columns, spectral, standardize
from paradime_core.errors import DataError, SpecError
from paradime_core.relation_data import LabelEquality, NeighborGraph
from paradime_core.spec import DerivedDataSpec
from paradime_core.spec.blocks import build_data_function
from paradime_core.spec.registry import DATA_FUNCTIONS


def _data(n=300, d=12, seed=0):
    rng = np.random.default_rng(seed)
    return rng.normal(size=(n, d)) @ rng.normal(size=(d, d))


def test_pca_matches_sklearn_raw_and_unit():
    from sklearn.decomposition import PCA

    x = _data()
    ref = PCA(n_components=3).fit_transform(x)
    raw = pca(x, n_components=3, scale="none")
    assert raw.dtype == np.float32
    np.testing.assert_allclose(raw, ref, rtol=1e-4, atol=1e-4)
    unit = pca(x, n_components=3)
    np.testing.assert_allclose(unit[:, 0].std(), 1.0, rtol=1e-5)
    np.testing.assert_allclose(unit, ref / ref[:, 0].std(), rtol=1e-4, atol=1e-5)


def test_pca_whiten_and_wide_data_randomized():
    from sklearn.decomposition import PCA

    x = _data(n=120, d=600, seed=1)
    out = pca(x, n_components=2, whiten=True, scale="none")
    ref = PCA(n_components=2, whiten=True, svd_solver="randomized", random_state=0).fit_transform(x)
    np.testing.assert_allclose(out, ref, rtol=1e-3, atol=1e-3)
    np.testing.assert_allclose(out.std(axis=0, ddof=1), [1.0, 1.0], rtol=1e-3)


def test_pca_bad_options():
    with pytest.raises(ValueError, match="n_components"):
        pca(_data(n=5, d=3), n_components=4)
    with pytest.raises(SpecError, match=r"^derived_data\[0\]\.options\.scale: expected one of unit, none, got 'minmax'$"):
        _check("pca", scale="minmax")
    with pytest.raises(SpecError, match=r"^derived_data\[0\]\.options\.n_components: expected an integer >= 1, got 0$"):
        _check("pca", n_components=0)
    with pytest.raises(SpecError, match=r"options\.n_components: expected an integer >= 1, got 2\.0$"):
        _check("pca", n_components=2.0)


def _check(func: str, keys: tuple = (("data", "main"),), **options) -> None:
    """Check ``options`` of data function ``func`` as a spec's ``derived_data[0]``."""
    build_data_function(DerivedDataSpec("d", func, list(keys), options), "derived_data[0]")


def _two_block_graph(n_per=60, p_in=0.3, p_out=0.01, seed=0):
    rng = np.random.default_rng(seed)
    n = 2 * n_per
    labels = np.repeat([0, 1], n_per)
    same = labels[:, None] == labels[None, :]
    prob = np.where(same, p_in, p_out)
    upper = np.triu(rng.random((n, n)) < prob, 1)
    adjacency = (upper | upper.T).astype(np.float64)
    return sp.csr_array(adjacency), labels


@pytest.mark.parametrize("form", ["csr", "dense", "neighbors"])
def test_spectral_separates_two_blocks(form):
    matrix, labels = _two_block_graph()
    if form == "dense":
        rel = matrix.toarray()
    elif form == "neighbors":  # 10 strongest links per row (mostly in-block) as a NeighborGraph
        dense = matrix.toarray() + np.random.default_rng(1).random(matrix.shape) * 0.01
        idx = np.argsort(-dense, axis=1)[:, :10]
        rel = NeighborGraph(idx, np.take_along_axis(dense, idx, axis=1))
    else:
        rel = matrix
    emb = spectral(rel, n_components=2)
    assert emb.shape == (120, 2)
    assert emb.dtype == np.float32
    np.testing.assert_allclose(emb.std(axis=0), [1, 1], rtol=1e-4)
    first = emb[:, 0]
    # the Fiedler vector's sign splits the blocks
    agreement = np.mean((first > 0) == (labels == labels[np.argmax(first)]))
    assert agreement == 1.0


def test_spectral_matches_sklearn_up_to_sign():
    from sklearn.manifold import spectral_embedding

    matrix, _ = _two_block_graph(n_per=80, seed=3)
    ours = spectral(matrix, n_components=2).astype(np.float64)
    ref = spectral_embedding(matrix, n_components=2, drop_first=True, random_state=0)
    for c in range(2):
        r = (ref[:, c] - ref[:, c].mean()) / ref[:, c].std()
        corr = abs(np.corrcoef(ours[:, c], r)[0, 1])
        assert corr > 0.999


def test_spectral_disconnected_graph_warns_and_separates():
    matrix, labels = _two_block_graph(p_out=0.0, seed=2)
    with pytest.warns(RuntimeWarning, match="2 connected components"):
        emb = spectral(matrix, n_components=2)
    assert np.all(np.isfinite(emb))
    first = emb[:, 0]
    assert np.mean((first > 0) == (labels == labels[np.argmax(first)])) == 1.0


def test_spectral_isolated_item_and_lobpcg():
    matrix, _ = _two_block_graph(seed=4)
    dense = matrix.toarray()
    dense[0, :] = dense[:, 0] = 0.0  # item 0 has no edges
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        emb = spectral(sp.csr_array(dense), n_components=2)
    assert np.all(np.isfinite(emb))
    connected, _ = _two_block_graph(seed=5)
    a = spectral(connected, n_components=2, solver="eigsh")
    b = spectral(connected, n_components=2, solver="lobpcg")
    for c in range(2):
        assert abs(np.corrcoef(a[:, c], b[:, c])[0, 1]) > 0.999


def test_spectral_binary_weights_and_errors():
    matrix, labels = _two_block_graph(seed=6)
    weighted = matrix.copy()
    weighted.data = weighted.data * 5.0
    np.testing.assert_allclose(spectral(weighted, weights="binary"), spectral(matrix), atol=1e-4)
    with pytest.raises(DataError, match="label-equality"):
        spectral(LabelEquality(labels))
    negative = matrix.copy()
    negative.data[0] = -1.0
    with pytest.raises(DataError, match="non-negative"):
        spectral(negative)
    with pytest.raises(SpecError, match=r"options\.weights: expected one of values, binary, got 'gauss'"):
        _check("spectral", keys=(("rels", "p"),), weights="gauss")
    with pytest.raises(SpecError, match=r"options\.solver: expected one of auto, eigsh, lobpcg, got 'arpack'"):
        _check("spectral", keys=(("rels", "p"),), solver="arpack")


def test_standardize_and_select_columns():
    x = np.array([[1.0, 5.0, 2.0], [3.0, 5.0, 4.0], [5.0, 5.0, 9.0]])
    z = standardize(x)
    np.testing.assert_allclose(z.mean(axis=0), 0, atol=1e-6)
    np.testing.assert_allclose(z.std(axis=0), [1, 0, 1], atol=1e-6)
    np.testing.assert_allclose(z[:, 0], [-1.2247449, 0, 1.2247449], rtol=1e-6)
    np.testing.assert_array_equal(select_columns(x, columns=[2, 0]), x[:, [2, 0]])
    np.testing.assert_array_equal(select_columns(x, columns=-1), x[:, [2]])
    with pytest.raises(ValueError, match="out of range"):
        select_columns(x, columns=[3])
    with pytest.raises(SpecError, match=r"options\.columns: expected a list of integers with at least 1 item or an integer, got \['a'\]"):
        _check("select_columns", columns=["a"])
    with pytest.raises(SpecError, match=r"options\.columns: expected .*, got \[\]"):
        _check("select_columns", columns=[])
    _check("select_columns", columns=[0, 2])  # an option of a spec, beside the one input


def test_registered():
    for name in ("pca", "spectral", "standardize", "select_columns"):
        assert name in DATA_FUNCTIONS
