"""Fig. 3: hybrid UMAP embedding + classification on MNIST, sweeping the embedding weight.

``python -m experiments.fig3 [--quick]``

specs/hybrid_umap_classifier.yaml: a shared 784-100-50 softplus trunk with a 2-D embedding
head and a 10-class classification head, trained on 5,000 MNIST images with the compound
loss ``w_emb * UMAP cross entropy + (1 - w_emb) * classification cross entropy`` over edge
batches, for w_emb in {0, 0.1, ..., 0.9, 0.95, 1}. Evaluated on 5,000 disjoint test images:
classification accuracy, trustworthiness T(10) of the test embedding, and 10-NN accuracy of
the test embedding against the training embedding.

Claim checked: accuracy is not affected for w_emb in 0.5 to 0.95: every accuracy in that
range within 1 percentage point of the classifier trained alone (w_emb = 0); the drop from
the best accuracy over all weights is reported too.
"""

from __future__ import annotations

import numpy as np

from experiments.common import figure, mnist, phase, quiet_fit, spec, start, timed
from paradime_core import Routine
from paradime_core.metrics import knn_accuracy, trustworthiness
from paradime_core.plotting import scatter

WEIGHTS = [0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 1.0]
N_TRAIN = 5000
N_TEST = 5000
EPOCHS = 30
TOLERANCE = 0.01  # "not affected": within 1 percentage point of the classifier alone (w_emb = 0)


def claims(rows: list[dict]) -> dict:
    """The accuracy claim: w_emb in [0.5, 0.95] against the classifier alone (w_emb = 0)."""
    alone = next((r["test_accuracy"] for r in rows if r["w_emb"] == 0.0), float("nan"))
    best = max(r["test_accuracy"] for r in rows)
    band = [r for r in rows if 0.5 <= r["w_emb"] <= 0.95]
    lowest = min((r["test_accuracy"] for r in band), default=float("nan"))
    return {"accuracy_unaffected_for_w_0.5_to_0.95": {
        "classifier_alone_accuracy": alone, "best_accuracy": best, "lowest_accuracy_in_band": lowest,
        "drop_from_classifier_alone": alone - lowest, "drop_from_best": best - lowest, "tolerance": TOLERANCE,
        "holds": bool(band) and bool(alone - lowest <= TOLERANCE)}}


def split(n_train: int, n_test: int) -> tuple[np.ndarray, np.ndarray]:
    """Training and test rows: a seeded permutation (seed 0) of all 70,000, first n_train, next n_test."""
    order = np.random.default_rng(0).permutation(70_000)
    return order[:n_train], order[n_train:n_train + n_test]


def evaluate(routine: Routine, X: np.ndarray, y: np.ndarray, train: np.ndarray, test: np.ndarray) -> dict:
    """Test accuracy of the classification head, T(10) of the test embedding and its 10-NN accuracy
    against the training embedding; also returns the test embedding (``"Y_test"``)."""
    Y_train = routine.transform(X[train])
    Y_test = routine.transform(X[test])
    logits = routine.transform(X[test], method="classify")
    return {
        "test_accuracy": float((logits.argmax(axis=1) == y[test]).mean()),
        "test_trust10": trustworthiness(X[test], Y_test, k=10),
        "test_knn10_accuracy": knn_accuracy(Y_train, y[train], Y_test, y[test], k=10),
        "Y_test": Y_test,
    }


def main(argv: list[str] | None = None) -> None:
    run = start("fig3", __doc__.splitlines()[0], argv)
    X, y = mnist()
    n_train, n_test = (1000, 1000) if run.quick else (N_TRAIN, N_TEST)
    train, test = split(n_train, n_test)
    data = {"main": X[train], "labels": y[train]}
    weights = [0.0, 0.5, 1.0] if run.quick else WEIGHTS

    rows, embeddings = [], {}
    for w in weights:
        s = spec("hybrid_umap_classifier")
        hybrid = phase(s, "hybrid")
        hybrid.weights = [w, 1.0 - w]
        hybrid.epochs = 1 if run.quick else EPOCHS
        with timed(run, f"w_emb = {w}") as t:
            routine = quiet_fit(Routine(s, seed=0, verbose=False), data)
        measured = evaluate(routine, X, y, train, test)
        Y_test = measured.pop("Y_test")
        row = {"w_emb": w, **measured, "fit_s": t["s"]}
        run.log(str({k: round(v, 4) for k, v in row.items()}))
        rows.append(row)
        embeddings[w] = Y_test
    run.write_csv(rows)

    # Curves.
    fig, axes = figure(1, 1, size=1.0)
    fig.set_size_inches(6.5, 3.8)
    ax = axes[0, 0]
    ws = [r["w_emb"] for r in rows]
    for key, label in [("test_accuracy", "classifier accuracy (test)"), ("test_trust10", "trustworthiness T(10) (test)"),
                       ("test_knn10_accuracy", "10-NN accuracy in the embedding (test)")]:
        ax.plot(ws, [r[key] for r in rows], marker="o", label=label)
    ax.axvspan(0.5, 0.95, color="0.9", zorder=0, label="claim: accuracy unaffected")
    ax.set_xlabel("embedding weight w_emb (classification weight 1 - w_emb)")
    ax.set_ylim(0, 1.02)
    ax.legend(fontsize="small", loc="lower left", frameon=False)
    ax.set_title(f"Hybrid UMAP + classifier, MNIST {n_train} train / {n_test} test")
    run.save_figure(fig)

    # Scatterplots of the test embeddings.
    n_cols = 4 if len(weights) > 3 else len(weights)
    n_rows = int(np.ceil(len(weights) / n_cols))
    fig, axes = figure(n_rows, n_cols, size=2.6)
    for ax, row in zip(axes.ravel(), rows, strict=False):
        scatter(embeddings[row["w_emb"]], y[test], ax=ax, legend=False, point_size=1.0)
        ax.set_title(f"w_emb {row['w_emb']}\nacc {row['test_accuracy']:.3f}, T(10) {row['test_trust10']:.3f}",
                     fontsize=9)
    for ax in axes.ravel()[len(rows):]:
        ax.axis("off")
    run.save_figure(fig, "_scatter.png", dpi=90)

    run.results.update({
        "settings": {"spec": "specs/hybrid_umap_classifier.yaml", "n_train": n_train, "n_test": n_test,
                     "split": "seeded permutation (seed 0) of all 70,000: first n_train, next n_test",
                     "epochs": EPOCHS if not run.quick else 1, "weights": weights, "pixels": "/ 255"},
        "rows": rows,
        "claims": claims(rows),
    })
    run.finish()


if __name__ == "__main__":
    main()
