"""Sampler statistics: coverage, edge frequencies, negative layout, triplets, determinism."""

from __future__ import annotations

import math
from types import SimpleNamespace

import numpy as np
import pytest
import scipy.sparse as sp
import torch
from scipy.stats import chisquare

from paradime_core.batch import batch_triplets
from paradime_core.errors import DataError, SpecError
from paradime_core.relation_data import LabelEquality, NeighborGraph
from paradime_core.sampling import EdgeSampler, ItemSampler, TripletSampler, sample_weighted
from paradime_core.spec import SamplingSpec, blocks
from paradime_core.spec.blocks import build
from paradime_core.spec.registry import SAMPLERS


def gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


# ---------------------------------------------------------------- item


def test_item_batches_cover_every_item_once():
    batches = list(ItemSampler(batch_size=7).epoch(50, {}, gen()))
    assert [len(b) for b in batches] == [7] * 7 + [1]
    items = torch.cat([b.items for b in batches])
    assert sorted(items.tolist()) == list(range(50))
    assert items.tolist() != list(range(50))  # shuffled
    assert all(not b.has_edges and b.triplets is None for b in batches)


def test_item_no_shuffle_drop_last_and_determinism():
    batches = list(ItemSampler(batch_size=7, shuffle=False, drop_last=True).epoch(50, {}, gen()))
    assert len(batches) == 7 and batches[0].items.tolist() == list(range(7))
    a = [b.items for b in ItemSampler(batch_size=9).epoch(40, {}, gen(3))]
    b = [b.items for b in ItemSampler(batch_size=9).epoch(40, {}, gen(3))]
    assert all(torch.equal(x, y) for x, y in zip(a, b, strict=True))
    with pytest.raises(SpecError, match="batch_size"):
        build(SAMPLERS, "item", {"batch_size": 0}, "sampling")


def test_item_batches_per_epoch_fixes_the_steps_at_any_size():
    """batches_per_epoch: exactly that many full batches, cut from consecutive permutations
    (no item twice within one permutation), and min(batch_size, n) items on small data."""
    sampler = ItemSampler(batch_size=7, batches_per_epoch=10)
    assert sampler.n_batches(50) == 10 and sampler.n_batches(5_000_000) == 10
    batches = [b.items for b in sampler.epoch(50, {}, gen())]
    assert [len(b) for b in batches] == [7] * 10
    first_permutation = torch.cat(batches[:7])  # 49 of 50 items; the 8th batch starts a new one
    assert len(set(first_permutation.tolist())) == 49
    assert len(set(torch.cat(batches[7:]).tolist())) == 21
    small = [b.items for b in ItemSampler(batch_size=1024, batches_per_epoch=3).epoch(20, {}, gen())]
    assert all(sorted(b.tolist()) == list(range(20)) for b in small)
    again = [b.items for b in ItemSampler(batch_size=7, batches_per_epoch=10).epoch(50, {}, gen())]
    assert all(torch.equal(x, y) for x, y in zip(batches, again, strict=True))
    with pytest.raises(SpecError, match="batches_per_epoch"):
        build(SAMPLERS, "item", {"batches_per_epoch": 0}, "sampling")


# ---------------------------------------------------------------- edge


def small_graph() -> sp.csr_array:
    rows = np.array([0, 0, 1, 2, 3, 3, 4, 2])
    cols = np.array([1, 2, 3, 4, 0, 3, 1, 0])
    w = np.array([1.0, 3.0, 0.5, 2.0, 4.0, 9.0, 0.0, 1.5])  # (3,3) self-loop, (4,1) weight 0
    return sp.csr_array((w, (rows, cols)), shape=(6, 6))


def test_edge_frequencies_follow_weights():
    graph = small_graph()
    sampler = EdgeSampler("w", batch_size=2000, neg_rate=1, batches_per_epoch=20)
    counts: dict[tuple[int, int], int] = {}
    for batch in sampler.epoch(6, {"w": graph}, gen(1)):
        pos = batch.edge_targets == 1
        src = batch.items[batch.edge_rows[pos]].tolist()
        dst = batch.items[batch.edge_cols[pos]].tolist()
        for edge in zip(src, dst, strict=True):
            counts[edge] = counts.get(edge, 0) + 1
    valid = {(0, 1): 1.0, (0, 2): 3.0, (1, 3): 0.5, (2, 4): 2.0, (3, 0): 4.0, (2, 0): 1.5}
    assert set(counts) == set(valid)  # no self-loop, no zero-weight edge
    observed = np.array([counts[e] for e in valid])
    expected = np.array(list(valid.values())) / sum(valid.values()) * observed.sum()
    assert observed.sum() == 40_000
    assert chisquare(observed, expected).pvalue > 1e-3
    assert np.max(np.abs(observed / expected - 1)) < 0.05


@pytest.mark.parametrize("run", [3, 4])
def test_runs_by_source_keep_the_edge_distribution(run):
    """edges_per_source=m: positives come in runs of m with one source, each still ~ w_ij / S."""
    graph = small_graph()
    sampler = EdgeSampler("w", batch_size=2000, neg_rate=1, batches_per_epoch=20, edges_per_source=run)
    counts: dict[tuple[int, int], int] = {}
    for batch in sampler.epoch(6, {"w": graph}, gen(1)):
        pos = batch.edge_targets == 1
        src = batch.items[batch.edge_rows[pos]]
        dst = batch.items[batch.edge_cols[pos]].tolist()
        full = src[: (len(src) // run) * run].reshape(-1, run)
        assert torch.equal(full, full[:, :1].expand_as(full))  # a run shares its source
        for edge in zip(src.tolist(), dst, strict=True):
            counts[edge] = counts.get(edge, 0) + 1
    valid = {(0, 1): 1.0, (0, 2): 3.0, (1, 3): 0.5, (2, 4): 2.0, (3, 0): 4.0, (2, 0): 1.5}
    assert set(counts) == set(valid)  # only stored edges: no self-loop, no zero-weight edge
    observed = np.array([counts[e] for e in valid])
    expected = np.array(list(valid.values())) / sum(valid.values()) * observed.sum()
    assert observed.sum() == 40_000
    assert chisquare(observed, expected).pvalue > 1e-3
    with pytest.raises(SpecError, match="edges_per_source"):
        build(SAMPLERS, "edge", {"rels": "w", "edges_per_source": 0}, "sampling")


def test_runs_by_source_touch_fewer_items():
    """On a large graph a step with runs of 8 embeds about B (1 + 1/8) positives' items, not 2 B."""
    n, k = 20_000, 15
    rng = np.random.default_rng(0)
    graph = NeighborGraph(rng.integers(0, n, size=(n, k)), rng.random((n, k)) + 0.1)
    def items_per_step(run: int) -> float:
        sampler = EdgeSampler("knn", batch_size=1024, neg_rate=0, batches_per_epoch=5, edges_per_source=run)
        return float(np.mean([len(b) for b in sampler.epoch(n, {"knn": graph}, gen(2))]))
    single, runs = items_per_step(1), items_per_step(8)
    assert single > 1.9 * 1024 and runs < 1.2 * 1024


def test_auto_runs_only_on_data_much_larger_than_a_batch():
    """edges_per_source='auto': runs of 8 from 8 * batch_size items on, plain draws below."""
    sampler = build(SAMPLERS, "edge", {"rels": "w", "batch_size": 100, "edges_per_source": "auto"}, "sampling")
    assert sampler.run_length(799) == 1 and sampler.run_length(800) == 8
    graph = small_graph()
    auto = list(EdgeSampler("w", batch_size=8, neg_rate=2, edges_per_source="auto").epoch(6, {"w": graph}, gen(5)))
    plain = list(EdgeSampler("w", batch_size=8, neg_rate=2).epoch(6, {"w": graph}, gen(5)))
    for a, b in zip(auto, plain, strict=True):
        assert torch.equal(a.items, b.items) and torch.equal(a.edge_cols, b.edge_cols)
    with pytest.raises(SpecError, match=r"options\.edges_per_source: expected an integer >= 1 or auto, got 'often'"):
        build(SAMPLERS, "edge", {"rels": "w", "edges_per_source": "often"}, "sampling")


def test_edge_layout_negatives_and_unique_items():
    graph = NeighborGraph(np.array([[(i + 1) % 30, (i + 7) % 30] for i in range(30)]), np.ones((30, 2)))
    sampler = EdgeSampler("knn", batch_size=16, neg_rate=5)
    batches = list(sampler.epoch(30, {"knn": graph}, gen(2)))
    assert len(batches) == math.ceil(60 / 16)  # default: ceil(n_edges / batch_size)
    negatives = []
    for batch in batches:
        assert batch.edge_relation == "knn"
        assert batch.edge_targets.tolist() == [1.0] * 16 + [0.0] * 80
        assert torch.equal(batch.items, torch.unique(batch.items))
        rows, cols = batch.items[batch.edge_rows], batch.items[batch.edge_cols]
        # every positive is a graph edge
        for r, c in zip(rows[:16].tolist(), cols[:16].tolist(), strict=True):
            assert c in ((r + 1) % 30, (r + 7) % 30)
        # negative block row b shares positive b's source
        assert torch.equal(rows[16:].reshape(16, 5), rows[:16, None].expand(16, 5))
        # items are exactly the endpoints of the edges
        assert set(batch.items.tolist()) == set(rows.tolist()) | set(cols.tolist())
        negatives.append(cols[16:])
    negatives = torch.cat(negatives)
    freq = torch.bincount(negatives, minlength=30).numpy()
    assert chisquare(freq).pvalue > 1e-3  # uniform negative targets


def test_edge_sampler_is_deterministic_and_caches_arrays():
    graph = small_graph()
    sampler = EdgeSampler("w", batch_size=8, neg_rate=2)
    first = list(sampler.epoch(6, {"w": graph}, gen(5)))
    cached = sampler._cache._prepared
    second = list(sampler.epoch(6, {"w": graph}, gen(5)))
    assert sampler._cache._prepared is cached
    for a, b in zip(first, second, strict=True):
        assert torch.equal(a.items, b.items) and torch.equal(a.edge_cols, b.edge_cols)


def test_edge_sampler_names_options_and_errors():
    assert SAMPLERS.get("negative_edge") is EdgeSampler and SAMPLERS.get("neg edge") is EdgeSampler
    sampler = build(SAMPLERS, "neg_edge", {"rels": "w", "neg_sampling_rate": 3}, "s")
    assert sampler.neg_rate == 3 and sampler.relation_options == ("rels",)
    with pytest.raises(SpecError, match="rels"):
        build(SAMPLERS, "edge", {}, "sampling")
    with pytest.raises(SpecError, match="neg_rate"):
        build(SAMPLERS, "edge", {"rels": "w", "neg_rate": -1}, "sampling")
    with pytest.raises(DataError, match="'missing' is not available"):
        next(EdgeSampler("missing").epoch(6, {"w": small_graph()}, gen()))
    dense = np.array([[0.0, 1.0, 0.0], [1.0, 0.0, 2.0], [0.0, 2.0, 0.0]])
    batch = next(EdgeSampler("d", batch_size=4, neg_rate=0).epoch(3, {"d": dense}, gen()))
    pairs = set(zip(batch.items[batch.edge_rows].tolist(), batch.items[batch.edge_cols].tolist(), strict=True))
    assert pairs <= {(0, 1), (1, 0), (1, 2), (2, 1)}


def test_build_sampler_checks_relation_name_against_spec():
    relations = [SimpleNamespace(name="p", level="global"), SimpleNamespace(name="q", level="batch")]
    full_spec = SimpleNamespace(relations=relations)
    where = "training_phases[0].sampling"
    ok = blocks.build_sampler(SamplingSpec(type="edge", options={"rels": "p"}), full_spec, where)
    assert isinstance(ok, EdgeSampler) and ok.rels == "p"
    for name in ("nope", "q"):  # unknown, or not a global relation
        with pytest.raises(SpecError, match="options.rels: unknown global relation"):
            blocks.build_sampler(SamplingSpec(type="triplet", options={"rels": name}), full_spec, where)


def test_inverse_cdf_sampling_beyond_two_to_the_24_categories():
    n = 2**24 + 2**22
    with pytest.raises(RuntimeError):  # the reason for inverse-CDF sampling
        torch.multinomial(torch.ones(n), 1)
    cum = torch.arange(1, n + 1, dtype=torch.float64)  # uniform weights
    idx = sample_weighted(cum, 200_000, gen(7))
    assert idx.min() >= 0 and idx.max() < n
    high = (idx >= 2**24).double().mean().item()
    assert high == pytest.approx(0.2, abs=0.005)
    # all mass on a few categories, some beyond 2^24
    weights = torch.zeros(n, dtype=torch.float64)
    chosen = torch.tensor([3, 2**23, 2**24 + 1, n - 1])
    weights[chosen] = torch.tensor([1.0, 2.0, 3.0, 4.0], dtype=torch.float64)
    idx = sample_weighted(torch.cumsum(weights, 0), 100_000, gen(8))
    values, counts = torch.unique(idx, return_counts=True)
    assert values.tolist() == chosen.tolist()
    assert chisquare(counts.numpy(), np.array([0.1, 0.2, 0.3, 0.4]) * 100_000).pvalue > 1e-3


# ---------------------------------------------------------------- triplet


def test_triplets_respect_labels():
    labels = np.repeat(np.arange(4), [5, 8, 1, 6])  # label 2 is a singleton: no positive
    sampler = TripletSampler("lab", batch_size=7, rate=3)
    anchors = []
    for batch in sampler.epoch(20, {"lab": LabelEquality(labels)}, gen(4)):
        assert torch.equal(batch.items, torch.unique(batch.items))
        t = batch.items[batch.triplets].numpy()
        assert set(np.unique(t)) == set(batch.items.tolist())
        a, p, n = t[:, 0], t[:, 1], t[:, 2]
        assert np.all(labels[a] == labels[p]) and np.all(a != p)
        assert np.all(labels[a] != labels[n])
        anchors.append(a)
    anchors = np.concatenate(anchors)
    counts = np.bincount(anchors, minlength=20)
    singleton = np.flatnonzero(labels == 2)
    assert np.all(counts[singleton] == 0)
    assert np.all(np.delete(counts, singleton) == 3)  # every other item anchors `rate` triplets


def test_label_triplets_positives_uniform_within_group():
    labels = np.array([0] * 5 + [1] * 45)
    sampler = TripletSampler("lab", batch_size=50, rate=2000, shuffle=False)
    batch = next(sampler.epoch(50, {"lab": LabelEquality(labels)}, gen(6)))
    t = batch.items[batch.triplets].numpy()
    first = t[t[:, 0] == 0]
    freq = np.bincount(first[:, 1], minlength=5)[1:5]
    assert chisquare(freq).pvalue > 1e-3  # items 1..4 equally likely positives for anchor 0
    assert set(first[:, 2]) == set(range(5, 50))


def test_triplets_from_neighbor_graph():
    n = 40
    indices = np.array([[(i + 1) % n, (i + 2) % n, (i + 3) % n] for i in range(n)])
    graph = NeighborGraph(indices, np.ones((n, 3)))
    sampler = TripletSampler("knn", batch_size=16, rate=2)
    seen = 0
    for batch in sampler.epoch(n, {"knn": graph}, gen(9)):
        t = batch.items[batch.triplets].numpy()
        for a, p, m in t:
            assert p in indices[a]
            assert m not in indices[a] and m != a
        seen += len(t)
    assert seen == 2 * n
    again = [b.triplets for b in sampler.epoch(n, {"knn": graph}, gen(9))]
    first = [b.triplets for b in sampler.epoch(n, {"knn": graph}, gen(9))]
    assert all(torch.equal(x, y) for x, y in zip(again, first, strict=True))


def test_triplet_errors():
    with pytest.raises(DataError, match="one label"):
        next(TripletSampler("l").epoch(4, {"l": LabelEquality(np.zeros(4))}, gen()))
    with pytest.raises(DataError, match="covers 3 items"):
        next(TripletSampler("l").epoch(4, {"l": LabelEquality(np.array([0, 1, 1]))}, gen()))
    with pytest.raises(SpecError, match="rate"):
        build(SAMPLERS, "triplet", {"rels": "l", "rate": 0}, "sampling")


def test_pool_negatives_are_uniform_and_bound_the_items_of_a_step():
    """negatives='pool': each step embeds at most 2B + pool_size items; each negative is uniform."""
    n = 1000
    graph = NeighborGraph(np.array([[(i + 1) % n, (i + 7) % n] for i in range(n)]), np.ones((n, 2)))
    sampler = EdgeSampler("knn", batch_size=16, neg_rate=50, negatives="pool", pool_size=32, batches_per_epoch=400)
    negatives = []
    for batch in sampler.epoch(n, {"knn": graph}, gen(3)):
        assert len(batch) <= 2 * 16 + 32
        assert batch.edge_targets.tolist() == [1.0] * 16 + [0.0] * 800
        rows, cols = batch.items[batch.edge_rows], batch.items[batch.edge_cols]
        assert torch.equal(rows[16:].reshape(16, 50), rows[:16, None].expand(16, 50))
        assert len(set(cols[16:].tolist())) <= 32  # the negatives come from the step's pool
        negatives.append(torch.unique(cols[16:]))
    freq = torch.bincount(torch.cat(negatives), minlength=n).numpy()
    assert chisquare(freq).pvalue > 1e-3  # the pools are uniform over all items
    with pytest.raises(SpecError, match=r"options\.negatives: expected one of uniform, pool, batch, shared, got 'pooled'"):
        build(SAMPLERS, "edge", {"rels": "w", "negatives": "pooled"}, "sampling")


def test_shared_negatives_are_uniform_and_shared_within_a_group():
    """negatives='shared': positives b with the same b // group_size get the same r uniform negatives."""
    n, b, r, g = 1000, 32, 5, 8
    graph = NeighborGraph(np.array([[(i + 1) % n, (i + 7) % n] for i in range(n)]), np.ones((n, 2)))
    sampler = EdgeSampler("knn", batch_size=b, neg_rate=r, negatives="shared", group_size=g, batches_per_epoch=500)
    negatives = []
    for batch in sampler.epoch(n, {"knn": graph}, gen(4)):
        assert len(batch) <= 2 * b + r * b // g
        assert batch.edge_targets.tolist() == [1.0] * b + [0.0] * (b * r)
        rows, cols = batch.items[batch.edge_rows], batch.items[batch.edge_cols]
        assert torch.equal(rows[b:].reshape(b, r), rows[:b, None].expand(b, r))
        per_positive = cols[b:].reshape(b // g, g, r)
        assert torch.equal(per_positive, per_positive[:, :1].expand(b // g, g, r))  # shared in a group
        assert torch.equal(batch.items[batch.negative_groups], per_positive[:, 0])
        negatives.append(per_positive[:, 0].reshape(-1))
    freq = torch.bincount(torch.cat(negatives), minlength=n).numpy()
    assert chisquare(freq).pvalue > 1e-3  # each negative is uniform over all items
    # unequal groups (batch_size not a multiple of group_size): same layout, no broadcast structure
    odd = next(EdgeSampler("knn", batch_size=20, neg_rate=r, negatives="shared", group_size=g).epoch(
        n, {"knn": graph}, gen(4)))
    assert odd.negative_groups is None and odd.edge_cols.shape[0] == 20 * (1 + r)
    cols = odd.items[odd.edge_cols[20:]].reshape(20, r)
    assert torch.equal(cols[:8], cols[:1].expand(8, r)) and torch.equal(cols[16:], cols[16:17].expand(4, r))


@pytest.mark.parametrize("metric", ["euclidean", "sqeuclidean", "cosine", "manhattan"])
def test_shared_negative_distances_equal_the_gathered_pairs(metric):
    """The broadcast (G, g, r) block gives exactly the distances of gathering every edge's two rows."""
    from paradime_core.batch import gather_rows
    from paradime_core.relations import EdgeDist
    from paradime_core.relations.distances import paired_distances

    n = 300
    graph = NeighborGraph(np.array([[(i + 1) % n, (i + 3) % n] for i in range(n)]), np.ones((n, 2)))
    batch = next(EdgeSampler("knn", batch_size=64, neg_rate=7, negatives="shared", group_size=16).epoch(
        n, {"knn": graph}, gen(5)))
    assert batch.negative_groups is not None and batch.negative_groups.shape == (4, 7)
    Y = torch.randn(len(batch), 3, generator=gen(6), requires_grad=True)
    shared = EdgeDist(metric)(Y, batch)
    gathered = paired_distances(gather_rows(Y, batch.edge_rows), gather_rows(Y, batch.edge_cols), metric)
    assert torch.equal(shared, gathered)
    (grad_shared,) = torch.autograd.grad(shared.sum(), Y)
    (grad_gathered,) = torch.autograd.grad(gathered.sum(), Y)
    torch.testing.assert_close(grad_shared, grad_gathered)


@pytest.mark.parametrize("n_items", [200, 100_000])  # marking, sorting
def test_unique_positions_by_marking_equal_sorted_unique(n_items):
    """Both ways of finding a step's items (marking an n-vector, sorting) agree exactly."""
    from paradime_core.sampling import _unique_positions

    g = torch.Generator().manual_seed(n_items)
    groups = [torch.randint(0, n_items, (size,), generator=g) for size in (30, 17, 40)]
    items, positions = _unique_positions(*groups, n_items=n_items)
    reference = torch.unique(torch.cat(groups), sorted=True)
    assert torch.equal(items, reference)
    for group, pos in zip(groups, positions, strict=True):
        assert torch.equal(items[pos], group)
    plain_items, plain_positions = _unique_positions(*groups)  # no n_items: the sort
    assert torch.equal(plain_items, items)
    assert all(torch.equal(a, b) for a, b in zip(plain_positions, positions, strict=True))


def test_edge_sampling_over_label_equality_at_the_printed_rate():
    """Paper Sec. 5.2: edges of Eq. 1 (same label) with `rate` negatives of other labels each,
    which make (anchor, positive, negative) triplets; no n x n matrix is formed."""
    labels = np.array([0, 0, 0, 1, 1, 2, 2, 2, 2, 3])  # class 3 has no partner: never a source
    sampler = build(SAMPLERS, "edge", {"rels": "same", "rate": 2, "batch_size": 4000}, "s")
    assert sampler.neg_rate == 2
    batch = next(sampler.epoch(10, {"same": LabelEquality(labels)}, gen()))
    items = batch.items
    src, dst = items[batch.edge_rows].numpy(), items[batch.edge_cols].numpy()
    b = int(batch.edge_targets.sum())
    assert b == 4000 and batch.edge_rows.shape[0] == 3 * b
    assert (labels[src[:b]] == labels[dst[:b]]).all() and (src[:b] != dst[:b]).all()
    assert (labels[src[b:]] != labels[dst[b:]]).all()  # negatives: the pairs Eq. 1 sets to 0
    assert 9 not in src
    # positives uniform over the ordered same-label pairs: 6 + 2 + 12 = 20 pairs, 200 draws each
    pairs, counts = np.unique(src[:b] * 10 + dst[:b], return_counts=True)
    assert len(pairs) == 20 and counts.min() > 130 and counts.max() < 270
    t = batch_triplets(batch)
    assert t.shape == (2 * b, 3)
    assert (items[t[:, 0]].numpy() == src[b:]).all() and (items[t[:, 2]].numpy() == dst[b:]).all()
    assert (labels[items[t[:, 0]].numpy()] == labels[items[t[:, 1]].numpy()]).all()
    assert sampler.batches_in_epoch(10, {"same": LabelEquality(labels)}) == 1
