"""Tests of the relation transforms (paradime_core/relations/transforms.py) against formulas and references."""

from __future__ import annotations

import time
import warnings

import numpy as np
import pytest
import scipy.sparse as sp
import torch
from scipy.sparse.csgraph import shortest_path
from sklearn.datasets import load_digits
from sklearn.neighbors import NearestNeighbors

from paradime_core.errors import DataError, SpecError
from paradime_core.relation_data import LabelEquality, NeighborGraph
from paradime_core.relations.transforms import (
    Cauchy,
    Connect,
    Geodesic,
    Normalize,
    NormalizeRows,
    Perplexity,
    Symmetrize,
    TDist,
    _connectivity_radius,
    fit_ab,
)
from paradime_core.spec.blocks import build
from paradime_core.spec.registry import TRANSFORMS


# --------------------------------------------------------------------------- helpers
def knn_graph(x: np.ndarray, k: int) -> NeighborGraph:
    """k nearest neighbours of every row (self included, as a kNN query of the data returns)."""
    distances, indices = NearestNeighbors(n_neighbors=k).fit(x).kneighbors(x)
    return NeighborGraph(indices, distances)


def row_perplexity(p: np.ndarray) -> np.ndarray:
    """2^H with H = -sum_j p_j log2 p_j, per row."""
    logs = np.log2(np.where(p > 0, p, 1.0))
    return 2.0 ** (-(p * logs).sum(axis=1))


def assert_no_self(graph: NeighborGraph) -> None:
    assert not np.any(graph.indices == np.arange(graph.n_items)[:, None])


@pytest.fixture(scope="module")
def digits() -> np.ndarray:
    return load_digits().data.astype(np.float64)


DIGIT_CASES = [
    pytest.param(1.0, False, id="scale0-16"),
    pytest.param(1 / 16, False, id="scale0-1"),
    pytest.param(1000.0, False, id="scale-x1000"),
    pytest.param(1.0, True, id="scale0-16-dups"),
    pytest.param(1 / 16, True, id="scale0-1-dups"),
    pytest.param(1000.0, True, id="scale-x1000-dups"),
]


DUPLICATED = np.random.default_rng(0).choice(1797, 50, replace=False)


def digits_case(x: np.ndarray, scale: float, duplicates: bool) -> np.ndarray:
    """Digits times ``scale``, optionally with 50 rows appended again (rows ``DUPLICATED``)."""
    x = x * scale
    return np.concatenate([x, x[DUPLICATED]]) if duplicates else x


# --------------------------------------------------------------------------- perplexity
def test_perplexity_row_entropy_equals_log2_perplexity():
    rng = np.random.default_rng(1)
    distances = np.sort(rng.gamma(2.0, 1.5, size=(300, 40)), axis=1)
    indices = (np.arange(300)[:, None] + 1 + np.arange(40)) % 300  # never the row itself
    out = Perplexity(perplexity=10)(NeighborGraph(indices, distances))
    p = out.values
    entropy = -(p * np.log2(p)).sum(axis=1)
    np.testing.assert_allclose(entropy, np.log2(10), atol=2e-4)  # bisection tol: 1e-4 nats
    np.testing.assert_allclose(p.sum(axis=1), 1.0, atol=1e-12)
    # The formula: p_j|i proportional to exp(-beta_i d_ij^2), so log p is linear in d^2 per row.
    slope = np.polyfit(distances[0] ** 2, np.log(p[0]), 1)[0]
    np.testing.assert_allclose(np.log(p[0]), np.log(p[0, 0]) + slope * (distances[0] ** 2 - distances[0, 0] ** 2),
                               atol=1e-8)


@pytest.mark.parametrize("scale, duplicates", DIGIT_CASES)
def test_perplexity_calibration_on_digits(digits, scale, duplicates):
    x = digits_case(digits, scale, duplicates)
    graph = knn_graph(x, 91)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        out = Perplexity(30)(graph)
    assert isinstance(out, NeighborGraph)
    assert out.values.shape == (len(x), 90)
    assert_no_self(out)
    assert np.all(np.isfinite(out.values)) and out.values.min() >= 0
    np.testing.assert_allclose(out.values.sum(axis=1), 1.0, atol=1e-9)
    perplexities = row_perplexity(out.values)
    assert np.abs(perplexities / 30 - 1).max() < 0.01
    if duplicates:  # a duplicated row's twin (distance 0) is its most probable neighbour
        copies = np.arange(len(digits), len(x))
        best = out.indices[copies, np.argmax(out.values[copies], axis=1)]
        np.testing.assert_array_equal(best, DUPLICATED)


def test_perplexity_matches_sklearn_binary_search(digits):
    from sklearn.manifold._utils import _binary_search_perplexity

    graph = knn_graph(digits, 91)
    ours = Perplexity(30)(graph)
    reference = _binary_search_perplexity((graph.values[:, 1:] ** 2).astype(np.float32), 30.0, 0)
    # kNN self sits in column 0 for data without duplicates, so both are (n, 90) in the same order.
    np.testing.assert_array_equal(ours.indices, graph.indices[:, 1:])
    np.testing.assert_allclose(ours.values, reference, atol=2e-4)


def test_perplexity_is_scale_invariant(digits):
    graph = knn_graph(digits[:500], 31)
    small = Perplexity(10)(NeighborGraph(graph.indices, graph.values * 1e-3))
    large = Perplexity(10)(NeighborGraph(graph.indices, graph.values * 1e4))
    np.testing.assert_allclose(small.values, large.values, atol=1e-5)


def test_perplexity_dense_input_ignores_diagonal():
    rng = np.random.default_rng(2)
    x = rng.normal(size=(60, 5))
    dense = np.linalg.norm(x[:, None] - x[None], axis=-1)
    out = Perplexity(8)(dense)
    assert out.shape == (60, 60)
    np.testing.assert_array_equal(np.diag(out), 0.0)
    np.testing.assert_allclose(out.sum(axis=1), 1.0, atol=1e-12)
    assert np.abs(row_perplexity(out) / 8 - 1).max() < 1e-3
    # The same rows given as a full neighbour graph (self first) give the same probabilities.
    order = np.argsort(dense, axis=1)
    graph_out = Perplexity(8)(NeighborGraph(order, np.take_along_axis(dense, order, 1)))
    np.testing.assert_allclose(graph_out.values, np.take_along_axis(out, order[:, 1:], 1), atol=1e-9)


def test_perplexity_sparse_rows_of_varying_length():
    rng = np.random.default_rng(3)
    n = 200
    lengths = rng.integers(20, 60, size=n)
    rows = np.repeat(np.arange(n), lengths)
    cols = np.concatenate([rng.choice(np.delete(np.arange(n), i), m, replace=False) for i, m in enumerate(lengths)])
    matrix = sp.csr_array((rng.gamma(3.0, 2.0, size=len(rows)), (rows, cols)), shape=(n, n))
    out = Perplexity(5)(matrix)
    assert isinstance(out, sp.csr_array) and out.nnz == matrix.nnz
    dense = out.toarray()
    np.testing.assert_allclose(dense.sum(axis=1), 1.0, atol=1e-12)
    assert np.abs(row_perplexity(dense) / 5 - 1).max() < 1e-3


def test_perplexity_too_few_neighbours_warns_and_clamps():
    rng = np.random.default_rng(4)
    graph = knn_graph(rng.normal(size=(100, 3)), 11)  # 10 neighbours besides self
    with pytest.warns(UserWarning, match="needs more neighbours"):
        out = Perplexity(30)(graph)
    assert np.all(np.isfinite(out.values))
    np.testing.assert_allclose(row_perplexity(out.values), 9.0, rtol=1e-3)


def test_identical_points_give_uniform_finite_rows():
    n, k = 40, 20
    indices = (np.arange(n)[:, None] + np.arange(k)) % n  # self first, then 19 others
    for distance in (0.0, 2.0):  # all identical points / all equidistant neighbours
        graph = NeighborGraph(indices, np.where(indices == np.arange(n)[:, None], 0.0, distance))
        with pytest.warns(UserWarning, match="could not reach"):
            p = Perplexity(5)(graph)
        assert p.values.shape == (n, k - 1)
        np.testing.assert_allclose(p.values, 1 / (k - 1))
        np.testing.assert_allclose(Connect()(graph).values, 1.0)


def test_perplexity_suggested_neighbors_and_options():
    assert Perplexity(30).suggested_neighbors() == 91
    assert Perplexity(5.5).suggested_neighbors() == 17
    for bad in (0, -1.0, float("nan"), float("inf"), "30", True):
        with pytest.raises(SpecError, match=r"^t\.options\.perplexity: expected a number > 0, got "):
            build(TRANSFORMS, "perplexity", {"perplexity": bad}, "t")
    with pytest.raises(SpecError, match=r"^t\.options\.bracket: expected a list \[a number >= 0, a number >= 0\]"):
        build(TRANSFORMS, "perplexity", {"bracket": [-1, 2]}, "t")
    with pytest.raises(SpecError, match=r"^t\.options: transform 'perplexity': bracket must be \[low, high\] with low < high"):
        build(TRANSFORMS, "perplexity", {"bracket": [2, 1]}, "t")
    assert build(TRANSFORMS, "perplexity", {"bracket": [0, 1], "method": "brentq"}, "t").perplexity == 30.0


def test_perplexity_timing_70000_rows():
    rng = np.random.default_rng(5)
    n, k = 70_000, 90
    distances = np.sort(rng.gamma(4.0, 1.0, size=(n, k)), axis=1).astype(np.float32)
    indices = (np.arange(n)[:, None] + rng.integers(1, n, size=(n, k))) % n  # never self
    graph = NeighborGraph(indices, distances)
    start, cpu = time.perf_counter(), time.process_time()
    out = Perplexity(30)(graph)
    elapsed, cpu = time.perf_counter() - start, time.process_time() - cpu
    print(f"\nperplexity on {n} x {k} neighbour rows: {elapsed:.2f} s wall, {cpu:.2f} s CPU")
    assert np.abs(row_perplexity(out.values.astype(np.float64)) / 30 - 1).max() < 0.01
    assert elapsed < 20  # about 1.5-2 s on the 2-core machine; generous against load


# --------------------------------------------------------------------------- connect
@pytest.mark.parametrize("scale, duplicates", DIGIT_CASES)
def test_connect_calibration_on_digits(digits, scale, duplicates):
    x = digits_case(digits, scale, duplicates)
    graph = knn_graph(x, 15)
    out = Connect()(graph)
    assert isinstance(out, NeighborGraph)
    assert out.values.shape == (len(x), 14)
    assert_no_self(out)
    assert np.all(np.isfinite(out.values))
    assert out.values.min() >= 0 and out.values.max() <= 1
    np.testing.assert_allclose(out.values.sum(axis=1), np.log2(15), rtol=0.01)
    # Membership 1 at the nearest neighbour with positive distance (and at distance 0).
    d = out.values  # memberships
    dist = np.take_along_axis(graph.values, np.argsort(graph.indices == np.arange(len(x))[:, None],
                                                       axis=1, kind="stable")[:, :14], 1)
    nearest = np.argmin(np.where(dist > 0, dist, np.inf), axis=1)
    np.testing.assert_allclose(d[np.arange(len(x)), nearest], 1.0)
    np.testing.assert_allclose(d[dist == 0], 1.0)


def test_connect_matches_formula_with_reference_sigma():
    from scipy.optimize import brentq

    rng = np.random.default_rng(6)
    graph = knn_graph(rng.normal(size=(80, 4)), 10)
    out = Connect(bandwidth=1.2)(graph)
    for i in (0, 17, 55):
        d = graph.values[i, 1:]
        rho = d[d > 0].min()
        target = np.log2(10) * 1.2

        def excess(log_sigma: float, d: np.ndarray = d, rho: float = rho, target: float = target) -> float:
            return np.exp(-np.maximum(d - rho, 0) / np.exp(log_sigma)).sum() - target

        sigma = np.exp(brentq(excess, -30, 30, xtol=1e-12))
        np.testing.assert_allclose(out.values[i], np.exp(-np.maximum(d - rho, 0) / sigma), rtol=1e-5)


def test_connect_local_connectivity_interpolates_rho():
    d = np.array([[0.0, 0.0, 1.0, 2.0, 4.0], [0.0, 3.0, 5.0, 6.0, 7.0], [0.0, 0.0, 0.0, 0.0, 0.0]])
    valid = np.ones_like(d, dtype=bool)
    valid[:, 0] = False
    np.testing.assert_allclose(_connectivity_radius(d, valid, 1.0), [1.0, 3.0, 0.0])
    np.testing.assert_allclose(_connectivity_radius(d, valid, 1.5), [1.5, 4.0, 0.0])
    np.testing.assert_allclose(_connectivity_radius(d, valid, 0.5), [0.5, 1.5, 0.0])
    np.testing.assert_allclose(_connectivity_radius(d, valid, 10.0), [4.0, 7.0, 0.0])
    assert Connect().suggested_neighbors() == 15
    with pytest.raises(SpecError, match=r"options\.bandwidth: expected a number > 0, got 0"):
        build(TRANSFORMS, "connect", {"bandwidth": 0}, "t")
    with pytest.raises(SpecError, match=r"options\.local_connectivity: expected a number >= 0, got -1"):
        build(TRANSFORMS, "connect", {"local_connectivity": -1}, "t")


# --------------------------------------------------------------------------- symmetrize / normalize
def random_graph(n: int = 40, k: int = 6, seed: int = 7) -> NeighborGraph:
    rng = np.random.default_rng(seed)
    indices = np.stack([rng.choice(np.delete(np.arange(n), i), k, replace=False) for i in range(n)])
    return NeighborGraph(indices, rng.uniform(0.05, 1.0, size=(n, k)))


@pytest.mark.parametrize("sub_prod", [False, True])
def test_symmetrize_matches_dense_formulas(sub_prod):
    graph = random_graph()
    p = graph.to_sparse().toarray()
    expected = p + p.T - p * p.T if sub_prod else (p + p.T) / 2
    out = Symmetrize(sub_prod=sub_prod)(graph)
    assert isinstance(out, sp.csr_array)
    np.testing.assert_allclose(out.toarray(), expected, atol=1e-12)
    np.testing.assert_allclose(Symmetrize(sub_prod=sub_prod)(sp.csr_array(p)).toarray(), expected, atol=1e-12)
    np.testing.assert_allclose(Symmetrize(sub_prod=sub_prod)(p), expected, atol=1e-12)
    assert out.nnz == np.count_nonzero(expected)


def test_symmetrize_option_checks():
    with pytest.raises(SpecError, match=r"options\.sub_prod: expected true or false, got 'yes'"):
        build(TRANSFORMS, "symmetrize", {"sub_prod": "yes"}, "t")
    with pytest.raises(SpecError, match="unknown option"):
        build(TRANSFORMS, "symmetrize", {"impl": "mean"}, "relations[0].transforms[1]")
    assert build(TRANSFORMS, "symmetrize", {"sub_prod": True}, "r").sub_prod is True


def test_normalize_global_and_batch():
    graph = random_graph()
    dense = graph.to_sparse().toarray()
    out_graph = Normalize()(graph)
    np.testing.assert_allclose(out_graph.values.sum(), 1.0)
    np.testing.assert_allclose(out_graph.to_sparse().toarray(), dense / dense.sum())
    out_sparse = Normalize()(sp.csr_array(dense))
    assert sp.issparse(out_sparse)
    np.testing.assert_allclose(out_sparse.toarray(), dense / dense.sum())
    np.testing.assert_allclose(Normalize()(dense), dense / dense.sum())
    q = torch.rand(10, 10, dtype=torch.float64, requires_grad=True)
    out = Normalize()(q)
    torch.testing.assert_close(out, q / q.sum())
    out.sum().backward()
    assert torch.isfinite(q.grad).all()
    with pytest.raises(DataError):
        Normalize()(np.zeros((3, 3)))


def test_normalize_rows_global_and_batch():
    graph = random_graph()
    dense = graph.to_sparse().toarray()
    expected = dense / dense.sum(axis=1, keepdims=True)
    np.testing.assert_allclose(NormalizeRows()(graph).to_sparse().toarray(), expected)
    np.testing.assert_allclose(NormalizeRows()(sp.csr_array(dense)).toarray(), expected)
    np.testing.assert_allclose(NormalizeRows()(dense), expected)
    with_zero_row = dense.copy()
    with_zero_row[3] = 0
    out = NormalizeRows()(with_zero_row)
    np.testing.assert_array_equal(out[3], 0.0)
    q = torch.rand(6, 6, dtype=torch.float64)
    torch.testing.assert_close(NormalizeRows()(q), q / q.sum(dim=1, keepdim=True))
    edges = torch.rand(12, dtype=torch.float64)
    torch.testing.assert_close(NormalizeRows()(edges), edges / edges.sum())


# --------------------------------------------------------------------------- kernels
@pytest.mark.parametrize("alpha", [1.0, 2.5])
def test_t_dist_formula(alpha):
    d = np.linspace(0, 5, 21)
    expected = (1 + d**2 / alpha) ** (-(alpha + 1) / 2)
    np.testing.assert_allclose(TDist(alpha)(d), expected)
    graph = random_graph()
    np.testing.assert_allclose(TDist(alpha)(graph).values, (1 + graph.values**2 / alpha) ** (-(alpha + 1) / 2))
    sparse = TDist(alpha)(graph.to_sparse())
    assert sp.issparse(sparse) and sparse.nnz == graph.to_sparse().nnz
    t = torch.tensor(d, requires_grad=True)
    torch.testing.assert_close(TDist(alpha)(t), torch.tensor(expected))


def test_t_dist_gradient_finite_at_zero():
    d = torch.zeros(5, dtype=torch.float64, requires_grad=True)
    TDist(1.0)(d).sum().backward()
    assert torch.isfinite(d.grad).all()
    np.testing.assert_allclose(d.grad.numpy(), 0.0)
    # Through a batch of pairwise distances including the diagonal (pdist's sqrt itself is
    # the relation's business; the transform adds no NaN).
    y = torch.randn(8, 2, dtype=torch.float64, requires_grad=True)
    sq = ((y[:, None] - y[None]) ** 2).sum(-1)
    q = Normalize()(TDist(1.0)(torch.sqrt(sq + 1e-12)))
    q.sum().backward()
    assert torch.isfinite(y.grad).all()
    assert TDist.levels == ("global", "batch")
    with pytest.raises(SpecError, match=r"options\.alpha: expected a number > 0, got 0"):
        build(TRANSFORMS, "t_dist", {"alpha": 0}, "t")


def test_umap_ab_fit():
    a, b = fit_ab(1.0, 0.1)
    assert a == pytest.approx(1.577, abs=2e-3)
    assert b == pytest.approx(0.895, abs=2e-3)
    assert Cauchy().params == pytest.approx((a, b))
    a2, b2 = fit_ab(1.0, 0.5)  # larger min_dist: flatter near 0, steeper beyond
    assert b2 > b


def test_cauchy_formula_and_gradient():
    d = np.linspace(0, 4, 17)
    kernel = Cauchy(a=1.5, b=0.8)
    np.testing.assert_allclose(kernel(d)[1:], 1 / (1 + 1.5 * d[1:] ** 1.6))
    assert kernel(d)[0] == pytest.approx(1.0, abs=1e-9)
    t = torch.tensor(d, requires_grad=True)
    out = Cauchy()(t)
    a, b = fit_ab()
    torch.testing.assert_close(out[1:], torch.tensor(1 / (1 + a * d[1:] ** (2 * b))))
    out.sum().backward()
    assert torch.isfinite(t.grad).all()
    assert t.grad[0] == 0
    for bad in ({"a": 1.0}, {"spread": 0}, {"min_dist": -0.1}, {"a": -1, "b": 1}):
        with pytest.raises(SpecError, match=r"^t\.options"):
            build(TRANSFORMS, "cauchy", bad, "t")


# --------------------------------------------------------------------------- geodesic
def test_geodesic_matches_isomap(digits):
    from sklearn.manifold import Isomap

    # A little jitter breaks the ties between the integer digits' distances, so that the
    # k nearest neighbours are unique.
    x = digits[:300] + np.random.default_rng(9).normal(scale=1e-3, size=(300, 64))
    isomap = Isomap(n_neighbors=12, n_components=2).fit(x)  # 12 neighbours connect these rows
    ours = Geodesic()(knn_graph(x, 13))  # 12 neighbours + self
    np.testing.assert_allclose(ours, isomap.dist_matrix_, rtol=1e-10, atol=1e-9)
    # n_neighbors restricts a wider graph to the same one.
    np.testing.assert_allclose(Geodesic(n_neighbors=12)(knn_graph(x, 20)), isomap.dist_matrix_, atol=1e-9)
    assert Geodesic(n_neighbors=8).suggested_neighbors() == 9
    with pytest.raises(SpecError, match=r"options\.n_neighbors: expected an integer >= 1 or null, got 0"):
        build(TRANSFORMS, "geodesic", {"n_neighbors": 0}, "t")


def test_geodesic_disconnected_components():
    rng = np.random.default_rng(8)
    x = np.concatenate([rng.normal(size=(30, 2)), rng.normal(size=(30, 2)) + 100])
    graph = knn_graph(x, 6)
    with pytest.warns(UserWarning, match="2 components"):
        out = Geodesic()(graph)
    assert np.all(np.isfinite(out))
    within = shortest_path(graph.to_sparse(), method="D", directed=False)
    same = np.isfinite(within)
    np.testing.assert_allclose(out[same], within[same])
    np.testing.assert_allclose(out[~same], 1.5 * within[same].max())
    assert out[:30, 30:].min() > out[:30, :30].max()


def test_geodesic_keeps_zero_distance_duplicates():
    x = np.array([[0.0], [0.0], [1.0], [3.0]])
    out = Geodesic()(knn_graph(x, 2))  # each point and its nearest other point
    np.testing.assert_allclose(out[0, 1], 0.0)
    np.testing.assert_allclose(out[0, 2], 1.0)


# --------------------------------------------------------------------------- registry / inputs
def test_registered_names_and_levels():
    for name, cls in [
        ("perplexity", Perplexity), ("connect", Connect), ("symmetrize", Symmetrize),
        ("normalize", Normalize), ("normalize rows", NormalizeRows), ("t-dist", TDist),
        ("student_t", TDist), ("cauchy", Cauchy), ("modified_cauchy", Cauchy), ("umap", Cauchy),
        ("geodesic", Geodesic),
    ]:
        assert TRANSFORMS.get(name) is cls
    assert Perplexity.levels == ("global",)
    assert isinstance(build(TRANSFORMS, "normalize", {}, "r"), Normalize)
    with pytest.raises(SpecError, match="unknown option"):
        build(TRANSFORMS, "normalize", {"axis": 1}, "r")
    assert Cauchy.levels == ("global", "batch")
    with pytest.raises(SpecError, match="relations\\[0\\].transforms\\[0\\].options.perplexity"):
        build(TRANSFORMS, "perplexity", {"perplexity": -5}, "relations[0].transforms[0]")


def test_global_transforms_reject_unusable_values():
    with pytest.raises(DataError):
        Perplexity()(LabelEquality(np.arange(5)))
    with pytest.raises(DataError):
        Perplexity()(torch.zeros(4, 4))
    with pytest.raises(DataError, match="NaN"):
        Connect()(NeighborGraph(np.array([[1], [0]]), np.array([[np.nan], [1.0]])))
    with pytest.raises(DataError, match="negative"):
        Perplexity(1)(NeighborGraph(np.array([[1], [0]]), np.array([[-1.0], [1.0]])))
