"""Sec. 5.4: projective latent interventions (PLI) with simulated user moves on MNIST.

``python -m experiments.pli [--quick]``

specs/pli.yaml, run phase by phase on 5,000 MNIST training images (the other 65,000 are
the test images), with a model whose embedding head is a small network on the classifier's latent
layer, as in PLI (trunk 784-100-50 softplus; classification head 50-10; embedding head
50-100-2):

1. classification: cross entropy; trains trunk + classification head.
2. embedding: t-SNE of the classifier's latent activations (relation p recomputed on
   them after phase 1); trains only the embedding head, so the classifier is unchanged.
3. intervention: a simulated user selects the two classes the classifier confuses most on
   the training images (the misclassified points the user sees) and drags their clusters
   apart (each class moved along the line
   between the class centroids, doubling their distance); every other item keeps its
   position as its target. Loss: cross entropy + w * mean squared distance to the targets;
   trains trunk + classification head with the embedding head frozen.

Reported: test accuracy and the number of test confusions between the two classes before
phase 3, after it, and after a control phase 3 without moves (same epochs, targets = the
current positions), which separates the effect of the moves from that of more training.
"""

from __future__ import annotations

import copy

import numpy as np
import torch
from torch import nn

from experiments.common import figure, mnist, phase, spec, start, timed
from paradime_core import Routine
from paradime_core.plotting import scatter
from paradime_core.routine import prepare_dataset

N_TRAIN = 5000
LATENT = 50


class PLIModel(nn.Module):
    """Classifier trunk with a classification head and a non-linear embedding head on the
    latent layer (parts: trunk, classification_head, embedding_head)."""

    def __init__(self, in_dim: int, n_classes: int = 10, seed: int = 0):
        super().__init__()
        torch.manual_seed(seed)
        self.trunk = nn.Sequential(nn.Linear(in_dim, 100), nn.Softplus(), nn.Linear(100, LATENT), nn.Softplus())
        self.classification_head = nn.Linear(LATENT, n_classes)
        self.embedding_head = nn.Sequential(nn.Linear(LATENT, 100), nn.Softplus(), nn.Linear(100, 2))

    def latent(self, x: torch.Tensor) -> torch.Tensor:
        return self.trunk(x)

    def classify(self, x: torch.Tensor) -> torch.Tensor:
        return self.classification_head(self.trunk(x))

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        return self.embedding_head(self.trunk(x))

    forward = embed


def most_confused_pair(y: np.ndarray, predicted: np.ndarray, Y: np.ndarray, k: int = 10) -> tuple[int, int, int]:
    """The class pair (a, b) the classifier confuses most on the training items (what a user
    sees as misclassified points), ties broken by cross-class 2-D k-nearest neighbours."""
    from sklearn.neighbors import NearestNeighbors

    n_classes = int(y.max()) + 1
    confusion = np.zeros((n_classes, n_classes), dtype=np.int64)
    np.add.at(confusion, (y, predicted), 1)
    neighbors = NearestNeighbors(n_neighbors=k + 1).fit(Y).kneighbors(return_distance=False)[:, 1:]
    mixing = np.zeros((n_classes, n_classes), dtype=np.int64)
    np.add.at(mixing, (np.repeat(y, k), y[neighbors].ravel()), 1)
    score = (confusion + confusion.T) * 10**6 + mixing + mixing.T
    np.fill_diagonal(score, -1)
    a, b = np.unravel_index(np.argmax(score), score.shape)
    return int(a), int(b), int(confusion[a, b] + confusion[b, a])


def pulled_apart(Y: np.ndarray, y: np.ndarray, a: int, b: int) -> np.ndarray:
    """Targets: classes a and b moved apart along their centroid line (distance doubled)."""
    ca, cb = Y[y == a].mean(axis=0), Y[y == b].mean(axis=0)
    shift = (ca - cb) / 2.0
    targets = Y.copy()
    targets[y == a] += shift
    targets[y == b] -= shift
    return targets.astype(np.float32)


def evaluate(routine: Routine, X: np.ndarray, y: np.ndarray, a: int, b: int) -> dict[str, float]:
    predicted = routine.transform(X, method="classify").argmax(axis=1)
    confusions = int(((y == a) & (predicted == b)).sum() + ((y == b) & (predicted == a)).sum())
    return {"accuracy": float((predicted == y).mean()), "pair_confusions": confusions}


def main(argv: list[str] | None = None) -> None:
    run = start("pli", __doc__.splitlines()[0], argv)
    X, y = mnist()
    n_train = 1000 if run.quick else N_TRAIN
    order = np.random.default_rng(0).permutation(len(X))
    train, test = order[:n_train], order[n_train:]
    n_test = len(test)
    X_train, y_train, X_test, y_test = X[train], y[train], X[test], y[test]

    s = spec("pli")
    s.relation("p").data = "latent"  # PLI embeds the classifier's latent space
    if run.quick:
        for p in s.training_phases:
            p.epochs = 2
    model = PLIModel(X.shape[1])
    routine = Routine(s, model=model, seed=0, verbose=False)
    placeholder = {"latent": np.zeros((n_train, LATENT), np.float32), "targets": np.zeros((n_train, 2), np.float32)}
    dataset = prepare_dataset({"main": X_train, "labels": y_train, **placeholder}, s.data_keys())
    routine.build_model(dataset)

    with timed(run, "phase 1: classification"):
        routine.run_phase(0, dataset, {})
    with torch.no_grad():
        dataset["latent"] = model.latent(torch.as_tensor(X_train)).numpy()
    relations = {"p": routine.compute_relation("p", dataset)}
    with timed(run, "phase 2: embedding head (t-SNE of the latent space)"):
        routine.run_phase(1, dataset, relations)
    Y_before = routine.transform(X_train)

    predicted_train = routine.transform(X_train, method="classify").argmax(axis=1)
    a, b, confused = most_confused_pair(y_train, predicted_train, Y_before)
    before = evaluate(routine, X_test, y_test, a, b)
    run.log(f"most confused classes on the training images: {a} and {b} ({confused} training errors); "
            f"before: {before}")
    targets = pulled_apart(Y_before, y_train, a, b)
    state_after_phase2 = copy.deepcopy(model.state_dict())

    results = {}
    for name, target in [("intervention", targets), ("control", Y_before.astype(np.float32))]:
        model.load_state_dict(state_after_phase2)
        dataset["targets"] = target
        with timed(run, f"phase 3: {name}"):
            routine.run_phase(2, dataset, relations)
        results[name] = evaluate(routine, X_test, y_test, a, b)
        results[name]["train_embedding"] = routine.transform(X_train)
        results[name]["test_embedding"] = routine.transform(X_test)
        run.log(f"{name}: {({k: v for k, v in results[name].items() if 'embedding' not in k})}")

    fig, axes = figure(1, 4, size=3.4)
    highlight = np.where(np.isin(y_train, [a, b]), y_train, -1)
    scatter(Y_before, y_train, ax=axes[0, 0], legend=False, point_size=2,
            title=f"after phase 2 (train)\ntest acc {before['accuracy']:.3f}, {a}<->{b} errors {before['pair_confusions']}")
    ax = axes[0, 1]
    others = highlight < 0
    ax.scatter(targets[others, 0], targets[others, 1], s=2, color="0.8", linewidths=0)
    for cls, color in ((a, "tab:red"), (b, "tab:blue")):
        ax.scatter(targets[highlight == cls, 0], targets[highlight == cls, 1], s=2, color=color, linewidths=0,
                   label=str(cls))
    ax.set_aspect("equal", adjustable="datalim")
    ax.set_xticks([])
    ax.set_yticks([])
    ax.legend(frameon=False, markerscale=4)
    ax.set_title(f"simulated move: classes {a} and {b}\npulled apart (targets; others grey)")
    inter = results["intervention"]
    scatter(inter["train_embedding"], y_train, ax=axes[0, 2], legend=False, point_size=2,
            title=f"after phase 3 (train)\ntest acc {inter['accuracy']:.3f}, {a}<->{b} errors {inter['pair_confusions']}")
    scatter(inter["test_embedding"], y_test, ax=axes[0, 3], point_size=0.3,
            title=f"after phase 3 (test)\ncontrol: acc {results['control']['accuracy']:.3f}, "
                  f"{a}<->{b} errors {results['control']['pair_confusions']}")
    run.save_figure(fig, dpi=90)

    control = results["control"]
    run.results.update({
        "settings": {"spec": "specs/pli.yaml (relation p on the latent activations, user model with a "
                             "50-100-2 embedding head)", "n_train": n_train, "n_test": n_test,
                     "phase_epochs": {p.name: p.epochs for p in s.training_phases},
                     "intervention_weights": phase(s, "intervention").weights, "pixels": "/ 255"},
        "moved_classes": [a, b],
        "training_confusions_between_them": confused,
        "before": before,
        "after_intervention": {k: v for k, v in inter.items() if "embedding" not in k},
        "after_control": {k: v for k, v in control.items() if "embedding" not in k},
        "claims": {"moves_reduce_pair_confusions": {
            "before": before["pair_confusions"], "intervention": inter["pair_confusions"],
            "control": control["pair_confusions"],
            "holds": bool(inter["pair_confusions"] < min(before["pair_confusions"], control["pair_confusions"]))},
                   "accuracy_not_worse": {"before": before["accuracy"], "intervention": inter["accuracy"],
                                          "control": control["accuracy"],
                                          "holds": bool(inter["accuracy"] >= before["accuracy"] - 0.005)}},
    })
    run.finish()


if __name__ == "__main__":
    main()
