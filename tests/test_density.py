"""densMAP-style density preservation: the log radii, the per-batch loss, the recipe option.

The radii and the loss are checked against hand computations on tiny graphs and batches;
the fit test checks on two Gaussian blobs of different spread that ``densmap=True`` makes
the embedded local radii follow the data's (densMAP's correlation measure).
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.sparse as sp
import torch

from paradime_core import DataError, ParametricUMAP, Routine, Spec, SpecError
from paradime_core.batch import Batch, BatchContext
from paradime_core.derived.local_radii import density_correlation, log_radii
from paradime_core.losses.density import DensityLoss, batch_log_radii, shifted_correlation

# Three items on a line, x = 0, 1, 3, and a symmetric graph p01 = 1, p12 = 0.5, p02 = 0.25.
X_LINE = np.array([[0.0], [1.0], [3.0]], dtype=np.float32)
P_LINE = sp.csr_array(np.array([[0.0, 1.0, 0.25], [1.0, 0.0, 0.5], [0.25, 0.5, 0.0]]))


def test_log_radii_by_hand():
    # R_0 = (1 * 1 + 0.25 * 9) / 1.25 = 2.6; R_1 = (1 * 1 + 0.5 * 4) / 1.5 = 2;
    # R_2 = (0.5 * 4 + 0.25 * 9) / 0.75 = 17 / 3
    expected = np.log(1e-8 + np.array([2.6, 2.0, 17.0 / 3.0]))
    np.testing.assert_allclose(log_radii(P_LINE, X_LINE), expected, rtol=1e-6)


def test_log_radii_refuse_an_item_without_neighbours():
    graph = sp.csr_array(np.array([[0.0, 1.0, 0.0], [1.0, 0.0, 0.0], [0.0, 0.0, 0.0]]))
    with pytest.raises(DataError, match="1 item"):
        log_radii(graph, X_LINE)


def test_density_correlation_is_one_for_a_scaled_copy_and_falls_when_radii_are_swapped():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(40, 3)).astype(np.float32)
    d2 = ((X[:, None] - X[None]) ** 2).sum(-1)
    nearest = np.argsort(d2, axis=1)[:, 1:6]
    graph = sp.csr_array((np.ones(200), (np.repeat(np.arange(40), 5), nearest.ravel())), shape=(40, 40))
    assert density_correlation(graph, X, 3.0 * X) == pytest.approx(1.0, abs=1e-6)
    assert density_correlation(graph, X, X[::-1]) < 0.5


# A batch of four items at y = (0,0), (1,0), (0,2), (0,4) with positive edges (0,1), (0,2),
# (2,3) and one negative edge (1,3); weights q = 1 / (1 + d^2):
#   d^2 = 1, 4, 4 -> q = 0.5, 0.2, 0.2
#   r_0 = (0.5 * 1 + 0.2 * 4) / 0.7 = 13/7, r_1 = 1, r_2 = (0.2 * 4 + 0.2 * 4) / 0.4 = 4, r_3 = 4
Y_BATCH = [[0.0, 0.0], [1.0, 0.0], [0.0, 2.0], [0.0, 4.0]]
R_BATCH = np.array([13.0 / 7.0, 1.0, 4.0, 4.0])


def _batch() -> Batch:
    return Batch(items=torch.arange(4), edge_rows=torch.tensor([0, 0, 2, 1]), edge_cols=torch.tensor([1, 2, 3, 3]),
                 edge_targets=torch.tensor([1.0, 1.0, 1.0, 0.0]), edge_relation="p")


def _student_t(outputs: torch.Tensor, batch: Batch) -> torch.Tensor:
    diff = outputs[batch.edge_rows] - outputs[batch.edge_cols]
    return 1.0 / (1.0 + (diff * diff).sum(dim=1))


def _context(y: torch.Tensor, log_r: list[float]) -> BatchContext:
    data = {"main": torch.zeros(4, 1), "log_radii": torch.tensor(log_r)}
    return BatchContext(_batch(), _Identity(y), data, {}, {"q": _student_t}, torch.device("cpu"))


class _Identity(torch.nn.Module):
    """A 'model' whose embedding of the batch is the fixed tensor ``y`` (a leaf we can differentiate)."""

    def __init__(self, y: torch.Tensor):
        super().__init__()
        self.y = y

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.y


def test_batch_radii_by_hand():
    y = torch.tensor(Y_BATCH)
    sources, targets = torch.tensor([0, 0, 2]), torch.tensor([1, 2, 3])
    log_r, count = batch_log_radii(y, sources, targets, torch.tensor([0.5, 0.2, 0.2]))
    np.testing.assert_allclose(log_r.numpy(), np.log(1e-8 + R_BATCH), rtol=1e-6, atol=1e-6)
    assert count.tolist() == [2, 1, 2, 1]


@pytest.mark.parametrize("var_shift", [0.0, 0.1])
def test_loss_value_by_hand(var_shift):
    a = np.array([0.0, -1.0, 1.0, 2.0])
    b = np.log(1e-8 + R_BATCH)
    ac, bc = a - a.mean(), b - b.mean()
    rho = (ac * bc).sum() / math.sqrt((ac * ac).sum() * ((bc * bc).sum() + 4 * var_shift))
    if var_shift == 0.0:
        assert rho == pytest.approx(np.corrcoef(a, b)[0, 1])
    loss = DensityLoss(data=["log_radii"], rels=["p", "q"], var_shift=var_shift)
    value = loss(_context(torch.tensor(Y_BATCH), a.tolist()))
    assert float(value) == pytest.approx(1.0 - rho, rel=1e-5)  # the negative edge (1, 3) plays no part


def test_too_few_estimated_items_give_zero_with_a_gradient():
    y = torch.tensor(Y_BATCH, requires_grad=True)
    loss = DensityLoss(data=["log_radii"], rels=["p", "q"], min_edges=2)  # items 0 and 2 only
    value = loss(_context(y, [0.0, -1.0, 1.0, 2.0]))
    assert float(value.detach()) == 0.0
    value.backward()
    assert y.grad is not None and float(y.grad.abs().sum()) == 0.0


def test_gradient_moves_the_sparsest_item_outwards_and_lowers_the_loss():
    # item 1 has the largest original radius but the smallest embedded one
    log_r = [0.0, 2.0, -1.0, 1.0]
    y = torch.tensor(Y_BATCH, requires_grad=True)
    loss = DensityLoss(data=["log_radii"], rels=["p", "q"])
    before = loss(_context(y, log_r))
    before.backward()
    outward = (y[1] - y[0]).detach()
    assert float(-y.grad[1] @ outward) > 0, "item 1 moves away from its only neighbour, item 0"
    stepped = (y - 0.05 * y.grad).detach()
    assert float(loss(_context(stepped, log_r))) < float(before.detach())


def test_loss_needs_edges_of_its_graph():
    loss = DensityLoss(data=["log_radii"], rels=["p", "q"])
    ctx = _context(torch.tensor(Y_BATCH), [0.0, 1.0, 2.0, 3.0])
    ctx.batch = Batch(items=torch.arange(4))
    with pytest.raises(DataError, match="edge batches sampled from relation 'p'"):
        loss(ctx)


def test_shifted_correlation_shrinks_with_the_shift():
    a, b = torch.tensor([0.0, 1.0, 2.0]), torch.tensor([0.0, 0.1, 0.2])
    assert float(shifted_correlation(a, b, 0.0)) == pytest.approx(1.0)
    assert float(shifted_correlation(a, b, 0.1)) == pytest.approx(math.sqrt(0.02 / 3 / (0.02 / 3 + 0.1)))


# ------------------------------------------------------------------------ specs and recipes

def _density_spec(**loss_changes) -> dict:
    loss = {"name": "density", "type": "density", "keys": {"rels": ["p", "q"], "data": ["log_radii"]},
            "options": {"var_shift": 0.1}}
    loss.update(loss_changes)
    return {
        "name": "dens", "model": {"type": "fully_connected", "options": {"hidden_dims": [8]}},
        "derived_data": [{"name": "log_radii", "func": "log_radii", "keys": [["rels", "p"], ["data", "main"]]}],
        "relations": [
            {"name": "p", "level": "global", "type": "neighbor", "options": {"n_neighbors": 5},
             "transforms": [{"type": "connect"}, {"type": "symmetrize", "options": {"sub_prod": True}}]},
            {"name": "q", "level": "batch", "type": "edge_dist", "transforms": [{"type": "cauchy"}]},
        ],
        "losses": [{"name": "umap", "type": "relation", "func": "cross_entropy", "keys": {"rels": ["p", "q"]}}, loss],
        "training_phases": [{"name": "embedding", "epochs": 1,
                             "sampling": {"type": "edge", "rels": "p", "batch_size": 64, "batches_per_epoch": 2},
                             "loss": {"components": ["umap", "density"], "weights": [1.0, 0.2]}}],
    }


def test_density_spec_is_valid():
    assert Spec.from_dict(_density_spec()).losses[1].type == "density"


@pytest.mark.parametrize("changes, path, message", [
    ({"options": {"var_shift": -0.5}}, "losses[1].options.var_shift", "expected a number >= 0, got -0.5"),
    ({"options": {"min_edges": 0}}, "losses[1].options.min_edges", "expected an integer >= 1, got 0"),
    ({"options": {"min_edges": 1.5}}, "losses[1].options.min_edges", "expected an integer >= 1, got 1.5"),
    ({"options": {"eps": 0}}, "losses[1].options.eps", "expected a number > 0, got 0"),
    ({"options": {"lambda": 2.0}}, "losses[1].options.lambda", "unknown option for loss type 'density'"),
    ({"keys": {"rels": ["p", "q"]}}, "losses[1].options", "needs the items' log radii in keys.data"),
    ({"keys": {"rels": ["p"], "data": ["log_radii"]}}, "losses[1].keys.rels", "needs 2 relations"),
    ({"keys": {"rels": ["q", "p"], "data": ["log_radii"]}}, "losses[1].keys.rels[0]", "needs a global relation"),
], ids=["negative var_shift", "zero min_edges", "fractional min_edges", "zero eps", "unknown option", "no radii", "one relation",
        "relations swapped"])
def test_bad_density_loss_names_its_spec_path(changes, path, message):
    with pytest.raises(SpecError) as info:
        Spec.from_dict(_density_spec(**changes))
    assert info.value.path == path
    assert message in info.value.problem


def _two_densities(n: int = 300, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    half = n // 2
    return np.concatenate([rng.normal(0.0, 1.0, (half, 10)), rng.normal(0.0, 10.0, (n - half, 10)) + 60.0]
                          ).astype(np.float32)


def test_bad_log_radii_option_is_reported_at_the_derived_data_path():
    spec = _density_spec()
    spec["derived_data"][0]["options"] = {"eps": -1.0}
    with pytest.raises(SpecError) as info:
        Routine(Spec.from_dict(spec), seed=0, verbose=False).fit({"main": _two_densities(60)})
    assert info.value.path == "derived_data[0].options.eps" and "expected a number > 0" in info.value.problem


def test_density_loss_on_item_batches_is_refused_at_fit():
    spec = _density_spec()
    spec["training_phases"][0]["sampling"] = {"type": "item", "batch_size": 32}
    spec["training_phases"][0]["loss"] = {"components": ["density"]}
    with pytest.raises(DataError, match="edge batches"):
        Routine(Spec.from_dict(spec), seed=0, verbose=False).fit({"main": _two_densities(60)})


@pytest.mark.parametrize("name, value, message", [
    ("dens_lambda", -1.0, "dens_lambda must be a number >= 0"),
    ("dens_frac", 1.5, r"dens_frac must be a number in \[0, 1\]"),
    ("dens_var_shift", -0.1, "dens_var_shift must be a number >= 0"),
    ("densmap", "yes", "densmap must be True or False"),
])
def test_recipe_refuses_bad_densmap_options(name, value, message):
    with pytest.raises(ValueError, match=message):
        ParametricUMAP(**{name: value}).build_spec(100, 10)


@pytest.mark.parametrize("n_epochs, dens_frac, expected", [
    (30, 0.3, [("embedding", 21), ("density", 9)]),
    (10, 1.0, [("density", 10)]),
    (1, 0.3, [("density", 1)]),
    (10, 0.0, [("embedding", 10)]),
])
def test_recipe_splits_the_embedding_epochs_by_dens_frac(n_epochs, dens_frac, expected):
    spec = ParametricUMAP(n_epochs=n_epochs, densmap=True, dens_frac=dens_frac, init="random").build_spec(100, 10)
    assert [(p.name, p.epochs) for p in spec.training_phases] == expected
    if expected[-1][0] == "density":
        phase = spec.training_phases[-1]
        assert phase.components == ["embedding", "density"] and phase.weights == [1.0, pytest.approx(2.0 / 11.0)]
        assert phase.optimizer.options["lr"] == pytest.approx(0.01 * dens_frac)


def test_recipe_without_densmap_is_unchanged():
    plain = ParametricUMAP(n_epochs=5).build_spec(100, 10).to_dict()
    assert plain == ParametricUMAP(n_epochs=5, densmap=False, dens_lambda=5.0).build_spec(100, 10).to_dict()
    assert "density" not in {loss["name"] for loss in plain["losses"]}


def test_densmap_raises_the_density_correlation_on_two_densities():
    torch.set_num_threads(1)
    X = _two_densities()
    options = dict(n_epochs=10, batches_per_epoch=20, batch_size=256, hidden_dims=(32, 32), pca_components=None,
                   knn_method="faiss_exact", random_state=0)
    plain = ParametricUMAP(**options).fit(X)
    densmap = ParametricUMAP(densmap=True, **options).fit(X)
    graph = plain.routine_.relations_["p"]
    before = density_correlation(graph, X, plain.embedding_)
    after = density_correlation(graph, X, densmap.embedding_)
    assert after > 0.9 and after > before + 0.2, (before, after)


@pytest.mark.slow
def test_density_benchmark_quick_run_prints_its_rows():
    import json
    import subprocess
    import sys
    from pathlib import Path

    script = Path(__file__).resolve().parents[1] / "benchmarks" / "density.py"
    done = subprocess.run([sys.executable, str(script), "--quick", "--datasets", "blobs",
                           "--methods", "pumap,pumap_densmap"], capture_output=True, text=True, timeout=300, check=True)
    rows = [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]
    assert [row["method"] for row in rows] == ["pumap", "pumap_densmap"]
    assert rows[1]["dens_corr"] > rows[0]["dens_corr"]
