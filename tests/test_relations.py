"""Relation types: kinds and values of their outputs against scipy / torch / sklearn."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp
import torch
from scipy.spatial.distance import cdist
from sklearn.neighbors import NearestNeighbors

import paradime_core.relations as relations
from paradime_core.batch import Batch
from paradime_core.errors import DataError, SpecError
from paradime_core.relation_data import LabelEquality, NeighborGraph, edge_values, submatrix
from paradime_core.relations import distances, relation_types
from paradime_core.spec.blocks import build
from paradime_core.spec.registry import RELATIONS


def data(n: int = 60, d: int = 5, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=(n, d)).astype(np.float32)


def item_batch(b: int) -> Batch:
    return Batch(items=torch.arange(b))


def edge_batch(rows: list[int], cols: list[int], b: int) -> Batch:
    return Batch(items=torch.arange(b), edge_rows=torch.tensor(rows), edge_cols=torch.tensor(cols))


@pytest.mark.parametrize(
    ("alias", "name"),
    [
        ("pairwise", "pdist"),
        ("knn", "neighbor"),
        ("neighbors", "neighbor"),
        ("label equality", "pairwise_eq"),
        ("pairwise_equality", "pairwise_eq"),
        ("precomp", "precomputed"),
        ("fromto", "edge_dist"),
        ("pdistdiff", "pdist"),
    ],
)
def test_registered_names(alias, name):
    assert RELATIONS.resolve(alias) == name


def test_levels():
    assert relations.PDist.levels == ("global", "batch")
    assert relations.Neighbor.levels == ("global",)
    assert relations.PairwiseEq.levels == ("global",)
    assert relations.Precomputed.levels == ("global",)
    assert relations.EdgeDist.levels == ("batch",)


# --------------------------------------------------------------------------- pdist global
@pytest.mark.parametrize(
    ("metric", "scipy_metric"),
    [
        ("euclidean", "euclidean"),
        ("sqeuclidean", "sqeuclidean"),
        ("cosine", "cosine"),
        ("manhattan", "cityblock"),
    ],
)
def test_pdist_global_matches_scipy(metric, scipy_metric):
    X = data()
    value = relations.PDist(metric=metric, chunk_size=7).compute(X)
    assert isinstance(value, np.ndarray) and value.dtype == np.float32 and value.shape == (60, 60)
    expected = cdist(X.astype(np.float64), X.astype(np.float64), metric=scipy_metric)
    np.testing.assert_allclose(value, expected, rtol=1e-5, atol=1e-5)
    np.testing.assert_array_equal(np.diag(value), 0.0)


def test_pdist_global_duplicates_are_zero():
    X = np.repeat(data(10, 3) * 100, 2, axis=0)
    value = relations.PDist().compute(X)
    np.testing.assert_allclose(value[0::2, 1::2].diagonal(), 0.0, atol=1e-4)


def test_pdist_global_warns_for_large_n(monkeypatch):
    monkeypatch.setattr(relation_types, "DENSE_WARN_ITEMS", 50)
    with pytest.warns(UserWarning, match="dense 60 x 60"):
        relations.PDist().compute(data())


def test_pdist_rejects_bad_options_and_data():
    with pytest.raises(SpecError, match=r"^relations\[0\]\.options\.metric: expected one of euclidean, .*'chebyshev'"):
        build(RELATIONS, "pdist", {"metric": "chebyshev"}, "relations[0]")
    with pytest.raises(SpecError, match=r"^relations\[0\]\.options\.chunk_size: expected an integer >= 1, got 0"):
        build(RELATIONS, "pdist", {"chunk_size": 0}, "relations[0]")
    assert build(RELATIONS, "pdist", {"metric": "cityblock"}, "relations[0]").metric == "manhattan"
    X = data()
    X[3, 1] = np.nan
    with pytest.raises(DataError, match="row 3"):
        relations.PDist().compute(X)


# --------------------------------------------------------------------------- pdist batch
@pytest.mark.parametrize("direct", [True, False])
def test_pdist_batch_matches_torch_cdist(monkeypatch, direct):
    if not direct:
        monkeypatch.setattr(distances, "DIRECT_ELEMENTS", 0)
    y = torch.tensor(data(40, 2, seed=1), dtype=torch.float64, requires_grad=True)
    dist = relations.PDist()(y, item_batch(40))
    assert dist.shape == (40, 40)
    reference_y = y.detach().clone().requires_grad_(True)
    reference = torch.cdist(reference_y, reference_y)
    torch.testing.assert_close(dist, reference, rtol=1e-6, atol=1e-6)
    weights = torch.rand(40, 40, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    (dist * weights).sum().backward()
    (reference * weights).sum().backward()
    torch.testing.assert_close(y.grad, reference_y.grad, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("metric", ["euclidean", "sqeuclidean", "cosine", "manhattan"])
def test_pdist_batch_metrics_and_finite_gradient_at_zero_distance(metric):
    base = torch.tensor(data(10, 3, seed=2))
    y = torch.cat([base, base[:3]]).requires_grad_(True)  # three duplicated outputs
    dist = relations.PDist(metric=metric)(y, item_batch(13))
    expected = cdist(
        y.detach().double().numpy(),
        y.detach().double().numpy(),
        metric="cityblock" if metric == "manhattan" else metric,
    )
    np.testing.assert_allclose(dist.detach().numpy(), expected, rtol=1e-5, atol=1e-5)
    assert dist[0, 10].item() == pytest.approx(0.0, abs=1e-6)
    dist.sum().backward()
    assert torch.isfinite(y.grad).all()


def test_pdist_batch_on_edges():
    y = torch.tensor(data(6, 2, seed=3), requires_grad=True)
    rows, cols = [0, 1, 2, 5, 4], [3, 1, 4, 0, 4]  # (1, 1) and (4, 4): zero distance
    dist = relations.PDist()(y, edge_batch(rows, cols, 6))
    expected = torch.linalg.vector_norm(y[rows] - y[cols], dim=1)
    assert dist.shape == (5,)
    torch.testing.assert_close(dist, expected)
    dist.sum().backward()
    assert torch.isfinite(y.grad).all()


# --------------------------------------------------------------------------- edge_dist
def test_edge_dist_values_and_needs_edges():
    y = torch.tensor(data(8, 3, seed=4), dtype=torch.float64)
    rows, cols = [0, 2, 7], [1, 6, 3]
    sq = relations.EdgeDist(metric="sqeuclidean")(y, edge_batch(rows, cols, 8))
    torch.testing.assert_close(sq, ((y[rows] - y[cols]) ** 2).sum(1))
    cos = relations.EdgeDist(metric="cosine")(y, edge_batch(rows, cols, 8))
    expected = [
        cdist(y[[r]].numpy(), y[[c]].numpy(), "cosine")[0, 0]
        for r, c in zip(rows, cols, strict=True)
    ]
    np.testing.assert_allclose(cos.numpy(), expected, rtol=1e-9)
    with pytest.raises(DataError, match="needs edge sampling"):
        relations.EdgeDist()(y, item_batch(8))


# --------------------------------------------------------------------------- neighbor
@pytest.mark.parametrize("metric", ["euclidean", "cosine"])
def test_neighbor_graph_matches_sklearn(metric):
    X = data(200, 6, seed=5)
    value = relations.Neighbor(n_neighbors=8, metric=metric).compute(X)
    assert isinstance(value, NeighborGraph) and value.indices.shape == (200, 8)
    nn = NearestNeighbors(n_neighbors=9, metric=metric, algorithm="brute").fit(X.astype(np.float64))
    distances, indices = nn.kneighbors(X.astype(np.float64))
    np.testing.assert_array_equal(value.indices, indices[:, 1:])
    np.testing.assert_allclose(value.values, distances[:, 1:], rtol=1e-4, atol=1e-4)


def test_neighbor_defaults_and_clamping():
    relation = relations.Neighbor()
    assert relation.n_neighbors is None
    assert relations.Neighbor().compute(data(100)).n_neighbors == 15
    with pytest.warns(UserWarning, match="n_neighbors=30 >= number of items 20"):
        value = relations.Neighbor(n_neighbors=30).compute(data(20))
    assert value.n_neighbors == 19
    assert not (value.indices == np.arange(20)[:, None]).any()


def test_neighbor_rejects_bad_options():
    for options in (
        {"n_neighbors": 0},
        {"n_neighbors": 2.5},
        {"metric": "manhattan"},
        {"method": "annoy"},
    ):
        with pytest.raises(SpecError, match=r"relations\[1\]\.options"):
            build(RELATIONS, "knn", options, "relations[1]")


# --------------------------------------------------------------------------- pairwise_eq
def test_pairwise_eq_is_implicit_label_equality():
    labels = np.array([0, 1, 0, 2, 1, 0])
    value = relations.PairwiseEq().compute(labels[:, None])
    assert isinstance(value, LabelEquality)
    items = np.array([5, 0, 1, 4])
    expected = (labels[items][:, None] == labels[items][None, :]).astype(np.float32)
    np.testing.assert_array_equal(submatrix(value, items), expected)
    np.testing.assert_array_equal(edge_values(value, [0, 1, 3], [2, 4, 3]), [1.0, 1.0, 1.0])
    np.testing.assert_array_equal(edge_values(value, [0, 1], [1, 3]), [0.0, 0.0])
    with pytest.raises(DataError, match="one label per item"):
        relations.PairwiseEq().compute(np.zeros((6, 2)))


# --------------------------------------------------------------------------- precomputed
def neighbor_lists(n: int = 30, k: int = 4) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(6)
    indices = np.stack([rng.choice(np.delete(np.arange(n), i), k, replace=False) for i in range(n)])
    return indices, rng.random((n, k)).astype(np.float32)


def test_precomputed_dense_and_sparse_values():
    D = relations.PDist().compute(data(30))
    dense = relations.Precomputed(values=D).compute(data(30))
    assert isinstance(dense, np.ndarray) and dense.dtype == np.float32
    np.testing.assert_array_equal(dense, D)
    as_list = relations.Precomputed(values=D[:3, :3].tolist()).compute(None)
    np.testing.assert_allclose(as_list, D[:3, :3])
    S = sp.random(30, 30, density=0.1, random_state=0, format="coo")
    sparse = relations.Precomputed(values=S).compute(data(30))
    assert sp.issparse(sparse) and sparse.format == "csr"
    np.testing.assert_array_equal(sparse.toarray(), S.toarray())
    converted = relations.Precomputed(values=S, kind="dense").compute(None)
    np.testing.assert_allclose(converted, S.toarray(), rtol=1e-6)
    converted = relations.Precomputed(values=D, kind="sparse").compute(None)
    assert sp.issparse(converted)
    np.testing.assert_array_equal(converted.toarray(), D)


def test_precomputed_neighbor_lists():
    indices, distances = neighbor_lists()
    for values in (
        (indices, distances),
        {"indices": indices, "distances": distances},
        {"indices": indices, "values": distances},
    ):
        graph = relations.Precomputed(values=values, kind="neighbors").compute(data(30))
        assert isinstance(graph, NeighborGraph)
        np.testing.assert_array_equal(graph.indices, indices)
        np.testing.assert_array_equal(graph.values, distances)
    sparse = relations.Precomputed(values=(indices, distances), kind="sparse").compute(None)
    assert sparse[0, indices[0, 2]] == pytest.approx(distances[0, 2])
    with pytest.raises(DataError, match="neighbour lists"):
        relations.Precomputed(values=np.zeros((3, 3)), kind="neighbors").compute(None)
    bad = indices.copy()
    bad[7, 1] = 30
    with pytest.raises(DataError, match="row 7"):
        relations.Precomputed(values=(bad, distances)).compute(None)


def test_precomputed_files(tmp_path):
    D = relations.PDist().compute(data(30))
    np.save(tmp_path / "dense.npy", D)
    np.testing.assert_array_equal(
        relations.Precomputed(file=str(tmp_path / "dense.npy")).compute(data(30)), D
    )

    S = sp.random(30, 30, density=0.1, random_state=1, format="csr")
    sp.save_npz(tmp_path / "sparse.npz", S)
    loaded = relations.Precomputed(file=tmp_path / "sparse.npz").compute(data(30))
    assert sp.issparse(loaded)
    np.testing.assert_array_equal(loaded.toarray(), S.toarray())

    indices, distances = neighbor_lists()
    np.savez(tmp_path / "knn.npz", indices=indices, distances=distances)
    np.savez(tmp_path / "knn_values.npz", indices=indices, values=distances)
    for name in ("knn.npz", "knn_values.npz"):
        graph = relations.Precomputed(file=str(tmp_path / name)).compute(data(30))
        assert isinstance(graph, NeighborGraph)
        np.testing.assert_array_equal(graph.indices, indices)
        np.testing.assert_array_equal(graph.values, distances)

    np.savez(tmp_path / "odd.npz", a=D, b=D)
    with pytest.raises(DataError, match="odd.npz"):
        relations.Precomputed(file=str(tmp_path / "odd.npz")).compute(None)


def test_precomputed_errors(tmp_path):
    missing = tmp_path / "nothing.npz"
    with pytest.raises(ValueError, match="nothing.npz"):
        relations.Precomputed(file=str(missing))
    with pytest.raises(SpecError, match=r"relations\[2\]\.options.*nothing\.npz"):
        build(RELATIONS, "precomputed", {"file": str(missing)}, "relations[2]")
    with pytest.raises(ValueError, match="exactly one"):
        relations.Precomputed()
    with pytest.raises(ValueError, match="exactly one"):
        relations.Precomputed(values=np.eye(3), file=str(missing))
    with pytest.raises(SpecError, match=r"options\.kind: expected one of auto, dense, sparse, neighbors"):
        build(RELATIONS, "precomputed", {"values": np.eye(3), "kind": "graph"}, "relations[2]")
    with pytest.raises(DataError, match=r"30 items.*25 rows"):
        relations.Precomputed(values=np.eye(30)).compute(data(25))
    with pytest.raises(DataError, match=r"30 items.*25 rows"):
        relations.Precomputed(values=neighbor_lists()).compute(data(25))
    with pytest.raises(DataError, match="square"):
        relations.Precomputed(values=np.zeros((3, 4))).compute(None)
