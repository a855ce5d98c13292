"""Held-out quality and speed on MNIST (the paper protocol), printed as JSON lines.

Fit on a random 5,000 MNIST images (scaled to [0, 1]), embed 10,000 disjoint held-out
images, report fit seconds, embed seconds, trustworthiness@10 of the held-out embedding
and 10-NN accuracy of a classifier fit on the 5,000 training embeddings; and, to tell a
weak fit from weak generalisation, the same two measures on the training embedding itself
(``train_trust10``; ``train_knn10_acc``, leave-one-out). With the
``benchmark`` extra installed (openTSNE, umap-learn) the references run on the same split
in the same run and the ratios are printed.

    python benchmarks/quality.py [--methods tsne,umap] [--references] [--set tsne.epochs=40 ...]
    python benchmarks/quality.py --dataset pendigits   # the same protocol on other data
    python benchmarks/quality.py --methods umap --repeats 4   # seeds 0..3, then their mean
    python benchmarks/quality.py --methods largevis            # also ParametricLargeVis (no reference)
    python benchmarks/quality.py --methods tsne,tsne_kl,largevis,largevis_fuzzy   # the recipes' forms

The forms of the recipes (``docs/RESULTS.md``, "The recipes as the paper defines them"):
``tsne`` is ParametricTSNE's default (InfoNCE over edges), ``tsne_kl`` its paper form
(``objective="kl"``: KL over item batches after a PCA start); ``largevis`` is
ParametricLargeVis (t-SNE's perplexity graph, the paper's form), ``largevis_fuzzy`` the same
training on UMAP's fuzzy graph instead (ParametricUMAP with LargeVis' Student-t kernel).
``--set tsne_kl.lr=0.02`` etc. override each form's parameters separately.

``--repeats N`` fits our routines N times (``random_state`` = its value, default 0, plus
0..N-1) on the same split and prints a summary line (mean, min, max of each figure): one
run's held-out 10-NN accuracy moves with the seed alone, so compare settings by the mean.
The reference comparison then uses it.

``--dataset`` (mnist, pendigits, letter, satimage, covtype_first20k): features scaled to [0, 1]
per column (covtype: standardised), fit on 5,000 random rows, embed up to 10,000 disjoint
rows (fewer where the dataset is smaller): a check that the defaults are not tuned to MNIST.
``--n-train`` and ``--n-test`` change those sizes (a shorter variant on a busy machine).
"""

from __future__ import annotations

import argparse
import ast
import json
import os
import time
from pathlib import Path

import numpy as np

DATA = Path(os.environ.get("PARADIME_DATA_DIR", Path(__file__).resolve().parents[1].parent / "shared" / "datasets"))


def load_split(n_train: int = 5000, n_test: int = 10000, seed: int = 0, dataset: str = "mnist"):
    from paradime_core.datasets import load_dataset

    ds = load_dataset(dataset, download=False)
    X = ds.X.reshape(len(ds.X), -1).astype(np.float32)
    if dataset == "mnist":
        X /= 255.0
    elif dataset.startswith("covtype"):
        X = (X - X.mean(axis=0)) / np.maximum(X.std(axis=0), 1e-6)
    else:
        low, high = X.min(axis=0), X.max(axis=0)
        X = (X - low) / np.maximum(high - low, 1e-6)
    perm = np.random.default_rng(seed).permutation(len(X))
    train, test = perm[:n_train], perm[n_train:n_train + n_test]
    return X[train], ds.y[train], X[test], ds.y[test]


def score(name, dataset, fit_s, embed_s, Y_train, y_train, X_test, Y_test, y_test, extra=None, X_train=None):
    from paradime_core.metrics import knn_accuracy, trustworthiness

    row = {
        "method": name,
        "dataset": dataset,
        "fit_s": round(fit_s, 2),
        "embed_10k_s": round(embed_s, 3),
        "trust10": round(float(trustworthiness(X_test, Y_test, k=10)), 4),
        "knn10_acc": round(float(knn_accuracy(Y_train, y_train, Y_test, y_test, k=10)), 4),
    }
    if X_train is not None:
        row["train_trust10"] = round(float(trustworthiness(X_train, Y_train, k=10)), 4)
        row["train_knn10_acc"] = round(float(knn_accuracy(Y_train, y_train, k=10)), 4)
    row.update(extra or {})
    print(json.dumps(row), flush=True)
    return row


#: Our routines by ``--methods`` name; the ones in REFERENCES also have a reference library.
METHODS = ("tsne", "umap", "largevis", "tsne_kl", "largevis_fuzzy")
REFERENCES = {"tsne": "openTSNE", "umap": "umap-learn"}


def estimator_for(method: str, overrides: dict):
    """The estimator a ``--methods`` name stands for, with its ``--set`` overrides."""
    from paradime_core import ParametricLargeVis, ParametricTSNE, ParametricUMAP

    class LargeVisOnFuzzyGraph(ParametricUMAP):
        """LargeVis' Student-t kernel and cross entropy on UMAP's fuzzy graph (``largevis_fuzzy``)."""

        def _similarity(self) -> dict:
            return {"type": "t_dist", "options": {"alpha": 1.0}}

    if method == "tsne_kl":
        return ParametricTSNE(**{"objective": "kl", **overrides})
    cls = {"tsne": ParametricTSNE, "umap": ParametricUMAP, "largevis": ParametricLargeVis,
           "largevis_fuzzy": LargeVisOnFuzzyGraph}[method]
    return cls(**overrides)


def run_ours(method: str, overrides: dict, split, dataset: str):
    X_train, y_train, X_test, y_test = split
    est = estimator_for(method, overrides)
    cls = type(est)
    t0 = time.perf_counter()
    Y_train = est.fit_transform(X_train)
    fit_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    Y_test = est.transform(X_test)
    embed_s = time.perf_counter() - t0
    extra = {"form": method, **({"params": overrides} if overrides else {})}
    return score(f"paradime.{cls.__name__}", dataset, fit_s, embed_s, Y_train, y_train, X_test, Y_test, y_test,
                 extra, X_train=X_train)


def run_reference(method: str, split, dataset: str):
    X_train, y_train, X_test, y_test = split
    if method == "tsne":
        from openTSNE import TSNE

        t0 = time.perf_counter()
        emb = TSNE(n_jobs=2, random_state=0).fit(X_train)
        fit_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        Y_test = np.asarray(emb.transform(X_test))
        embed_s = time.perf_counter() - t0
        return score("openTSNE", dataset, fit_s, embed_s, np.asarray(emb), y_train, X_test, Y_test, y_test, X_train=X_train)
    import umap

    t0 = time.perf_counter()
    reducer = umap.UMAP(random_state=0)
    Y_train = reducer.fit_transform(X_train)
    fit_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    Y_test = reducer.transform(X_test)
    embed_s = time.perf_counter() - t0
    return score("umap-learn", dataset, fit_s, embed_s, Y_train, y_train, X_test, Y_test, y_test, X_train=X_train)


SUMMARY_FIELDS = ("fit_s", "embed_10k_s", "trust10", "knn10_acc", "train_trust10", "train_knn10_acc")


def summarize(rows: list[dict]) -> dict:
    """Mean, min and max of each figure over the rows of repeated runs of one method."""
    summary: dict = {"method": rows[0]["method"], "dataset": rows[0]["dataset"], "repeats": len(rows)}
    for name in SUMMARY_FIELDS:
        values = [row[name] for row in rows if name in row]
        if values:
            summary[name] = round(float(np.mean(values)), 4)
            summary[f"{name}_range"] = [min(values), max(values)]
    return summary


def run_repeats(method: str, overrides: dict, split, dataset: str, repeats: int) -> dict:
    """``run_ours`` with ``random_state`` = base + 0..repeats-1; one run: its row, else the summary."""
    if repeats < 1:
        raise SystemExit(f"--repeats must be at least 1, got {repeats}")
    base = int(overrides.get("random_state", 0))
    rows = [run_ours(method, {**overrides, "random_state": base + r} if repeats > 1 else overrides, split, dataset)
            for r in range(repeats)]
    if repeats == 1:
        return rows[0]
    summary = summarize(rows)
    print(json.dumps(summary), flush=True)
    return summary


def parse_overrides(items: list[str]) -> dict[str, dict]:
    out: dict[str, dict] = {method: {} for method in METHODS}
    for item in items:
        key, value = item.split("=", 1)
        method, param = key.split(".", 1)
        if method not in out:
            raise SystemExit(f"--set {item}: unknown method {method!r} (one of {', '.join(METHODS)})")
        out[method][param] = parse_value(value)
    return out


def parse_value(text: str):
    """A ``--set`` value: a JSON or Python literal (``0.02``, ``null``, ``[96,96,96]``,
    ``(96, 96)``), else the text itself (``bfloat16``, ``tanh``); an expression such as
    ``(96,)*6`` is an error."""
    for parse in (json.loads, ast.literal_eval):
        try:
            return parse(text)
        except (ValueError, SyntaxError, TypeError):  # TypeError: e.g. an unhashable set member
            continue
    if text[:1] in "([{":
        raise SystemExit(f"--set: cannot read {text!r} as a JSON or Python literal")
    return text


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--methods", default="tsne,umap")
    parser.add_argument("--references", action="store_true", help="also run openTSNE / umap-learn (benchmark extra)")
    parser.add_argument("--set", nargs="*", default=[], help="override a recipe parameter, e.g. tsne.epochs=40")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--dataset", default="mnist", help="mnist, pendigits, letter, satimage or covtype_first20k")
    parser.add_argument("--repeats", type=int, default=1, help="fits of our routines with consecutive random_state")
    parser.add_argument("--n-train", type=int, default=5000, help="items the routines are fit on")
    parser.add_argument("--n-test", type=int, default=10000, help="held-out items embedded and scored")
    args = parser.parse_args()
    split = load_split(args.n_train, args.n_test, seed=args.seed, dataset=args.dataset)
    overrides = parse_overrides(args.set)
    for method in args.methods.split(","):
        if method not in METHODS:
            raise SystemExit(f"--methods: unknown method {method!r} (one of {', '.join(METHODS)})")
        ours = run_repeats(method, overrides[method], split, args.dataset, args.repeats)
        if args.references and method in REFERENCES:
            try:
                ref = run_reference(method, split, args.dataset)
            except ImportError as exc:
                print(json.dumps({"method": f"reference-{method}", "skipped": str(exc)}))
                continue
            print(json.dumps({
                "comparison": f"{ours['method']} vs {ref['method']}",
                "fit_time_ratio": round(ours["fit_s"] / ref["fit_s"], 3),
                "trust10_diff": round(ours["trust10"] - ref["trust10"], 4),
                "knn10_acc_diff": round(ours["knn10_acc"] - ref["knn10_acc"], 4),
            }), flush=True)


if __name__ == "__main__":
    main()
