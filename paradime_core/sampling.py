r"""Samplers: how a training phase splits an epoch into batches.

Each sampler is built from its options and yields :class:`~paradime_core.batch.Batch`
objects from ``epoch(n_items, relations, generator)``; all randomness comes from the
``torch.Generator`` passed in, so an epoch is reproducible from the generator's state.
``relation_options`` names the options that hold a global relation's name (the spec layer
checks them).

``item(batch_size=500, shuffle=True, drop_last=False, batches_per_epoch=None)``
    A (random) permutation of the ``n`` items cut into ``ceil(n / batch_size)`` batches:
    every item appears exactly once per epoch (the last, short batch is dropped with
    ``drop_last``). ``batches_per_epoch = m`` makes an epoch exactly ``m`` batches of
    ``min(batch_size, n)`` items, cut from consecutive permutations (each item once per
    permutation), so a phase takes the same number of steps at any dataset size.

``edge(rels, batch_size=1024, neg_rate=5, batches_per_epoch=None, negatives="uniform", pool_size=None, group_size=64, edges_per_source=1)`` (aliases
``negative_edge``, ``neg_edge``; ``neg_sampling_rate`` and the paper's ``rate`` are accepted
for ``neg_rate``, ParaDime 1.x's ``edge_rel_key`` for ``rels``, its ``batches_per_epoch: -1``
for the default count)
    UMAP/LargeVis-style edge sampling from the sparse global relation ``W = rels`` with
    entries ``w_ij``. Each batch draws ``B = batch_size`` positive edges independently with

    .. math:: P\big((i, j)\big) = w_{ij} / \textstyle\sum_{kl} w_{kl}

    (self-loops and entries ``w_ij <= 0`` excluded), by inverse-CDF sampling: ``u ~ U[0, S)``
    in float64 and ``searchsorted(cumsum(w), u)``, which, unlike ``torch.multinomial``,
    works for more than :math:`2^{24}` edges. Each positive edge ``(i, j)`` gets ``r =
    neg_rate`` negative edges ``(i, m)`` with ``m`` uniform over all items. The edges are
    laid out as ``[B positives, then B*r negatives]``, where negatives ``b*r .. b*r + r - 1``
    belong to positive ``b`` (the layout ``infonce`` relies on); ``edge_targets`` is 1 for
    positives and 0 for negatives. ``items`` holds the unique items of all edges and
    ``edge_rows``/``edge_cols`` index into it. An epoch has ``batches_per_epoch`` batches,
    by default ``ceil(nnz(W) / batch_size)``: as many positive draws as ``W`` has edges.
    ``negatives`` chooses where the negative targets come from: ``uniform`` (all items),
    ``pool`` (a per-step uniform pool of ``pool_size`` items), ``batch`` (the endpoints of the
    positive edges) or ``shared``: consecutive groups of ``group_size`` positive edges share
    one set of ``r`` negatives drawn uniformly from all items, so a step embeds at most
    ``2 B + r B / group_size`` items and the edge relations compute the ``B r`` negative
    distances by broadcasting (``Batch.negative_groups``) instead of gathering ``B r`` pairs.
    ``edges_per_source = m > 1`` draws the positives in runs of ``m`` that share their
    source: ``B / m`` edges ``(i, j) ~ P`` and for each ``m - 1`` more edges ``(i, j')`` with
    ``P(j' | i) = w_{ij'} / \sum_l w_{il}``. Every positive is still distributed as
    ``P((i, j)) = w_ij / S`` (its source is drawn with probability ``\sum_l w_{il} / S``), but a
    step touches about ``B (1 + 1 / m)`` instead of ``2 B`` positive endpoints: fewer items per
    step on large data, where the network's pass over a step's items dominates.
    ``edges_per_source="auto"``: ``m = 8`` when the relation has at least ``8 B`` items,
    else 1 (on small data a step touches nearly every item anyway, so runs save nothing).
    Over a label-equality relation (paper Eq. 1, Sec. 5.2) a positive edge is uniform over
    the ordered pairs of distinct items with the same label and its ``r`` negatives are
    uniform over the items of other labels, drawn per class without forming the n x n
    relation; an epoch has ``ceil(n / batch_size)`` batches. A triplet loss reads an edge
    batch as triplets: each positive edge ``(a, p)`` with each of its negatives ``(a, n)``.

``triplet(rels, batch_size=500, rate=1)`` (paper Sec. 5.2)
    Anchors are an item batch (a permutation as in ``item``); each anchor ``a`` gets
    ``rate`` triplets ``(a, p, n)`` with ``p`` uniform among the items related to ``a``
    and ``n`` uniform among the items not related to ``a`` (both ``!= a``). "Related"
    means the same label for a label-equality relation, a stored entry (a neighbour) for a
    :class:`NeighborGraph` or sparse relation, and a non-zero value for a dense one.
    Anchors without any related (or unrelated) item are skipped. ``items`` holds the
    unique items of all triplets and ``triplets`` is the ``(t, 3)`` positions into it.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping
from typing import Annotated, Any, Literal, get_args

import numpy as np
import torch
from annotated_types import Ge

from paradime_core.batch import Batch
from paradime_core.errors import DataError
from paradime_core.relation_data import LabelEquality, RelationValue, n_items_of, to_csr
from paradime_core.spec.registry import register_sampler

Count = Annotated[int, Ge(1)]
BatchCount = Count | Literal[-1] | None
"""Batches per epoch: a count, or the sampler's own (None, or ParaDime 1.x's -1)."""


def _relation_name(value: str | None, sampler: str) -> str:
    if value is None:
        raise ValueError(f"'{sampler}' sampling needs rels: the name of a global relation")
    return value


def _lookup(relations: Mapping[str, RelationValue], name: str, n_items: int, sampler: str) -> RelationValue:
    if name not in relations:
        raise DataError(f"'{sampler}' sampling: global relation '{name}' is not available "
                        f"(computed: {', '.join(relations) or 'none'})")
    value = relations[name]
    if n_items_of(value) != n_items:
        raise DataError(f"'{sampler}' sampling: relation '{name}' covers {n_items_of(value)} items, "
                        f"the dataset has {n_items}")
    return value


def _batches_per_epoch(value: BatchCount) -> int | None:
    """None (the sampler's own count) for None or ParaDime 1.x's -1, else the count."""
    return None if value is None or value == -1 else int(value)


def _permutation(n: int, shuffle: bool, generator: torch.Generator) -> torch.Tensor:
    return torch.randperm(n, generator=generator) if shuffle else torch.arange(n)


def _chunks(order: torch.Tensor, batch_size: int, drop_last: bool) -> Iterator[torch.Tensor]:
    n = order.shape[0]
    stop = n - n % batch_size if drop_last else n
    for start in range(0, stop, batch_size):
        yield order[start:start + batch_size]


MARK_FACTOR = 8
"""Unique items by marking an ``n_items`` vector while ``n_items <= MARK_FACTOR x`` indices, else by sorting."""


def _unique_positions(*groups: torch.Tensor, n_items: int | None = None) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """Unique items of the concatenated groups and each group's positions into them.

    When the groups hold at least ``n_items`` indices (nearly every item is in the batch),
    the batch is simply all items, and positions are the indices themselves (no sort).
    """
    if n_items is not None and sum(g.shape[0] for g in groups) >= n_items:
        return torch.arange(n_items), list(groups)
    indices = torch.cat(groups)
    if n_items is not None and n_items <= MARK_FACTOR * indices.shape[0]:
        # mark the present items in an n-long vector; positions are its running count
        # (the same result as the sorted unique, without a sort)
        present = torch.zeros(n_items, dtype=torch.int64).index_fill_(0, indices, 1)
        items = torch.nonzero(present).squeeze(1)
        inverse = torch.index_select(torch.cumsum(present, 0).sub_(1), 0, indices)
    else:
        items, inverse = torch.unique(indices, sorted=True, return_inverse=True)
    return items, list(torch.split(inverse, [g.shape[0] for g in groups]))


def sample_weighted(cum_weights: np.ndarray | torch.Tensor, n: int, generator: torch.Generator) -> torch.Tensor:
    """``n`` indices ``k`` drawn with probability ``w_k / sum(w)`` from ``cumsum(w)`` (float64).

    Inverse-CDF sampling: ``u ~ U[0, S)`` and the first ``k`` with ``cumsum(w)_k > u``;
    float64 keeps resolution for far more than ``2^24`` categories (NumPy's searchsorted).
    """
    cum_weights = np.asarray(cum_weights, dtype=np.float64)
    u = torch.rand(n, generator=generator, dtype=torch.float64).numpy() * cum_weights[-1]
    index = np.searchsorted(cum_weights, u, side="right")
    return torch.from_numpy(np.minimum(index, cum_weights.shape[0] - 1))


class _RelationCache:
    """Per-relation preprocessed arrays, computed once (global relations never change)."""

    def __init__(self) -> None:
        self._value: Any = None
        self._prepared: Any = None

    def get(self, value: Any, prepare: Any) -> Any:
        if self._value is not value:
            self._prepared = prepare(value)
            self._value = value
        return self._prepared


@register_sampler("item")
class ItemSampler:
    """Batches of a permutation of all items."""

    relation_options: tuple[str, ...] = ()

    def __init__(self, batch_size: Count = 500, shuffle: bool = True, drop_last: bool = False,
                 batches_per_epoch: BatchCount = None):
        self.batch_size = int(batch_size)
        self.shuffle = shuffle
        self.drop_last = drop_last
        self.batches_per_epoch = _batches_per_epoch(batches_per_epoch)

    def n_batches(self, n_items: int) -> int:
        if self.batches_per_epoch is not None:
            return self.batches_per_epoch
        return n_items // self.batch_size if self.drop_last else math.ceil(n_items / self.batch_size)

    def batches_in_epoch(self, n_items: int, relations: Mapping[str, RelationValue]) -> int:
        return self.n_batches(n_items)

    def epoch(self, n_items: int, relations: Mapping[str, RelationValue],
              generator: torch.Generator) -> Iterator[Batch]:
        if self.batches_per_epoch is None:
            order = _permutation(n_items, self.shuffle, generator)
            for chunk in _chunks(order, self.batch_size, self.drop_last):
                yield Batch(items=chunk)
            return
        size = min(self.batch_size, n_items)
        order, start = _permutation(n_items, self.shuffle, generator), 0
        for _ in range(self.batches_per_epoch):
            if start + size > n_items:  # a fresh permutation; the old one's short tail is skipped
                order, start = _permutation(n_items, self.shuffle, generator), 0
            yield Batch(items=order[start:start + size])
            start += size


def _edge_arrays(value: RelationValue) -> tuple[torch.Tensor, torch.Tensor, np.ndarray]:
    """Rows, cols and cumulative weights (float64) of the positive off-diagonal entries."""
    if isinstance(value, LabelEquality):
        raise DataError("edge sampling needs a sparse, neighbour or dense relation; "
                        "a label-equality relation fits triplet sampling")
    matrix = to_csr(value)
    rows = np.repeat(np.arange(matrix.shape[0], dtype=np.int64), np.diff(matrix.indptr))
    cols = matrix.indices.astype(np.int64)
    weights = np.asarray(matrix.data, dtype=np.float64)
    if not np.all(np.isfinite(weights)) or (weights < 0).any():
        raise DataError("edge sampling needs finite, non-negative relation values (edge weights)")
    keep = (weights > 0) & (rows != cols)
    if not keep.any():
        raise DataError("edge sampling: the relation has no positive off-diagonal entries")
    rows, cols, weights = rows[keep], cols[keep], weights[keep]
    return torch.from_numpy(rows), torch.from_numpy(cols), np.cumsum(weights)


def _row_bounds(rows: torch.Tensor, cum_weights: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Per item ``i``: its edges' range ``[first_i, last_i)`` in the row-sorted edge arrays and
    the matching cumulative-weight interval ``[low_i, high_i)`` (``high_i - low_i = sum_l w_il``)."""
    row_ids = rows.numpy()
    n_rows = int(row_ids[-1]) + 1
    first = np.searchsorted(row_ids, np.arange(n_rows), side="left")
    last = np.searchsorted(row_ids, np.arange(n_rows), side="right")
    padded = np.concatenate([[0.0], cum_weights])
    return first, last, padded[first], padded[last]


def sample_runs_by_source(rows: torch.Tensor, cum_weights: np.ndarray, bounds: tuple[np.ndarray, ...],
                          n: int, run: int, generator: torch.Generator) -> torch.Tensor:
    """``n`` edge indices in runs of ``run`` sharing a source, each marginally ``∝ w``.

    The first edge of a run is drawn ``∝ w`` over all edges; the other ``run - 1`` are drawn
    ``∝ w`` within its row (inverse CDF on the row's slice ``[low_i, high_i)`` of
    ``cumsum(w)``), which is the conditional ``P(j | i)`` of the same joint distribution.
    """
    first, last, low, high = bounds
    n_runs = math.ceil(n / run)
    anchors = sample_weighted(cum_weights, n_runs, generator)
    source = rows[anchors].numpy()
    u = torch.rand(n_runs, run - 1, generator=generator, dtype=torch.float64).numpy()
    u = low[source, None] + u * (high[source] - low[source])[:, None]
    index = np.searchsorted(cum_weights, u, side="right")
    index = np.clip(index, first[source, None], last[source, None] - 1)  # rounding at a row's end
    runs = np.concatenate([anchors.numpy()[:, None], index], axis=1).reshape(-1)[:n]
    return torch.from_numpy(runs)


NegativeSampling = Literal["uniform", "pool", "batch", "shared"]
NEGATIVE_SAMPLING = get_args(NegativeSampling)
AUTO_RUN_LENGTH = 8


@register_sampler("edge", aliases=("negative_edge", "neg_edge", "negative_edge_sampling"))
class EdgeSampler:
    """Positive edges drawn proportionally to weight, plus ``neg_rate`` negatives each.

    ``negatives="uniform"``: negative targets drawn uniformly from all items (UMAP,
    LargeVis). ``negatives="pool"``: each step first draws ``pool_size`` items uniformly
    (default ``batch_size``) and every negative target uniformly from that pool: each
    negative is still uniform over all items, but a step embeds at most ``2 B + pool_size``
    items whatever ``neg_rate`` and the dataset size. ``negatives="batch"``: drawn uniformly
    from the endpoints of the batch's positive edges (as parametric UMAP does; biased
    towards items of high degree), no extra items to embed. ``negatives="shared"``: positive
    edges ``b`` with the same ``b // group_size`` share their ``r`` negatives, each uniform
    over all items; the negative distances are then a broadcast (G, group_size, r) block
    instead of ``B r`` gathered pairs.
    """

    relation_options: tuple[str, ...] = ("rels",)
    option_aliases = {"edge_rel_key": "rels", "relation": "rels", "rate": "neg_rate"}

    def __init__(self, rels: str | None = None, batch_size: Count = 1024,
                 neg_rate: Annotated[int, Ge(0)] | None = None, batches_per_epoch: BatchCount = None,
                 neg_sampling_rate: Annotated[int, Ge(0)] | None = None, negatives: NegativeSampling = "uniform",
                 pool_size: Count | None = None, group_size: Count = 64,
                 edges_per_source: Count | Literal["auto"] = 1):
        self.rels = _relation_name(rels, "edge")
        self.batch_size = int(batch_size)
        if neg_rate is not None and neg_sampling_rate is not None and neg_rate != neg_sampling_rate:
            raise ValueError("give neg_rate or neg_sampling_rate, not both")
        rate = neg_rate if neg_rate is not None else neg_sampling_rate
        self.neg_rate = 5 if rate is None else int(rate)
        self.batches_per_epoch = _batches_per_epoch(batches_per_epoch)
        self.negatives = negatives
        self.pool_size = self.batch_size if pool_size is None else int(pool_size)
        self.group_size = int(group_size)
        self.edges_per_source = edges_per_source if edges_per_source == "auto" else int(edges_per_source)
        self._cache = _RelationCache()
        self._bounds = _RelationCache()

    def n_batches(self, n_edges: int) -> int:
        return self.batches_per_epoch or math.ceil(n_edges / self.batch_size)

    def batches_in_epoch(self, n_items: int, relations: Mapping[str, RelationValue]) -> int:
        value = _lookup(relations, self.rels, n_items, "edge")
        if isinstance(value, LabelEquality):
            return self.batches_per_epoch or math.ceil(n_items / self.batch_size)
        return self.n_batches(self._cache.get(value, _edge_arrays)[0].shape[0])

    def run_length(self, n_items: int) -> int:
        """Positives per source in a step: ``edges_per_source``, or for ``auto`` 8 on
        relations of at least ``8 * batch_size`` items and 1 below."""
        if self.edges_per_source != "auto":
            return self.edges_per_source
        return AUTO_RUN_LENGTH if n_items >= AUTO_RUN_LENGTH * self.batch_size else 1

    def epoch(self, n_items: int, relations: Mapping[str, RelationValue],
              generator: torch.Generator) -> Iterator[Batch]:
        value = _lookup(relations, self.rels, n_items, "edge")
        if isinstance(value, LabelEquality):
            yield from self._label_epoch(value, n_items, generator)
            return
        rows, cols, cum_weights = self._cache.get(value, _edge_arrays)
        b, r, run = self.batch_size, self.neg_rate, self.run_length(n_items)
        bounds = self._bounds.get(rows, lambda rows: _row_bounds(rows, cum_weights)) if run > 1 else None
        for _ in range(self.n_batches(rows.shape[0])):
            if run > 1:
                picked = sample_runs_by_source(rows, cum_weights, bounds, b, run, generator)
            else:
                picked = sample_weighted(cum_weights, b, generator)
            sources, dests = rows[picked], cols[picked]
            if self.negatives == "batch":
                items, (src_pos, dst_pos) = _unique_positions(sources, dests)
                neg_pos = torch.randint(0, items.shape[0], (b * r,), generator=generator)
            elif self.negatives == "pool":
                pool = torch.randint(0, n_items, (self.pool_size,), generator=generator)
                items, (src_pos, dst_pos, pool_pos) = _unique_positions(sources, dests, pool, n_items=n_items)
                neg_pos = pool_pos[torch.randint(0, self.pool_size, (b * r,), generator=generator)]
            elif self.negatives == "shared":
                n_groups = math.ceil(b / self.group_size)
                shared = torch.randint(0, n_items, (n_groups * r,), generator=generator)
                items, (src_pos, dst_pos, group_pos) = _unique_positions(sources, dests, shared, n_items=n_items)
                groups = group_pos.reshape(n_groups, r)
                neg_pos = groups.repeat_interleave(self.group_size, dim=0)[:b].reshape(-1)
            else:
                negatives = torch.randint(0, n_items, (b * r,), generator=generator)
                items, (src_pos, dst_pos, neg_pos) = _unique_positions(sources, dests, negatives, n_items=n_items)
            # the broadcast layout needs equal groups; otherwise the gathered pairs are used
            shared_groups = groups if self.negatives == "shared" and r > 0 and b % self.group_size == 0 else None
            yield _edge_batch(items, src_pos, dst_pos, neg_pos, r, self.rels, shared_groups)

    def _label_epoch(self, value: LabelEquality, n_items: int, generator: torch.Generator) -> Iterator[Batch]:
        """Edges of a label-equality relation (paper Eq. 1) without forming its n x n pairs.

        A positive edge is uniform over the ordered pairs of distinct items with equal
        labels (its source drawn with probability proportional to the size of its class
        minus one, its target uniform among the other members); each gets ``neg_rate``
        negatives uniform among the items of other labels (the pairs Eq. 1 sets to 0). An
        epoch has ``ceil(n / batch_size)`` batches (each item about once a source), or
        ``batches_per_epoch``.
        """
        source = self._cache.get(value, lambda v: _LabelTriplets(v.labels))
        cum_weights = self._bounds.get(source, _label_source_weights)
        b, r = self.batch_size, self.neg_rate
        for _ in range(self.batches_per_epoch or math.ceil(n_items / b)):
            anchors = sample_weighted(cum_weights, b, generator)
            anchors, positives, _ = source.sample(anchors, generator)
            _, _, negatives = source.sample(anchors.repeat_interleave(r), generator)
            items, (src_pos, dst_pos, neg_pos) = _unique_positions(anchors, positives, negatives, n_items=n_items)
            yield _edge_batch(items, src_pos, dst_pos, neg_pos, r, self.rels)


def _edge_batch(items: torch.Tensor, src_pos: torch.Tensor, dst_pos: torch.Tensor, neg_pos: torch.Tensor,
                rate: int, relation: str, negative_groups: torch.Tensor | None = None) -> Batch:
    """The ``[B positives, B*r negatives]`` edge layout, its targets and its triplets."""
    b = src_pos.shape[0]
    return Batch(
        items=items,
        edge_rows=torch.cat([src_pos, src_pos.repeat_interleave(rate)]),
        edge_cols=torch.cat([dst_pos, neg_pos]),
        edge_targets=torch.cat([torch.ones(b), torch.zeros(b * rate)]),
        edge_relation=relation,
        negative_groups=negative_groups,
    )


def _label_source_weights(source: _LabelTriplets) -> np.ndarray:
    """cumsum of ``count_i - 1`` over items whose class has other members and an outside."""
    weights = (source.count - 1).clamp_(min=0).double()
    weights[source.count >= source.n] = 0.0
    return np.cumsum(weights.numpy())


class _LabelTriplets:
    """Positives share the anchor's label, negatives do not (vectorised over all anchors)."""

    def __init__(self, labels: np.ndarray):
        labels = np.asarray(labels)
        order = np.argsort(labels, kind="stable")
        _, start, count = np.unique(labels[order], return_index=True, return_counts=True)
        group = np.empty(len(labels), dtype=np.int64)
        group[order] = np.repeat(np.arange(len(start)), count)
        rank = np.empty(len(labels), dtype=np.int64)
        rank[order] = np.arange(len(labels))
        self.n = len(labels)
        self.order = torch.from_numpy(order.astype(np.int64))
        self.start = torch.from_numpy(start.astype(np.int64))[group]  # per item: its group's start
        self.count = torch.from_numpy(count.astype(np.int64))[group]  # per item: its group's size
        self.rank = torch.from_numpy(rank)
        if (self.count == 1).all():
            raise DataError("triplet sampling: every label occurs once, no positives exist")
        if (self.count == self.n).all():
            raise DataError("triplet sampling: all items share one label, no negatives exist")

    def sample(self, anchors: torch.Tensor, generator: torch.Generator):
        start, count = self.start[anchors], self.count[anchors]
        keep = (count > 1) & (count < self.n)
        anchors, start, count = anchors[keep], start[keep], count[keep]
        u = torch.rand(anchors.shape[0], 2, generator=generator, dtype=torch.float64)
        # positive: one of the other count-1 members of the group (skip the anchor's own rank)
        offset = (u[:, 0] * (count - 1)).long().clamp_(max=count - 2)
        pos_rank = start + offset
        pos_rank += (pos_rank >= self.rank[anchors]).long()
        # negative: one of the n-count items outside [start, start+count) in label order
        offset = (u[:, 1] * (self.n - count)).long().clamp_(max=self.n - count - 1)
        neg_rank = torch.where(offset < start, offset, offset + count)
        return anchors, self.order[pos_rank], self.order[neg_rank]


class _GraphTriplets:
    """Positives are stored neighbours, negatives uniform non-neighbours (by rejection)."""

    max_redraws = 32

    def __init__(self, value: RelationValue):
        matrix = to_csr(value)  # a dense relation keeps its non-zero entries only
        coo = matrix.tocoo()
        rows, cols = coo.row.astype(np.int64), coo.col.astype(np.int64)
        off = rows != cols
        rows, cols = rows[off], cols[off]
        self.n = matrix.shape[0]
        keys = np.sort(rows * self.n + cols)
        keys = keys[np.r_[True, keys[1:] != keys[:-1]]] if keys.size else keys
        rows, cols = keys // self.n, keys % self.n  # sorted by row, then column
        self.keys = keys
        self.cols = torch.from_numpy(cols)
        self.indptr = torch.from_numpy(np.searchsorted(rows, np.arange(self.n + 1)).astype(np.int64))
        degree = self.indptr[1:] - self.indptr[:-1]
        if not ((degree > 0) & (degree < self.n - 1)).any():
            raise DataError("triplet sampling: no item has both related and unrelated items")

    def _related(self, anchors: torch.Tensor, others: torch.Tensor) -> torch.Tensor:
        query = (anchors * self.n + others).numpy()
        where = np.minimum(np.searchsorted(self.keys, query), self.keys.shape[0] - 1)
        return torch.from_numpy(self.keys[where] == query)

    def sample(self, anchors: torch.Tensor, generator: torch.Generator):
        begin = self.indptr[anchors]
        degree = self.indptr[anchors + 1] - begin
        keep = (degree > 0) & (degree < self.n - 1)
        anchors, begin, degree = anchors[keep], begin[keep], degree[keep]
        u = torch.rand(anchors.shape[0], generator=generator, dtype=torch.float64)
        positives = self.cols[begin + (u * degree).long().clamp_(max=degree - 1)]
        negatives = torch.randint(0, self.n, anchors.shape, generator=generator)
        bad = (negatives == anchors) | self._related(anchors, negatives)
        for _ in range(self.max_redraws):
            if not bad.any():
                break
            redraw = torch.randint(0, self.n, (int(bad.sum()),), generator=generator)
            negatives[bad] = redraw
            bad = (negatives == anchors) | self._related(anchors, negatives)
        ok = ~bad
        return anchors[ok], positives[ok], negatives[ok]


def _triplet_source(value: RelationValue) -> Any:
    if isinstance(value, LabelEquality):
        return _LabelTriplets(value.labels)
    return _GraphTriplets(value)


@register_sampler("triplet", aliases=("triplets",))
class TripletSampler:
    """Item batches of anchors, each with ``rate`` (anchor, positive, negative) triplets."""

    relation_options: tuple[str, ...] = ("rels",)

    def __init__(self, rels: str | None = None, batch_size: Count = 500, rate: Count = 1,
                 shuffle: bool = True):
        self.rels = _relation_name(rels, "triplet")
        self.batch_size = int(batch_size)
        self.rate = int(rate)
        self.shuffle = shuffle
        self._cache = _RelationCache()

    def batches_in_epoch(self, n_items: int, relations: Mapping[str, RelationValue]) -> int:
        return math.ceil(n_items / self.batch_size)

    def epoch(self, n_items: int, relations: Mapping[str, RelationValue],
              generator: torch.Generator) -> Iterator[Batch]:
        value = _lookup(relations, self.rels, n_items, "triplet")
        source = self._cache.get(value, _triplet_source)
        order = _permutation(n_items, self.shuffle, generator)
        for chunk in _chunks(order, self.batch_size, drop_last=False):
            anchors, positives, negatives = source.sample(chunk.repeat_interleave(self.rate), generator)
            if anchors.shape[0] == 0:
                continue
            items, positions = _unique_positions(anchors, positives, negatives)
            yield Batch(items=items, triplets=torch.stack(positions, dim=1))


__all__ = ["ItemSampler", "EdgeSampler", "TripletSampler", "sample_weighted"]
