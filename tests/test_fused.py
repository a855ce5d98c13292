"""The fused edge losses (InfoNCE / Student-t, UMAP / LargeVis cross entropy) equal the generic path."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from paradime_core.batch import Batch, BatchContext
from paradime_core.losses import RelationLoss, cross_entropy, infonce, kl_div
from paradime_core.losses.fused import (
    EdgeCrossEntropy,
    PairedNegativeInfoNCE,
    SharedNegativeInfoNCE,
    fused_edge_loss,
    paired_negative_infonce,
    shared_negative_infonce,
)
from paradime_core.relation_data import NeighborGraph
from paradime_core.relations import EdgeDist, PDist
from paradime_core.relations.transforms import Cauchy, TDist
from paradime_core.sampling import EdgeSampler
from paradime_core.spec import blocks


def gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


N_ITEMS = 400


def ring_graph(n: int = N_ITEMS) -> NeighborGraph:
    return NeighborGraph(np.array([[(i + 1) % n, (i + 5) % n, (i + 11) % n] for i in range(n)]),
                         np.linspace(0.5, 2.0, 3 * n).reshape(n, 3))


def shared_batch(batch_size: int = 96, neg_rate: int = 9, group_size: int = 16, seed: int = 3):
    sampler = EdgeSampler("p", batch_size=batch_size, neg_rate=neg_rate, negatives="shared", group_size=group_size)
    batch = next(sampler.epoch(N_ITEMS, {"p": ring_graph()}, gen(seed)))
    assert batch.negative_groups is not None
    return batch


def fused_relation_loss(func, target_name, relation, batch):
    """The fused loss a relation loss binds for ``relation`` and uses on ``batch``, or None."""
    kernel = relation.edge_kernel() if hasattr(relation, "edge_kernel") else None
    fused = fused_edge_loss(func, kernel)
    return None if fused is None else fused.for_batch(target_name, batch)


def student_t(relation=None, alpha: float = 1.0) -> blocks.BuiltRelation:
    return blocks.BuiltRelation("q", "batch", "main", relation or EdgeDist(), [TDist(alpha)])


@pytest.mark.parametrize("scale", [1e-3, 1.0, 30.0])
def test_value_and_gradient_equal_the_generic_path(scale):
    """L = mean_b log(S_b / q_b) and dL/dY agree with edge_dist -> t_dist -> infonce."""
    batch = shared_batch()
    y = (scale * torch.randn(len(batch), 2, generator=gen(7))).requires_grad_()
    generic = infonce(batch.edge_targets, student_t()(y, batch))
    (grad_generic,) = torch.autograd.grad(generic, y)
    fused = shared_negative_infonce(y, batch)
    (grad_fused,) = torch.autograd.grad(fused, y)
    torch.testing.assert_close(fused, generic, rtol=1e-5, atol=1e-6)
    # the norm expansion ||y||^2 + ||z||^2 - 2<y, z> rounds like |y|^2 eps: 2e-5 of the largest
    # gradient entry at scale 30 (the generic differences: 6e-7); both against a float64 reference
    torch.testing.assert_close(grad_fused, grad_generic, rtol=1e-4, atol=1e-4 * float(grad_generic.abs().max()))


def test_closed_form_gradient_passes_gradcheck():
    """Float64 finite differences confirm the hand-written backward for all three inputs."""
    g, per_group, r, d = 3, 4, 5, 2
    sources = torch.randn(g * per_group, d, dtype=torch.float64, generator=gen(1), requires_grad=True)
    dests = torch.randn(g * per_group, d, dtype=torch.float64, generator=gen(2), requires_grad=True)
    negatives = torch.randn(g, r, d, dtype=torch.float64, generator=gen(3), requires_grad=True)
    assert torch.autograd.gradcheck(SharedNegativeInfoNCE.apply, (sources, dests, negatives))


def test_relation_loss_dispatches_to_the_fused_node_with_the_same_value():
    """RelationLoss on the t-SNE spec takes the fused node; its value and gradient match the generic one."""
    batch = shared_batch(seed=11)
    model = torch.nn.Linear(4, 2)
    x = torch.randn(N_ITEMS, 4, generator=gen(4))
    ctx = BatchContext(batch, model, {"main": x}, {"p": ring_graph()}, {"q": student_t()}, torch.device("cpu"))
    loss = RelationLoss(func=infonce, rels=["p", "q"])(ctx)
    assert loss.grad_fn is not None and "SharedNegativeInfoNCE" in type(loss.grad_fn).__name__
    (grad_fused,) = torch.autograd.grad(loss, model.weight)
    plain = BatchContext(batch, model, {"main": x}, {"p": ring_graph()}, {"q": student_t()}, torch.device("cpu"))
    generic = infonce(plain.global_relation("p"), plain.batch_relation("q"))
    (grad_generic,) = torch.autograd.grad(generic, model.weight)
    torch.testing.assert_close(loss, generic, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(grad_fused, grad_generic, rtol=1e-4, atol=1e-7)


def test_other_specs_keep_the_generic_path():
    """Any other function, kernel, metric, target or negative layout is not fused."""
    batch = shared_batch()
    assert fused_relation_loss(infonce, "p", student_t(), batch) is shared_negative_infonce
    assert fused_relation_loss(infonce, "p", student_t(PDist()), batch) is shared_negative_infonce
    assert fused_relation_loss(kl_div, "p", student_t(), batch) is None
    assert fused_relation_loss(infonce, "other", student_t(), batch) is None
    assert fused_relation_loss(infonce, "p", student_t(alpha=2.0), batch) is None
    assert fused_relation_loss(infonce, "p", student_t(EdgeDist("sqeuclidean")), batch) is None
    cauchy = blocks.BuiltRelation("q", "batch", "main", EdgeDist(), [Cauchy(a=1.0, b=1.0)])
    assert fused_relation_loss(infonce, "p", cauchy, batch) is None
    two_transforms = blocks.BuiltRelation("q", "batch", "main", EdgeDist(), [TDist(1.0), TDist(1.0)])
    assert fused_relation_loss(infonce, "p", two_transforms, batch) is None
    assert fused_relation_loss(infonce, "p", lambda outputs, batch: outputs, batch) is None
    uniform = next(EdgeSampler("p", batch_size=96, neg_rate=9).epoch(N_ITEMS, {"p": ring_graph()}, gen(0)))
    assert fused_relation_loss(infonce, "p", student_t(), uniform) is paired_negative_infonce
    assert fused_relation_loss(infonce, "p", cauchy, uniform) is None
    negative_rows = uniform.edge_rows[96:][torch.randperm(96 * 9, generator=gen(1))]
    shuffled = Batch(items=uniform.items, edge_rows=torch.cat([uniform.edge_rows[:96], negative_rows]),
                     edge_cols=uniform.edge_cols, edge_targets=uniform.edge_targets, edge_relation="p")
    assert fused_relation_loss(infonce, "p", student_t(), shuffled) is None  # negatives not of their positive


@pytest.mark.parametrize("negatives", ["pool", "uniform"])
@pytest.mark.parametrize("scale", [1e-3, 1.0, 30.0])
def test_paired_negative_infonce_equals_the_generic_path(negatives, scale):
    sampler = EdgeSampler("p", batch_size=64, neg_rate=7, negatives=negatives, pool_size=50)
    batch = next(sampler.epoch(N_ITEMS, {"p": ring_graph()}, gen(9)))
    y = (scale * torch.randn(len(batch), 2, generator=gen(10))).requires_grad_()
    generic = infonce(batch.edge_targets, student_t()(y, batch))
    (grad_generic,) = torch.autograd.grad(generic, y)
    fused = fused_relation_loss(infonce, "p", student_t(), batch)(y, batch)
    (grad_fused,) = torch.autograd.grad(fused, y)
    torch.testing.assert_close(fused, generic, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(grad_fused, grad_generic, rtol=1e-4, atol=1e-5 * float(grad_generic.abs().max()))


def test_paired_negative_gradient_passes_gradcheck():
    outputs = torch.randn(12, 2, dtype=torch.float64, generator=gen(1), requires_grad=True)
    sources = torch.tensor([0, 1, 2, 3, 3, 5])
    dests = torch.tensor([4, 6, 7, 8, 9, 0])
    negatives = torch.randint(0, 12, (6, 4), generator=gen(2))
    assert torch.autograd.gradcheck(lambda y: PairedNegativeInfoNCE.apply(y, sources, dests, negatives), (outputs,))


def pool_batch(batch_size: int = 96, neg_rate: int = 5, seed: int = 4):
    sampler = EdgeSampler("p", batch_size=batch_size, neg_rate=neg_rate, negatives="pool", pool_size=64)
    return next(sampler.epoch(N_ITEMS, {"p": ring_graph()}, gen(seed)))


def umap_kernel(**options) -> blocks.BuiltRelation:
    return blocks.BuiltRelation("q", "batch", "main", EdgeDist(), [Cauchy(**options)])


KERNELS = {"umap": lambda: umap_kernel(), "umap_b1": lambda: umap_kernel(a=1.5, b=1.0),
           "largevis": lambda: student_t()}


@pytest.mark.parametrize("kernel", sorted(KERNELS))
@pytest.mark.parametrize("layout", ["pool", "shared"])
@pytest.mark.parametrize("scale", [1e-3, 1.0, 30.0])
def test_cross_entropy_value_and_gradient_equal_the_generic_path(kernel, layout, scale):
    batch = pool_batch() if layout == "pool" else shared_batch()
    relation = KERNELS[kernel]()
    y = (scale * torch.randn(len(batch), 2, generator=gen(8))).requires_grad_()
    generic = cross_entropy(batch.edge_targets, relation(y, batch))
    (grad_generic,) = torch.autograd.grad(generic, y)
    fused = fused_relation_loss(cross_entropy, "p", relation, batch)
    assert fused is not None
    value = fused(y, batch)
    (grad_fused,) = torch.autograd.grad(value, y)
    torch.testing.assert_close(value, generic, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(grad_fused, grad_generic, rtol=1e-4, atol=1e-5 * float(grad_generic.abs().max()))


@pytest.mark.parametrize("kernel", ["umap", "largevis"])
def test_cross_entropy_with_repulsion_strength_equals_the_generic_path(kernel):
    """LargeVis' weighted negatives (gamma = 7) keep the fused node, with the generic value and gradient."""
    batch = pool_batch(seed=9)
    relation = KERNELS[kernel]()
    y = torch.randn(len(batch), 2, generator=gen(10)).requires_grad_()
    generic = cross_entropy(batch.edge_targets, relation(y, batch), repulsion_strength=7.0)
    (grad_generic,) = torch.autograd.grad(generic, y)
    kernel_spec = relation.edge_kernel()
    value = fused_edge_loss(cross_entropy, kernel_spec, repulsion_strength=7.0).for_batch("p", batch)(y, batch)
    (grad_fused,) = torch.autograd.grad(value, y)
    torch.testing.assert_close(value, generic, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(grad_fused, grad_generic, rtol=1e-4, atol=1e-5 * float(grad_generic.abs().max()))
    unweighted = cross_entropy(batch.edge_targets, relation(y, batch))
    assert value.item() > unweighted.item() * 1.5  # the repulsion terms count seven times


def test_cross_entropy_is_finite_where_points_coincide():
    """Coincident endpoints (s = 0): the Cauchy clamp makes the gradient 0, as in the generic path."""
    batch = pool_batch()
    relation = umap_kernel()
    y = torch.zeros(len(batch), 2, requires_grad=True)
    fused = fused_relation_loss(cross_entropy, "p", relation, batch)(y, batch)
    (grad,) = torch.autograd.grad(fused, y)
    generic = cross_entropy(batch.edge_targets, relation(y, batch))
    torch.testing.assert_close(fused, generic)
    assert torch.isfinite(grad).all() and float(grad.abs().max()) == 0.0


@pytest.mark.parametrize(("b", "clamp"), [(0.8, True), (1.0, True), (1.0, False)])
def test_cross_entropy_gradient_passes_gradcheck(b, clamp):
    outputs = torch.randn(12, 2, dtype=torch.float64, generator=gen(5), requires_grad=True)
    rows = torch.randint(0, 12, (30,), generator=gen(6))
    cols = (rows + 1 + torch.randint(0, 11, (30,), generator=gen(7))) % 12  # no self-edges (s = 0)
    targets = (torch.arange(30) % 3 == 0).double()
    assert torch.autograd.gradcheck(
        lambda y: EdgeCrossEntropy.apply(y, rows, cols, targets, 1.6, b, 1e-4, clamp), (outputs,))
    assert torch.autograd.gradcheck(
        lambda y: EdgeCrossEntropy.apply(y, rows, cols, targets, 1.6, b, 1e-4, clamp, 7.0), (outputs,))


def test_relation_loss_dispatches_umap_cross_entropy_to_the_fused_node():
    batch = pool_batch(seed=12)
    model = torch.nn.Linear(4, 2)
    x = torch.randn(N_ITEMS, 4, generator=gen(6))
    ctx = BatchContext(batch, model, {"main": x}, {"p": ring_graph()}, {"q": umap_kernel()}, torch.device("cpu"))
    loss = RelationLoss(func=cross_entropy, rels=["p", "q"])(ctx)
    assert "EdgeCrossEntropy" in type(loss.grad_fn).__name__
    plain = BatchContext(batch, model, {"main": x}, {"p": ring_graph()}, {"q": umap_kernel()}, torch.device("cpu"))
    generic = cross_entropy(plain.global_relation("p"), plain.batch_relation("q"))
    torch.testing.assert_close(loss, generic, rtol=1e-5, atol=1e-6)


def test_cross_entropy_other_specs_keep_the_generic_path():
    batch = pool_batch()
    assert fused_relation_loss(cross_entropy, "other", umap_kernel(), batch) is None
    assert fused_relation_loss(cross_entropy, "p", student_t(alpha=2.0), batch) is None
    # pdist gives the edge distances on an edge batch and says so: the same kernel, fused
    assert fused_relation_loss(cross_entropy, "p", student_t(PDist()), batch) is not None
    sq = blocks.BuiltRelation("q", "batch", "main", EdgeDist("sqeuclidean"), [Cauchy()])
    assert fused_relation_loss(cross_entropy, "p", sq, batch) is None
    two = blocks.BuiltRelation("q", "batch", "main", EdgeDist(), [Cauchy(), TDist(1.0)])
    assert fused_relation_loss(cross_entropy, "p", two, batch) is None
    bare = blocks.BuiltRelation("q", "batch", "main", EdgeDist(), [])
    assert fused_relation_loss(cross_entropy, "p", bare, batch) is None


class UserEdgeDistance:
    """A user's batch relation: euclidean distances along edges, declared as such."""

    levels = ("batch",)

    def edge_metric(self) -> str:
        return "euclidean"

    def __call__(self, outputs, batch):
        return torch.linalg.vector_norm(outputs[batch.edge_rows] - outputs[batch.edge_cols], dim=1)


class UserCauchy:
    """A user's kernel transform ``1 / (1 + 2 d^2)``, declared as an edge kernel."""

    levels = ("batch",)

    def edge_kernel(self):
        from paradime_core.protocols import EdgeKernel

        return EdgeKernel(2.0, 1.0, clamp=False)

    def __call__(self, d):
        return 1.0 / (1.0 + 2.0 * d * d)


def test_user_blocks_that_declare_their_kernel_get_the_fused_gradient():
    batch = pool_batch(seed=13)
    model = torch.nn.Linear(4, 2)
    x = torch.randn(N_ITEMS, 4, generator=gen(9))
    relation = blocks.BuiltRelation("q", "batch", "main", UserEdgeDistance(), [UserCauchy()])
    ctx = BatchContext(batch, model, {"main": x}, {"p": ring_graph()}, {"q": relation}, torch.device("cpu"))
    loss = RelationLoss(func=cross_entropy, rels=["p", "q"])(ctx)
    assert "EdgeCrossEntropy" in type(loss.grad_fn).__name__
    plain = BatchContext(batch, model, {"main": x}, {"p": ring_graph()}, {"q": relation}, torch.device("cpu"))
    generic = cross_entropy(plain.global_relation("p"), plain.batch_relation("q"))
    torch.testing.assert_close(loss, generic, rtol=1e-5, atol=1e-6)
