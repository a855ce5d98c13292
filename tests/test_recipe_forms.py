"""The recipes as the ParaDime paper defines them: LargeVis on t-SNE's perplexity graph with
weighted negatives (Sec. 4.4), and ParametricTSNE's KL over item batches (Sec. 4.2) beside
its contrastive default. Assertions are on the spec each estimator builds."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.base import clone

from paradime_core import ParametricLargeVis, ParametricTSNE
from paradime_core.metrics import trustworthiness

QUICK = dict(n_epochs=2, batches_per_epoch=15, hidden_dims=(32,), pca_components=20)


def relation(spec, name):
    return next(r for r in spec.relations if r.name == name)


def transforms(rel):
    return [(t.type, dict(t.options)) for t in rel.transforms]


def test_largevis_trains_on_the_perplexity_graph_with_weighted_negatives():
    spec = ParametricLargeVis().build_spec(5000, 784)
    p, q = relation(spec, "p"), relation(spec, "q")
    assert (p.level, p.type) == ("global", "neighbor")
    assert transforms(p) == [("perplexity", {"perplexity": 50.0}), ("symmetrize", {})]
    assert (q.level, q.type) == ("batch", "edge_dist")
    assert transforms(q) == [("t_dist", {"alpha": 1.0})]
    embedding = next(loss for loss in spec.losses if loss.name == "embedding")
    assert (embedding.type, embedding.func, list(embedding.rels)) == ("relation", "cross_entropy", ["p", "q"])
    assert embedding.options == {"repulsion_strength": 1.0}
    phase = spec.training_phases[-1]
    assert phase.sampling.type == "edge"
    assert phase.sampling.options["neg_rate"] == 10 and phase.sampling.options["rels"] == "p"
    original = ParametricLargeVis(neg_rate=5, repulsion_strength=7.0).build_spec(5000, 784)  # Tang et al.'s
    assert original.losses[-1].options == {"repulsion_strength": 7.0}
    assert original.training_phases[-1].sampling.options["neg_rate"] == 5
    assert [d.func for d in spec.derived_data] == ["pca"]  # the PCA start, as ParametricUMAP's
    small = ParametricLargeVis(perplexity=30.0).build_spec(40, 8)  # at most (n - 1) / 3
    assert transforms(relation(small, "p"))[0] == ("perplexity", {"perplexity": 13.0})


def test_tsne_objectives_build_infonce_over_edges_or_kl_over_item_batches():
    contrastive = ParametricTSNE().build_spec(5000, 784)
    assert [(loss.func, loss.type) for loss in contrastive.losses] == [("infonce", "relation")]
    assert [phase.sampling.type for phase in contrastive.training_phases] == ["edge"]
    assert contrastive.training_phases[0].sampling.options["batch_size"] == 4096
    assert relation(contrastive, "q").type == "edge_dist" and not contrastive.derived_data

    paper = ParametricTSNE(objective="kl").build_spec(5000, 784)
    assert transforms(relation(paper, "p")) == [("perplexity", {"perplexity": 30.0}), ("symmetrize", {}),
                                                ("normalize", {})]
    q = relation(paper, "q")
    assert (q.level, q.type) == ("batch", "pdist")
    assert transforms(q) == [("t_dist", {"alpha": 1.0}), ("normalize", {})]
    assert [(loss.name, loss.type, loss.func) for loss in paper.losses] == [
        ("init", "position", "mse"), ("tsne", "relation", "kl_div")]
    assert [(d.name, d.func) for d in paper.derived_data] == [("init", "pca")]
    init, embedding = paper.training_phases
    assert init.components == ["init"] and embedding.components == ["tsne"]
    assert embedding.sampling.type == "item" and embedding.sampling.options["batch_size"] == 500
    # the same step budget and learning-rate decay as the default form
    assert embedding.epochs * embedding.sampling.options["batches_per_epoch"] == 2000
    assert embedding.options["lr_schedule"] == "linear"
    assert ParametricTSNE(objective="kl", batch_size=250).build_spec(5000, 784) \
        .training_phases[-1].sampling.options["batch_size"] == 250


def test_an_unknown_objective_is_one_clear_error(digits):
    X, _ = digits
    with pytest.raises(ValueError, match="objective must be one of infonce, kl, got 'exact'"):
        ParametricTSNE(objective="exact", **QUICK).fit(X)


@pytest.mark.parametrize("estimator", [ParametricLargeVis(**QUICK, batch_size=512, perplexity=15.0),
                                       ParametricTSNE(**QUICK, objective="kl", batch_size=100, perplexity=15.0)],
                         ids=["largevis", "tsne_kl"])
def test_each_form_fits_and_embeds_new_items(estimator, digits):
    X, _ = digits
    train, new = X[:200], X[200:]
    fitted = clone(estimator).fit(train)
    Y = fitted.transform(new)
    assert Y.shape == (len(new), 2) and np.isfinite(Y).all()
    assert trustworthiness(train, fitted.embedding_, k=10) > 0.75  # a random layout: ~0.5


def test_new_parameters_round_trip_through_get_and_set_params():
    tsne = ParametricTSNE().set_params(objective="kl", batch_size=300)
    assert {k: tsne.get_params()[k] for k in ("objective", "batch_size")} == {"objective": "kl", "batch_size": 300}
    assert clone(tsne).get_params() == tsne.get_params()
    largevis = ParametricLargeVis().set_params(perplexity=20.0, repulsion_strength=3.0, neg_rate=8)
    params = largevis.get_params()
    assert (params["perplexity"], params["repulsion_strength"], params["neg_rate"]) == (20.0, 3.0, 8)
    assert "n_neighbors" not in params and "min_dist" not in params
    assert clone(largevis).get_params() == params
    spec = largevis.build_spec(5000, 784)
    assert next(loss for loss in spec.losses if loss.name == "embedding").options == {"repulsion_strength": 3.0}
