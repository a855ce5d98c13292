"""Fig. 5: attribute-guided t-SNE on covertype, explained with integrated gradients.

``python -m experiments.fig5 [--quick]``

The class-balanced 7,000-row covertype subset of Fig. 4 (first 10 attributes, standardised).
specs/attribute_guided_tsne.yaml with perplexity 200: PCA initialisation, then
``w_tsne * KL(P || Q) + w_corr * (1 - Pearson(hillshade at noon, x)^2)`` (paper Eq. 3; the
attribute is feature 8 counting from 1) for (w_tsne, w_corr) = (1, 0), (5000, 1), (1000, 1),
(100, 1) (the paper's grid, as printed: the KL term of an item batch is summed per item as
in the paper's library). Points are coloured by the attribute. Feature importances per output axis: the
mean absolute integrated-gradients attribution (paradime_core.attributions, baseline = the data mean, 50 steps)
of each input feature to x and to y over 1,000 sampled items, as shares summing to 1.

Claims checked: feature 8 is the most important feature for x in every
guided embedding, and it does not contribute to y at the strongest weight (share below 5%,
half of a uniform share).
"""

from __future__ import annotations

import numpy as np
import torch

from experiments.common import (
    covtype_balanced,
    figure,
    phase,
    quiet_fit,
    set_perplexity,
    spec,
    start,
    timed,
)
from paradime_core import Routine
from paradime_core.attributions import feature_importance
from paradime_core.metrics import knn_accuracy, trustworthiness
from paradime_core.plotting import scatter

WEIGHTS = [(1.0, 0.0), (5000.0, 1.0), (1000.0, 1.0), (100.0, 1.0)]  # the paper's grid
ATTRIBUTE = 7  # 0-based column of Hillshade_Noon, the paper's "feature 8"
PERPLEXITY = 200
EPOCHS = 40
BATCH_SIZE = 500
LR = 0.02
N_EXPLAIN = 1000
NO_CONTRIBUTION = 0.05


def importances(model: torch.nn.Module, X: np.ndarray, seed: int = 0) -> np.ndarray:
    """(2, n_features) shares of mean |integrated gradients| for output x (row 0) and y (row 1)."""
    rows = np.random.default_rng(seed).choice(len(X), size=min(N_EXPLAIN, len(X)), replace=False)
    return feature_importance(model, X[rows], dims=(0, 1), baseline=X.mean(axis=0), n_steps=50)


def configure(s, epochs: int, perplexity: float, weights: list[float] | str) -> None:
    """The experiment's perplexity, epochs, batch size, learning rate and loss weights."""
    set_perplexity(s, perplexity)
    main_phase = phase(s, "embedding")
    main_phase.epochs = epochs
    main_phase.sampling.options["batch_size"] = BATCH_SIZE
    main_phase.optimizer.options["lr"] = LR
    main_phase.weights = weights


def evaluate(routine: Routine, X: np.ndarray, y: np.ndarray, features: list[str]) -> tuple[dict, np.ndarray, np.ndarray]:
    """The measures of one embedding, the embedding and its (2, n_features) importance shares."""
    attribute = X[:, ATTRIBUTE]
    Y = routine.transform(X)
    share = importances(routine.model_, X)
    row = {
        "pearson_attribute_x": float(np.corrcoef(attribute, Y[:, 0])[0, 1]),
        "pearson_attribute_y": float(np.corrcoef(attribute, Y[:, 1])[0, 1]),
        "trust10": trustworthiness(X, Y, k=10), "knn10_accuracy": knn_accuracy(Y, y, k=10),
        "feature8_share_x": float(share[0, ATTRIBUTE]), "feature8_share_y": float(share[1, ATTRIBUTE]),
        "top_feature_x": features[int(np.argmax(share[0]))], "top_feature_y": features[int(np.argmax(share[1]))],
    }
    return row, Y, share


def main(argv: list[str] | None = None) -> None:
    run = start("fig5", __doc__.splitlines()[0], argv)
    n_items = 700 if run.quick else 7000
    X, y, features = covtype_balanced(n_items, seed=0)
    epochs = 2 if run.quick else EPOCHS
    perplexity = 30 if run.quick else PERPLEXITY
    attribute = X[:, ATTRIBUTE]

    rows, embeddings, shares = [], {}, {}
    for w_tsne, w_corr in WEIGHTS:
        label = f"({w_tsne:g}, {w_corr:g})"
        s = spec("attribute_guided_tsne")
        configure(s, epochs, perplexity, [w_tsne, w_corr])
        with timed(run, f"weights {label}") as t:
            routine = quiet_fit(Routine(s, seed=0, verbose=False), {"main": X})
        measured, Y, share = evaluate(routine, X, y, features)
        row = {"weights": label, "w_tsne": w_tsne, "w_corr": w_corr, **measured, "fit_s": t["s"]}
        run.log(str({k: (round(v, 4) if isinstance(v, float) else v) for k, v in row.items()}))
        rows.append(row)
        embeddings[label], shares[label] = Y, share
    run.write_csv(rows)

    fig, axes = figure(1, len(rows), size=2.6)
    for ax, row in zip(axes[0], rows, strict=False):
        scatter(embeddings[row["weights"]], attribute, ax=ax, legend=ax is axes[0, -1], point_size=1.5,
                title=f"(w_tsne, w_corr) = {row['weights']}\nr(hillshade noon, x) = {row['pearson_attribute_x']:.2f}")
    run.save_figure(fig, dpi=90)

    fig, axes = figure(2, len(rows), size=2.2, sharey=True)
    positions = np.arange(len(features))
    for col, row in enumerate(rows):
        for axis, name in enumerate(("x", "y")):
            ax = axes[axis, col]
            colors = ["tab:red" if i == ATTRIBUTE else "tab:gray" for i in positions]
            ax.bar(positions + 1, shares[row["weights"]][axis], color=colors)
            ax.set_xticks(positions + 1)
            ax.tick_params(labelsize=7)
            ax.set_title(f"{row['weights']}: output {name}", fontsize=9)
            if col == 0:
                ax.set_ylabel("share of mean |IG|")
            if axis == 1:
                ax.set_xlabel("feature (1-based; red: 8)", fontsize=8)
    run.save_figure(fig, "_importance.png", dpi=90)

    def claims(grid: list[tuple[float, float]]) -> dict:
        labels = {f"({w:g}, {c:g})" for w, c in grid}
        guided = [r for r in rows if r["w_corr"] > 0 and r["weights"] in labels]
        strongest = min(guided, key=lambda r: r["w_tsne"] / r["w_corr"])
        return {
            "feature8_most_important_for_x_when_guided": {
                "per_weight": {r["weights"]: r["top_feature_x"] for r in guided},
                "feature8_share_x": {r["weights"]: r["feature8_share_x"] for r in guided},
                "holds": all(r["top_feature_x"] == features[ATTRIBUTE] for r in guided)},
            "feature8_no_contribution_to_y_at_strongest_weight": {
                "weights": strongest["weights"], "share_y": strongest["feature8_share_y"],
                "threshold": NO_CONTRIBUTION, "holds": bool(strongest["feature8_share_y"] < NO_CONTRIBUTION)},
        }

    run.results.update({
        "settings": {"spec": "specs/attribute_guided_tsne.yaml", "perplexity": perplexity, "epochs": epochs,
                     "batch_size": BATCH_SIZE, "lr": LR, "attribute": features[ATTRIBUTE], "attribute_column_1based": 8,
                     "integrated_gradients": {"baseline": "data mean", "n_steps": 50, "items": N_EXPLAIN},
                     "features": features},
        "rows": rows,
        "importance_shares": {label: {"x": share[0], "y": share[1]} for label, share in shares.items()},
        "claims": claims(WEIGHTS),
    })
    run.finish()


if __name__ == "__main__":
    main()
