"""The listings of the ParaDime paper (Hinterreiter et al. 2023) load as printed and train.

Each listing lies in ``tests/paper_listings/`` as printed, its ``<...>`` placeholders filled
with numbers and its abridged parts taken from the sections they point to (the t-SNE
relations of Sec. 4.2 in Sec. 5.2 and 5.3, the UMAP relations of Sec. 4.3 in the hybrid of
Sec. 4.5/5.1). The digests below pin every character, so a change to a listing fails here
instead of quietly rewriting what the paper printed. Every test loads the file unchanged;
the fast tests then shorten the phases on 300 digits, the slow ones train the listing as it
stands (its phases without ``epochs`` get the default step budget) on real data.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pytest
import scipy.sparse as sp
import torch
from sklearn.datasets import load_diabetes, load_digits

from paradime_core import Routine, Spec, load_spec
from paradime_core.derived import pca
from paradime_core.metrics import knn_accuracy, normalized_stress, trustworthiness
from paradime_core.models import FullyConnected, MultiHead

LISTINGS = Path(__file__).parent / "paper_listings"
DIGESTS = {
    "sec_4_1_mds.yaml": "f06ab720f3f1a1b5f2a35ad381ad6a8af28a6b2ad05e67422086dbcdd1df5f63",
    "sec_4_2_tsne.yaml": "88ffb2ed39927ce8400e744163a36694fe473023f04777bec5067779a9fbb963",
    "sec_4_3_umap.yaml": "2af802a797275d6758b6e1f5b275f11ac1320d402b88924a33dab60d3811155c",
    "sec_4_5_hybrid.yaml": "8fe6755af4798dc37175a8c0a8b3af18cdc2d2e64b237425dfc68cd9f0db5651",
    "sec_5_2_supervised_tsne.yaml": "afddb514450617653ad87e1fadb42ce2f4169ab1e9586fb9379c3d2b8c6ebbf3",
    "sec_5_3_attribute_guided.yaml": "65dde689792739bd3efb597f2f8ca9acdef412cd1d68aa0b651c09f92ffdaaf9",
}


def listing(name: str) -> Spec:
    """The listing loaded from its file, as a user passes the file to ``load_spec``."""
    return load_spec(LISTINGS / name)


def shortened(spec: Spec, epochs: int) -> Spec:
    for phase in spec.training_phases:
        phase.epochs = epochs
    return spec


def fit(spec: Spec, data: dict[str, np.ndarray], model: torch.nn.Module | None = None) -> tuple[Routine, np.ndarray]:
    routine = Routine(spec, model=model, seed=0, device="cpu", verbose=False).fit(data)
    embedding = routine.transform(data["main"])
    assert embedding.shape == (len(data["main"]), 2) and np.isfinite(embedding).all()
    return routine, embedding


def full_digits() -> tuple[np.ndarray, np.ndarray]:
    """All 1,797 digits on their raw 0-16 scale."""
    X, y = load_digits(return_X_y=True)
    return X.astype(np.float32), y


def ink(X: np.ndarray) -> np.ndarray:
    """A per-digit attribute: the total ink of the image (sum of its pixels)."""
    return X.sum(axis=1, keepdims=True).astype(np.float32)


def test_listings_are_stored_as_printed():
    stored = {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(LISTINGS.glob("*.yaml"))}
    assert stored == DIGESTS


@pytest.mark.parametrize("name", sorted(DIGESTS))
def test_listing_loads_verbatim_and_round_trips(name):
    spec = listing(name)
    assert Spec.from_yaml(spec.to_yaml()) == spec
    assert Spec.from_json(spec.to_json()) == spec


def test_printed_spellings_mean_what_the_paper_says():
    umap = listing("sec_4_3_umap.yaml").to_dict()
    connect = umap["relations"][0]["transforms"][0]
    assert connect == {"type": "connect", "options": {"n_neighbors": 15}}
    assert umap["relations"][0]["transforms"][1] == {"type": "symmetrize", "options": {"sub_prod": True}}
    supervised = listing("sec_5_2_supervised_tsne.yaml").to_dict()
    same = supervised["relations"][2]
    assert (same["type"], same["data"]) == ("pairwise_eq", "labels")  # Eq. 1 is on the labels
    triplet = supervised["losses"][2]
    assert (triplet["type"], triplet["func"], triplet["keys"]["data"]) == ("triplet", "margin", ["main", "main"])
    assert supervised["training_phases"][1]["sampling"] == {"type": "edge", "options": {"rels": "same label", "neg_rate": 1}}
    guided = listing("sec_5_3_attribute_guided.yaml").to_dict()
    assert guided["losses"][2]["options"] == {"columns": 0, "dims": 0}
    assert "epochs" not in listing("sec_4_2_tsne.yaml").to_dict()["training_phases"][1]


# --------------------------------------------------------------------------- fast: short phases
def test_sec_4_1_mds_on_diabetes():
    X = load_diabetes().data.astype(np.float32)
    X = (X - X.mean(axis=0)) / X.std(axis=0)
    spec = listing("sec_4_1_mds.yaml")
    torch.manual_seed(0)
    model = FullyConnected(in_dim=10, hidden_dims=[5], activation="softplus")  # the paper's (10, 5, 2)
    routine, embedding = fit(spec, {"main": X}, model)
    history = routine.history_["phase_0"]["mds"]
    assert len(history) == 10 and history[-1] < 0.3 * history[0]
    _, _, vt = np.linalg.svd(X, full_matrices=False)
    assert normalized_stress(X, embedding) < 0.9 * normalized_stress(X, X @ vt[:2].T)


def test_sec_4_2_tsne_short(digits):
    X, y = digits
    routine, embedding = fit(shortened(listing("sec_4_2_tsne.yaml"), 20), {"main": X, "labels": y})
    p = routine.relations_["p"]
    assert sp.issparse(p) and abs(p.sum() - 1.0) < 1e-5 and abs(p - p.T).max() < 1e-7
    reference = pca(X)
    assert trustworthiness(X, embedding, 10) > trustworthiness(X, reference, 10) + 0.03


def test_sec_4_3_umap_short(digits):
    X, y = digits
    routine, embedding = fit(shortened(listing("sec_4_3_umap.yaml"), 60), {"main": X, "labels": y})
    assert routine.relations_["p"].shape == (300, 300)
    reference = pca(X)
    assert trustworthiness(X, embedding, 10) > trustworthiness(X, reference, 10) + 0.03
    assert knn_accuracy(embedding, y) > knn_accuracy(reference, y) + 0.1


def test_sec_4_5_hybrid_short(digits):
    X, y = digits
    model = MultiHead(in_dim=X.shape[1], n_classes=10)
    routine, embedding = fit(shortened(listing("sec_4_5_hybrid.yaml"), 20), {"main": X, "labels": y}, model)
    history = routine.history_["phase_0"]
    assert history["class"][-1] < 0.5 * history["class"][0]
    with torch.no_grad():
        predicted = model.classify(torch.as_tensor(X)).argmax(dim=1).numpy()
    assert (predicted == y).mean() > 0.9
    assert knn_accuracy(embedding, y) > knn_accuracy(pca(X), y) + 0.1


def test_sec_5_2_supervised_tsne_short(digits):
    X, y = digits
    spec = shortened(listing("sec_5_2_supervised_tsne.yaml"), 15)
    spec.training_phases[1].epochs = 150  # 300 items: one batch of label edges an epoch
    routine, embedding = fit(spec, {"main": X, "labels": y})
    history = routine.history_["embedding"]
    assert history["triplet"][-1] < 0.85 * history["triplet"][0]
    assert knn_accuracy(embedding, y) > knn_accuracy(pca(X), y) + 0.2


def test_sec_5_3_attribute_guided_short(digits):
    X, y = digits
    attributes = ink(X)
    routine, embedding = fit(shortened(listing("sec_5_3_attribute_guided.yaml"), 15),
                             {"main": X, "labels": y, "attributes": attributes})
    rho = np.corrcoef(attributes[:, 0], embedding[:, 0])[0, 1]
    assert rho**2 > 0.9  # Eq. 3 drives 1 - rho^2 towards 0 for the named pair (column 0, dim 0)
    assert trustworthiness(X, embedding, 10) > 0.65  # the attribute axis costs local structure


# --------------------------------------------------------------------------- slow: as printed
@pytest.mark.slow
@pytest.mark.parametrize(("name", "min_trust", "min_knn"), [
    ("sec_4_2_tsne.yaml", 0.98, 0.95),  # no epochs printed: the step budget nears openTSNE (0.992)
    ("sec_4_3_umap.yaml", 0.96, 0.9),
])
def test_listing_as_printed_on_raw_digits(name, min_trust, min_knn):
    X, y = full_digits()
    _, embedding = fit(listing(name), {"main": X, "labels": y})
    assert trustworthiness(X, embedding, 10) > min_trust
    assert knn_accuracy(embedding, y) > min_knn


# --------------------------------------------------------------------------- ParaDime 1.x
PARADIME_1X_SPEC = """
relations:
  - name: rel
    level: global
    type: neighbor
    field: main
    options:
      n_neighbors: 15
    transforms:
      - type: connect
        options:
          n_neighbors: 15
      - type: symmetrize
        options:
          subtract_product: true
  - name: q
    level: batch
    type: pdistdiff
    transforms:
      - type: t-dist
        options:
          alpha: 1.0
      - type: normalize
  - name: perp
    level: global
    type: neighbor
    transforms:
      - type: perplexity
        options:
          perplexity: 10
          bracket: [0.01, 1.0]
          method: brentq
      - type: symmetrize
      - type: normalize
losses:
  - name: emb
    type: relation
    func: kl div
    keys:
      rels: [perp, q]
training phases:
  - epochs: 3
    sampling:
      type: edge
      options:
        edge_rel_key: rel
        neg_sampling_rate: 3
        batch_size: 200
        batches_per_epoch: -1
        report_interval: 1
    optimizer:
      type: sgd
      options:
        lr: 0.05
    loss:
      components: [emb]
"""


def test_a_paradime_1x_spec_with_builtins_runs_unchanged(digits, caplog):
    """ParaDime 1.x's spellings: field, n_neighbors on connect, subtract_product, pdistdiff
    (batch-level pdist), root-finder options, edge_rel_key, batches_per_epoch -1,
    report_interval among the sampling options."""
    X, y = digits
    spec = load_spec(PARADIME_1X_SPEC)
    canonical = spec.to_dict()
    assert canonical["relations"][1]["type"] == "pdist"
    assert canonical["training_phases"][0]["options"] == {"report_interval": 1}
    with caplog.at_level("INFO", logger="paradime_core.training"):
        routine, _ = fit(spec, {"main": X, "labels": y})
    assert len(routine.history_["phase_0"]["emb"]) == 3
    assert sum("epoch 3/3" in r.getMessage() for r in caplog.records) == 1


def test_lbfgs_trains_with_a_closure(digits):
    X, y = digits
    spec = shortened(listing("sec_4_2_tsne.yaml"), 3)
    spec.training_phases[1].optimizer = type(spec.training_phases[1].optimizer)(type="lbfgs", options={"lr": 1, "line_search_fn": "strong_wolfe"})
    spec = Spec.from_dict(spec.to_dict())
    routine, embedding = fit(spec, {"main": X, "labels": y})
    kl = routine.history_["embedding"]["embedding"]
    assert kl[-1] < 0.5 * kl[0]
