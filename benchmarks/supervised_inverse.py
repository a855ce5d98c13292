"""Supervised UMAP and inverse_transform against umap-learn, same split, same run (JSON lines).

Supervision (``--parts supervised``): fit on 5,000 random rows with no labels, all labels,
and half the labels (the other rows ``-1``), embed 2,000 disjoint held-out rows with
``transform``; report fit seconds, trustworthiness@10 of the held-out embedding and the
10-NN accuracy of a classifier fit on the training embedding, scored on the held-out one.

Inversion (``--parts inverse``): fit without labels (ours with ``decoder=True``), embed
1,000 held-out rows, map them back with ``inverse_transform``, report the mean squared
error per feature against the rows themselves and, for scale, the error of predicting the
training mean (``mean_mse``).

    python benchmarks/supervised_inverse.py [--dataset mnist] [--parts supervised,inverse]
        [--n-train 5000] [--n-test 2000] [--n-inverse 1000] [--no-reference] [--seed 0]
        [--n-epochs E] [--batch-size B] [--n-jobs J]

``--n-epochs`` / ``--batch-size`` shorten our training (default: the recipe's); ``--n-jobs``
goes to both libraries (on a crowded machine 1 thread each avoids oversubscription).

The references need the ``benchmark`` extra (``make setup-bench``).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from quality import load_split  # noqa: E402  (the paper protocol's split and scaling)

LABELLINGS = ("none", "all", "half")


def labels_for(labelling: str, y: np.ndarray) -> np.ndarray | None:
    """No labels, all of them, or every second row's (the others -1)."""
    if labelling == "none":
        return None
    if labelling == "all":
        return y
    return np.where(np.arange(len(y)) % 2 == 0, y, -1)


def ours(seed: int, **options):
    from paradime_core import ParametricUMAP

    return ParametricUMAP(random_state=seed, **options)


def reference(seed: int, **options):
    from umap import UMAP

    return UMAP(random_state=seed, **options)


def timed(call):
    start = time.perf_counter()
    value = call()
    return value, time.perf_counter() - start


def supervised_row(make, name: str, split, dataset: str, seed: int, labelling: str) -> None:
    from paradime_core.metrics import knn_accuracy, trustworthiness

    X_train, y_train, X_test, y_test = split
    estimator = make(seed)
    Y_train, fit_s = timed(lambda: estimator.fit_transform(X_train, labels_for(labelling, y_train)))
    Y_test, embed_s = timed(lambda: estimator.transform(X_test))
    print(json.dumps({
        "part": "supervised", "method": name, "dataset": dataset, "labels": labelling,
        "fit_s": round(fit_s, 1), "embed_s": round(embed_s, 2),
        "trust10": round(float(trustworthiness(X_test, Y_test, k=10)), 4),
        "knn10_acc": round(float(knn_accuracy(Y_train, y_train, Y_test, y_test, k=10)), 4),
    }), flush=True)


def inverse_row(make, name: str, split, dataset: str, seed: int, n_inverse: int) -> None:
    X_train, _, X_test, _ = split
    rows = X_test[:n_inverse]
    estimator = make(seed)
    _, fit_s = timed(lambda: estimator.fit(X_train))
    back, inverse_s = timed(lambda: estimator.inverse_transform(estimator.transform(rows)))
    print(json.dumps({
        "part": "inverse", "method": name, "dataset": dataset, "rows": len(rows),
        "fit_s": round(fit_s, 1), "transform_and_inverse_s": round(inverse_s, 2),
        "inverse_mse": round(float(np.mean((np.asarray(back, dtype=np.float64) - rows) ** 2)), 5),
        "mean_mse": round(float(np.mean((X_train.mean(axis=0) - rows) ** 2)), 5),
    }), flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", default="mnist")
    parser.add_argument("--parts", default="supervised,inverse")
    parser.add_argument("--n-train", type=int, default=5000)
    parser.add_argument("--n-test", type=int, default=2000)
    parser.add_argument("--n-inverse", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--no-reference", action="store_true", help="paradime only (no umap-learn)")
    parser.add_argument("--n-epochs", type=int, default=None, help="our training epochs (default: the recipe's)")
    parser.add_argument("--batch-size", type=int, default=None, help="our edges per step (default: the recipe's)")
    parser.add_argument("--n-jobs", type=int, default=None, help="threads of both libraries")
    args = parser.parse_args()
    ours_options = {key: value for key, value in (("n_epochs", args.n_epochs), ("batch_size", args.batch_size))
                    if value is not None}
    print(json.dumps({"settings": {**vars(args), "ours": ours_options}}), flush=True)
    split = load_split(args.n_train, args.n_test, seed=0, dataset=args.dataset)
    parts = args.parts.split(",")
    contenders = [("paradime ParametricUMAP", ours, ours_options)]
    if not args.no_reference:
        contenders.append(("umap-learn UMAP", reference, {}))
    for labelling in LABELLINGS if "supervised" in parts else ():  # ours and the reference in turn
        for name, make, options in contenders:
            supervised_row(lambda seed, make=make, options=options: make(seed, **options, n_jobs=args.n_jobs),
                           name, split, args.dataset, args.seed, labelling)
    if "inverse" in parts:
        for name, make, options in contenders:
            decoder = {"decoder": True} if make is ours else {}
            inverse_row(lambda seed, make=make, options=options, decoder=decoder:
                        make(seed, **options, **decoder, n_jobs=args.n_jobs),
                        name, split, args.dataset, args.seed, args.n_inverse)

if __name__ == "__main__":
    main()
