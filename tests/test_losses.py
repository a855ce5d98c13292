"""Loss functions against hand-computed formulas; loss types through a BatchContext."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import nn

from paradime_core import losses
from paradime_core.batch import Batch, BatchContext
from paradime_core.errors import DataError, SpecError
from paradime_core.relation_data import NeighborGraph
from paradime_core.sampling import EdgeSampler
from paradime_core.spec import LossSpec, Spec, blocks
from paradime_core.spec.registry import LOSS_FUNCTIONS, LOSS_TYPES, register_loss_type


class Toy(nn.Module):
    """A tiny model with every method the loss types call."""

    def __init__(self, in_dim: int = 4, n_classes: int = 3):
        super().__init__()
        torch.manual_seed(0)
        self.embedder = nn.Linear(in_dim, 2)
        self.classifier = nn.Linear(in_dim, n_classes)
        self.encoder = nn.Linear(in_dim, 2)
        self.decoder = nn.Linear(2, in_dim)

    def embed(self, x):
        return self.embedder(x)

    def classify(self, x):
        return self.classifier(x)

    def encode(self, x):
        return self.encoder(x)

    def decode(self, z):
        return self.decoder(z)


def pdist(outputs, batch):
    return torch.cdist(outputs, outputs)


def edge_dist(outputs, batch):
    return torch.linalg.vector_norm(outputs[batch.edge_rows] - outputs[batch.edge_cols], dim=1)


@pytest.fixture
def setup():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(12, 4)).astype(np.float32)
    data = {
        "main": torch.from_numpy(x),
        "labels": torch.from_numpy(rng.integers(0, 3, 12)),
        "pca": torch.from_numpy(rng.normal(size=(12, 2)).astype(np.float32)),
    }
    full = np.sqrt(((x[:, None] - x[None]) ** 2).sum(-1))
    relations = {"d": full}
    batch_relations = {"q": pdist, "qe": edge_dist}
    return Toy(), data, relations, batch_relations


def context(setup, batch):
    model, data, relations, batch_relations = setup
    return BatchContext(batch, model, data, relations, batch_relations, torch.device("cpu"))


def item_batch():
    return Batch(items=torch.tensor([0, 3, 5, 7, 9]))


# ---------------------------------------------------------------- loss functions


P = torch.tensor([[0.0, 0.2, 0.1], [0.2, 0.0, 0.4], [0.1, 0.4, 0.0]])
Q = torch.tensor([[0.0, 0.5, 0.3], [0.5, 0.0, 0.1], [0.3, 0.1, 0.0]])


def test_kl_div_matches_formula():
    p, q = P / P.sum(), Q / Q.sum()
    mask = p > 0
    expected = (p[mask] * torch.log(p[mask] / q[mask])).sum()
    # a (b, b) block of an item batch: the sum per item of the batch (the paper's library)
    assert losses.kl_div(P, Q).item() == pytest.approx(expected.item() / 3, rel=1e-6)
    # an edge vector: the plain sum
    assert losses.kl_div(P.flatten(), Q.flatten()).item() == pytest.approx(expected.item(), rel=1e-6)
    assert LOSS_FUNCTIONS.get("kl") is losses.kl_div
    assert LOSS_FUNCTIONS.get("kl div") is losses.kl_div


def test_kl_div_zero_when_equal_up_to_scale_and_ignores_zero_targets():
    assert losses.kl_div(P, 3.0 * P).item() == pytest.approx(0.0, abs=1e-7)
    p = torch.tensor([0.0, 1.0, 1.0])
    q = torch.tensor([0.0, 1.0, 1.0])  # p = q = 0 contributes 0 (no NaN)
    assert losses.kl_div(p, q).item() == pytest.approx(0.0, abs=1e-7)
    q2 = torch.tensor([2.0, 1.0, 1.0])  # mass on a p = 0 entry: P=(0,.5,.5), Q=(.5,.25,.25)
    assert losses.kl_div(p, q2).item() == pytest.approx(math.log(2.0), rel=1e-6)


def test_kl_div_gradient_finite_with_zero_prediction():
    q = torch.tensor([0.0, 0.5, 0.5], requires_grad=True)
    losses.kl_div(torch.tensor([1.0, 1.0, 1.0]), q).backward()
    assert torch.isfinite(q.grad).all()


def test_mse_mae_huber():
    p = torch.tensor([1.0, 2.0, 3.0, 4.0])
    q = torch.tensor([1.5, 2.0, 0.0, 4.2])
    d = (p - q).numpy()
    assert losses.mse(p, q).item() == pytest.approx(np.mean(d**2), rel=1e-6)
    assert LOSS_FUNCTIONS.get("stress") is losses.mse
    assert losses.mae(p, q).item() == pytest.approx(np.mean(np.abs(d)), rel=1e-6)
    hub = np.where(np.abs(d) <= 1, 0.5 * d**2, np.abs(d) - 0.5)
    assert losses.huber(p, q).item() == pytest.approx(hub.mean(), rel=1e-6)


def test_shape_mismatch_is_a_data_error():
    with pytest.raises(DataError, match="shape"):
        losses.mse(torch.zeros(3), torch.zeros(4))


def test_cross_entropy_matches_formula_and_clamps():
    p = torch.tensor([1.0, 1.0, 0.0, 0.0, 0.3])
    q = torch.tensor([0.9, 0.2, 0.1, 0.7, 0.5])
    e = 1e-4
    expected = -np.mean([math.log(0.9 + e), math.log(0.2 + e), math.log(0.9 + e), math.log(0.3 + e),
                         0.3 * math.log(0.5 + e) + 0.7 * math.log(0.5 + e)])
    assert losses.cross_entropy(p, q).item() == pytest.approx(expected, rel=1e-6)
    extreme = losses.cross_entropy(torch.tensor([1.0, 0.0]), torch.tensor([0.0, 1.0]))
    assert extreme.item() == pytest.approx(-math.log(1e-4), rel=1e-4)
    for alias in ("umap_cross_entropy", "fuzzy cross entropy"):
        assert LOSS_FUNCTIONS.get(alias) is losses.cross_entropy
    # a (b, b) block: the sum per item of the batch (the paper's library), not the mean of b^2 entries
    block_p, block_q = torch.tensor([[0.0, 1.0], [1.0, 0.0]]), torch.tensor([[0.5, 0.9], [0.9, 0.5]])
    terms = 2 * math.log(0.5 + e) + 2 * math.log(0.9 + e)
    assert losses.cross_entropy(block_p, block_q).item() == pytest.approx(-terms / 2, rel=1e-6)


def test_cross_entropy_weights_the_repulsion_terms_by_repulsion_strength():
    """LargeVis' gamma: -(1/N) sum [p log(q + e) + gamma (1 - p) log(1 - q + e)], by hand."""
    p = torch.tensor([1.0, 0.0, 0.0, 0.25])
    q = torch.tensor([0.6, 0.3, 0.8, 0.5])
    e, gamma = 1e-4, 7.0
    expected = -np.mean([math.log(0.6 + e), gamma * math.log(0.7 + e), gamma * math.log(0.2 + e),
                         0.25 * math.log(0.5 + e) + gamma * 0.75 * math.log(0.5 + e)])
    assert losses.cross_entropy(p, q, repulsion_strength=gamma).item() == pytest.approx(expected, rel=1e-6)
    assert losses.cross_entropy(p, q, repulsion_strength=1.0).item() == losses.cross_entropy(p, q).item()


def edge_batch_context(setup):
    """An edge batch (4 positives, 2 negatives each) of a ring graph ``knn``, with a Student-t
    similarity ``sim`` along its edges."""
    graph = NeighborGraph(np.array([[(i + 1) % 12, (i + 2) % 12] for i in range(12)]), np.ones((12, 2)))
    _, _, relations, _ = setup
    relations["knn"] = graph
    batch = next(EdgeSampler("knn", batch_size=4, neg_rate=2).epoch(12, relations, torch.Generator().manual_seed(1)))
    ctx = context(setup, batch)
    ctx.batch_relations = {**ctx.batch_relations, "sim": lambda out, b: 1.0 / (1.0 + edge_dist(out, b) ** 2)}
    return ctx, batch


def test_relation_loss_passes_repulsion_strength_and_refuses_it_where_the_function_has_none(setup):
    ctx, batch = edge_batch_context(setup)
    value = losses.RelationLoss(func=losses.cross_entropy, rels=["knn", "sim"], repulsion_strength=7.0)(ctx)
    y = ctx.output()
    q = 1.0 / (1.0 + torch.linalg.vector_norm(y[batch.edge_rows] - y[batch.edge_cols], dim=1) ** 2)
    expected = -(torch.log(q[:4] + 1e-4).sum() + 7.0 * torch.log(1 - q[4:] + 1e-4).sum()) / 12
    assert value.item() == pytest.approx(expected.item(), rel=1e-5)
    with pytest.raises(ValueError, match="repulsion_strength applies to loss functions that take it"):
        losses.RelationLoss(func=losses.infonce, rels=["knn", "sim"], repulsion_strength=7.0)
    negative = LossSpec(name="r", type="relation", func="cross_entropy", rels=["knn", "sim"],
                        options={"repulsion_strength": -1})
    with pytest.raises(SpecError, match=r"^losses\[0\]\.options\.repulsion_strength: expected a number >= 0, got -1$"):
        blocks.build_loss(negative, None, "losses[0]")


def test_cross_entropy_repels_items_embedded_on_top_of_each_other():
    """A negative edge with q -> 1 (distance ~0) keeps a repulsive gradient (no clamp at 1 - eps)."""
    q = torch.tensor([1.0 - 1e-7, 1.0 - 1e-5], requires_grad=True)
    losses.cross_entropy(torch.zeros(2), q).backward()
    assert (q.grad > 1.0).all()  # pushes q down, i.e. the pair apart


def test_infonce_matches_formula():
    # B = 2 positives, r = 3 negatives each
    target = torch.tensor([1.0, 1.0] + [0.0] * 6)
    q = torch.tensor([0.8, 0.4, 0.1, 0.2, 0.3, 0.05, 0.05, 0.5])
    expected = -0.5 * (math.log(0.8 / (0.8 + 0.6)) + math.log(0.4 / (0.4 + 0.6)))
    assert losses.infonce(target, q).item() == pytest.approx(expected, rel=1e-6)
    assert LOSS_FUNCTIONS.get("nce_tsne") is losses.infonce
    assert LOSS_FUNCTIONS.get("contrastive") is losses.infonce


def test_infonce_rejects_other_layouts():
    with pytest.raises(DataError, match="positive"):
        losses.infonce(torch.tensor([0.0, 1.0, 0.0, 0.0]), torch.rand(4))
    with pytest.raises(DataError, match="B\\*r"):
        losses.infonce(torch.tensor([1.0, 1.0, 0.0]), torch.rand(3))


# ---------------------------------------------------------------- loss types


def test_relation_loss_on_item_batch_zeroes_diagonal(setup):
    ctx = context(setup, item_batch())
    seen = {}

    def spy(p, q):
        seen["p"], seen["q"] = p, q
        return losses.mse(p, q)

    value = losses.RelationLoss(func=spy, rels=["d", "q"])(ctx)
    model, data, relations, _ = setup
    items = item_batch().items
    p = torch.from_numpy(relations["d"][np.ix_(items, items)])
    y = model.embed(data["main"][items])
    q = torch.cdist(y, y)
    expected = ((p - q).fill_diagonal_(0.0) ** 2).mean()
    assert value.item() == pytest.approx(expected.item(), rel=1e-5)
    assert torch.all(torch.diagonal(seen["q"]) == 0) and torch.all(torch.diagonal(seen["p"]) == 0)
    value.backward()
    assert model.embedder.weight.grad is not None
    assert model.classifier.weight.grad is None


def test_relation_loss_on_edge_batch_uses_edge_targets(setup):
    ctx, batch = edge_batch_context(setup)
    value = losses.RelationLoss(func=losses.cross_entropy, rels=["knn", "sim"])(ctx)
    y = ctx.output()
    d = torch.linalg.vector_norm(y[batch.edge_rows] - y[batch.edge_cols], dim=1)
    q = 1.0 / (1.0 + d**2)
    expected = -(torch.log(q[:4] + 1e-4).sum() + torch.log(1 - q[4:] + 1e-4).sum()) / 12
    assert value.item() == pytest.approx(expected.item(), rel=1e-5)
    nce = losses.RelationLoss(func=losses.infonce, rels=["knn", "sim"])(ctx)
    qn = (1.0 / (1.0 + d**2))
    expected_nce = -torch.log(qn[:4] / (qn[:4] + qn[4:].reshape(4, 2).sum(1))).mean()
    assert nce.item() == pytest.approx(expected_nce.item(), rel=1e-5)


def test_relation_loss_shape_mismatch_names_relations(setup):
    ctx = context(setup, item_batch())
    ctx.batch_relations = {"bad": lambda out, b: out[:, 0]}
    with pytest.raises(DataError, match="'d'.*'bad'"):
        losses.RelationLoss(func=losses.mse, rels=["d", "bad"])(ctx)


def test_classification_loss(setup):
    ctx = context(setup, item_batch())
    model, data, _, _ = setup
    items = item_batch().items
    logits = model.classify(data["main"][items])
    labels = data["labels"][items]
    expected = -torch.log_softmax(logits, dim=1)[torch.arange(5), labels].mean()
    assert losses.ClassificationLoss()(ctx).item() == pytest.approx(expected.item(), rel=1e-5)
    # func: cross_entropy means the categorical one here
    built = losses.ClassificationLoss(func=LOSS_FUNCTIONS.get("cross_entropy"), data=["labels"])
    assert built(ctx).item() == pytest.approx(expected.item(), rel=1e-5)


def test_reconstruction_loss(setup):
    ctx = context(setup, item_batch())
    model, data, _, _ = setup
    x = data["main"][item_batch().items]
    expected = ((model.decode(model.encode(x)) - x) ** 2).mean()
    assert losses.ReconstructionLoss()(ctx).item() == pytest.approx(expected.item(), rel=1e-5)
    l1 = losses.ReconstructionLoss(func=losses.mae, methods=["encode", "decode"])(ctx)
    assert l1.item() == pytest.approx((model.decode(model.encode(x)) - x).abs().mean().item(), rel=1e-5)


def test_position_loss_one_or_two_data_keys(setup):
    ctx = context(setup, item_batch())
    model, data, _, _ = setup
    items = item_batch().items
    expected = ((model.embed(data["main"][items]) - data["pca"][items]) ** 2).mean()
    assert losses.PositionLoss(data=["pca"])(ctx).item() == pytest.approx(expected.item(), rel=1e-5)
    assert losses.PositionLoss(data=["main", "pca"])(ctx).item() == pytest.approx(expected.item(), rel=1e-5)
    with pytest.raises(ValueError, match="target"):
        losses.PositionLoss()


def test_triplet_loss_formula_zero_when_margin_satisfied_and_needs_triplets(setup):
    model, data, relations, batch_relations = setup

    class Fixed(nn.Module):
        def embed(self, x):
            return x[:, :2]

    coords = torch.tensor([[0.0, 0.0], [1.0, 0.0], [5.0, 0.0], [0.0, 1.5]])
    data = {"main": coords}
    triplets = torch.tensor([[0, 1, 2], [0, 1, 3], [1, 0, 3]])
    batch = Batch(items=torch.arange(4), triplets=triplets)
    ctx = BatchContext(batch, Fixed(), data, {}, {}, torch.device("cpu"))
    # d(a,p) - d(a,n) + 1: [1-5+1, 1-1.5+1, 1-sqrt(1+2.25)+1]
    terms = [max(0.0, v) for v in (-3.0, 0.5, 2.0 - math.sqrt(3.25))]
    assert losses.TripletLoss()(ctx).item() == pytest.approx(np.mean(terms), rel=1e-6)
    assert losses.TripletLoss(margin=0.2)(ctx).item() == pytest.approx(0.0, abs=1e-7)
    ctx_none = BatchContext(Batch(items=torch.arange(4)), Fixed(), data, {}, {}, torch.device("cpu"))
    with pytest.raises(DataError, match="needs triplets"):
        losses.TripletLoss()(ctx_none)
    with pytest.raises(SpecError, match=r"^losses\[1\]\.options\.margin: expected a number >= 0, got -1$"):
        blocks.build_loss(LossSpec(name="t", type="triplet", options={"margin": -1}), None, "losses[1]")


def test_correlation_loss_is_eq_3_per_named_pair():
    """Eq. 3 by hand: sum over the named (column, dim) pairs of 1 - rho^2."""
    class Fixed(nn.Module):
        def embed(self, x):
            return x[:, :2]

    t = torch.linspace(0, 1, 8, dtype=torch.float64)
    data = {"main": torch.stack([t, t**3], dim=1).float(), "attrs": torch.stack([-2 * t + 1, t**2], dim=1).float()}
    ctx = BatchContext(Batch(items=torch.arange(8)), Fixed(), data, {}, {}, torch.device("cpu"))

    def rho(a, b):
        a, b = a - a.mean(), b - b.mean()
        return float((a * b).sum() / np.sqrt(float((a * a).sum() * (b * b).sum())))

    tn = t.numpy()
    r00 = rho(-2 * tn + 1, tn)  # exactly -1: an affine relation of either sign costs nothing
    r11 = rho(tn**2, tn**3)
    r10 = rho(tn**2, tn)
    assert losses.CorrelationLoss(data=["attrs"], columns=[0], dims=[0])(ctx).item() == pytest.approx(1 - r00**2, abs=1e-6)
    assert 1 - r00**2 == pytest.approx(0.0, abs=1e-9)
    pairs = losses.CorrelationLoss(data=["attrs"], columns=[1, 1], dims=[1, 0])(ctx).item()
    assert pairs == pytest.approx((1 - r11**2) + (1 - r10**2), abs=1e-5)
    assert losses.CorrelationLoss(data=["attrs"], columns=[0], dims=[0], form="signed")(ctx).item() == pytest.approx(-r00, abs=1e-6)
    with pytest.raises(SpecError, match=r"options\.form: expected one of squared, signed, got 'cubed'"):
        blocks.build_loss(LossSpec(name="c", type="correlation", options={"form": "cubed"}), None, "losses[0]")


def test_correlation_loss_signs_and_absolute():
    class Fixed(nn.Module):
        def embed(self, x):
            return x[:, :2]

    t = torch.linspace(0, 1, 8)
    data = {"main": torch.stack([t, -t], dim=1), "attrs": torch.stack([3 * t + 1, t**2, t], dim=1)}
    ctx = BatchContext(Batch(items=torch.arange(8)), Fixed(), data, {}, {}, torch.device("cpu"))
    signed = {"form": "signed"}
    assert losses.CorrelationLoss(data=["attrs"], columns=[0], dims=[0], **signed)(ctx).item() == pytest.approx(-1.0, abs=1e-6)
    assert losses.CorrelationLoss(data=["attrs"], columns=[0], dims=[1], **signed)(ctx).item() == pytest.approx(1.0, abs=1e-6)
    both = losses.CorrelationLoss(data=["main", "attrs"], columns=[0, 2], dims=[0, 1], absolute=True, **signed)
    assert both(ctx).item() == pytest.approx(-2.0, abs=1e-6)
    t2 = (t**2).numpy()
    rho = np.corrcoef(t2, t.numpy())[0, 1]
    assert losses.CorrelationLoss(data=["attrs"], columns=[1], dims=[0], **signed)(ctx).item() == pytest.approx(-rho, abs=1e-6)
    def correlation(**options):
        return blocks.build_loss(LossSpec(name="c", type="correlation", options=options), None, "losses[0]")

    with pytest.raises(SpecError, match=r"^losses\[0\]\.options: loss type 'correlation': .*pair up"):
        correlation(columns=[0, 1], dims=[0])
    with pytest.raises(SpecError, match=r"options\.method: expected pearson, got 'kendall'"):
        correlation(method="kendall")
    with pytest.raises(SpecError, match=r"options\.columns: expected an integer >= 0 or a list of integers >= 0 "
                                        r"with at least 1 item or null, got \[\]"):
        correlation(columns=[])
    assert correlation(columns=1, dims=[0]).columns == [1]


def test_correlation_loss_is_differentiable(setup):
    ctx = context(setup, item_batch())
    model = setup[0]
    losses.CorrelationLoss(columns=[0, 1])(ctx).backward()
    assert torch.isfinite(model.embedder.weight.grad).all()
    assert model.embedder.weight.grad.abs().sum() > 0


def test_compound_loss_weights_and_components(setup):
    ctx = context(setup, item_batch())
    pos = losses.PositionLoss(data=["pca"])
    rec = losses.ReconstructionLoss()
    compound = losses.CompoundLoss([("pos", pos, 2.0), ("rec", rec, 0.5)])
    total, parts = compound(ctx)
    assert set(parts) == {"pos", "rec"} and compound.names == ["pos", "rec"]
    assert all(isinstance(v, float) for v in parts.values())
    assert total.item() == pytest.approx(2.0 * pos(ctx).item() + 0.5 * rec(ctx).item(), rel=1e-6)
    assert total.requires_grad


def test_build_loss_from_spec_by_name():
    spec = LossSpec(name="emb", type="relation", func="kl div", rels=["p", "q"])
    built = blocks.build_loss(spec, None, "losses[0]")
    assert isinstance(built, losses.RelationLoss) and built.func is losses.kl_div
    with pytest.raises(SpecError, match="losses\\[0\\].func"):
        blocks.build_loss(LossSpec(name="e", type="relation", rels=["p", "q"]), None, "losses[0]")
    with pytest.raises(SpecError, match=r"^losses\[1\]\.options\.margin: expected a number >= 0, got 'big'$"):
        blocks.build_loss(LossSpec(name="t", type="triplet", options={"margin": "big"}), None, "losses[1]")
    with pytest.raises(SpecError, match="relations"):
        blocks.build_loss(LossSpec(name="c", type="classification", rels=["p"]), None, "losses[2]")


CALLS = {"n": 0}


@register_loss_type("test_counting_loss", overwrite=True)
class CountingLoss(losses.LossType):
    """A user-defined loss: mean squared embedding norm, counting its calls."""

    def __init__(self, func=None, data=None, rels=None, methods=None, scale: float = 1.0):
        super().__init__(func, data, rels, methods)
        self.scale = scale

    def __call__(self, ctx):
        CALLS["n"] += 1
        return self.scale * ctx.output("embed", self.data[0] if self.data else "main").pow(2).mean()


def test_custom_loss_type_is_used_by_name_in_training():
    from paradime_core.training import loop as training

    CALLS["n"] = 0
    spec = Spec.from_dict({
        "losses": [{"name": "mine", "type": "test counting loss", "options": {"scale": 2.0}}],
        "training_phases": [{"epochs": 3, "sampling": {"type": "item", "batch_size": 4},
                             "loss": {"components": ["mine"]}}],
    })
    assert isinstance(blocks.build_loss(spec.losses[0], spec, "losses[0]"), CountingLoss)
    CALLS["n"] = 0
    model = nn.Linear(3, 2)
    result = training.train_phase(model, spec, 0, {"main": torch.randn(10, 3)}, {}, progress=False)
    assert CALLS["n"] == 3 * 3  # 3 epochs x ceil(10 / 4) batches
    assert len(result.history["mine"]) == 3
    assert result.history["mine"][-1] < result.history["mine"][0]
    assert "test_counting_loss" in LOSS_TYPES
