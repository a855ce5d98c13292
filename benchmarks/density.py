"""Density preservation (densMAP's measure) of UMAP-like embeddings, printed as JSON lines.

On data whose clusters differ in density, fit each method on all items and report densMAP's
correlation ``dens_corr`` = Pearson(log R, log r) over all items, where ``R_i`` and ``r_i``
are the similarity-weighted mean squared distances from item ``i`` to its neighbours in the
data and in the embedding, both over the same fuzzy graph (UMAP's, ``n_neighbors`` = 15,
exact kNN) so that every method is measured alike; ``dens_corr_own`` takes ``r_i`` over the
embedding's own fuzzy kNN graph instead (the densMAP paper's form). Also trustworthiness@10
over all items and the fit's wall and CPU seconds (torch and numba on one thread, so the CPU
seconds are the work, less sensitive than the wall time to other processes on a shared
machine; umap-learn is timed after an untimed two-epoch fit of the same data, so its times
leave out numba's compilation).

Methods: ``pumap`` (ParametricUMAP), ``pumap_densmap`` (ParametricUMAP(densmap=True)),
``umap`` (umap-learn UMAP) and ``densmap`` (umap-learn UMAP(densmap=True)), each with
``n_neighbors`` = 15 and densMAP's defaults (``dens_lambda`` 2, ``dens_frac`` 0.3,
``dens_var_shift`` 0.1). Datasets: ``blobs`` (six Gaussian blobs in 20-D, standard
deviations 0.5 to 16 (32x), 500 items each, seed 0) and ``pendigits`` (5,000 random rows,
columns scaled to [0, 1]).

    python benchmarks/density.py                       # both datasets, all four methods
    python benchmarks/density.py --quick               # a tiny run (small blobs, few epochs)
    python benchmarks/density.py --datasets blobs --methods pumap,pumap_densmap
"""

from __future__ import annotations

import argparse
import json
import os
import time

os.environ.setdefault("NUMBA_NUM_THREADS", "1")

import numpy as np  # noqa: E402

METHODS = ("pumap", "pumap_densmap", "umap", "densmap")
DATASETS = ("blobs", "pendigits")
N_NEIGHBORS = 15
BLOB_STDS = (0.5, 1.0, 2.0, 4.0, 8.0, 16.0)


def blobs(per_blob: int = 500, dim: int = 20, seed: int = 0) -> np.ndarray:
    """Gaussian blobs in ``dim``-D with the standard deviations :data:`BLOB_STDS`, centres far apart."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(0.0, 1.0, (len(BLOB_STDS), dim))
    centres *= 400.0 / np.linalg.norm(centres, axis=1, keepdims=True)
    return np.concatenate([c + rng.normal(0.0, s, (per_blob, dim)) for c, s in zip(centres, BLOB_STDS, strict=True)]
                          ).astype(np.float32)


def pendigits(n: int = 5000, seed: int = 0) -> np.ndarray:
    from paradime_core.datasets import load_dataset

    X = load_dataset("pendigits", download=False).X.astype(np.float32)
    low, high = X.min(axis=0), X.max(axis=0)
    X = (X - low) / np.maximum(high - low, 1e-6)
    return X[np.random.default_rng(seed).permutation(len(X))[:n]]


def fuzzy_graph(X: np.ndarray):
    """UMAP's fuzzy graph of ``X`` (exact kNN, ``n_neighbors`` = 15), as ParametricUMAP builds it."""
    from paradime_core import ParametricUMAP
    from paradime_core.routine import Routine

    spec = ParametricUMAP(n_neighbors=N_NEIGHBORS, knn_method="faiss_exact", init="random").build_spec(*X.shape)
    return Routine(spec).compute_relation("p", {"main": X})


def fit(method: str, X: np.ndarray, quick: bool, warm_up: bool = False) -> np.ndarray | None:
    """The embedding of ``X`` by ``method`` (``warm_up``: an untimed short fit that compiles, no result)."""
    if method.startswith("pumap"):
        if warm_up:
            return None
        from paradime_core import ParametricUMAP

        options = {"n_epochs": 6, "batches_per_epoch": 20, "batch_size": 512} if quick else {}
        return ParametricUMAP(n_neighbors=N_NEIGHBORS, densmap=method.endswith("densmap"), random_state=0,
                              n_jobs=1, **options).fit_transform(X)
    import umap

    options = {"n_epochs": 50} if quick else {}
    if warm_up:  # numba compiles umap-learn's kNN and layout code on the first call of a process
        umap.UMAP(n_neighbors=N_NEIGHBORS, densmap=method == "densmap", random_state=0, n_jobs=1,
                  n_epochs=2).fit(X)
        return None
    return umap.UMAP(n_neighbors=N_NEIGHBORS, densmap=method == "densmap", random_state=0, n_jobs=1,
                     **options).fit_transform(X)


def measure(method: str, dataset: str, X: np.ndarray, graph, quick: bool) -> dict:
    from paradime_core.derived.local_radii import density_correlation, log_radii
    from paradime_core.metrics import trustworthiness

    fit(method, X, quick, warm_up=True)
    start, cpu_start = time.perf_counter(), time.process_time()
    Y = np.asarray(fit(method, X, quick), dtype=np.float32)
    fit_s, fit_cpu_s = time.perf_counter() - start, time.process_time() - cpu_start
    own = np.corrcoef(log_radii(graph, X), log_radii(fuzzy_graph(Y), Y))[0, 1]
    row = {"dataset": dataset, "method": method, "n": int(X.shape[0]),
           "dens_corr": round(density_correlation(graph, X, Y), 4), "dens_corr_own": round(float(own), 4),
           "trust10": round(float(trustworthiness(X, Y, k=10)), 4), "fit_s": round(fit_s, 1), "fit_cpu_s": round(fit_cpu_s, 1)}
    print(json.dumps(row), flush=True)
    return row


def main(argv: list[str] | None = None) -> list[dict]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--datasets", default=",".join(DATASETS), help=f"comma-separated: {', '.join(DATASETS)}")
    parser.add_argument("--methods", default=",".join(METHODS), help=f"comma-separated: {', '.join(METHODS)}")
    parser.add_argument("--quick", action="store_true", help="tiny data and few epochs (a smoke run)")
    args = parser.parse_args(argv)
    datasets, methods = args.datasets.split(","), args.methods.split(",")
    for name, allowed, what in ((datasets, DATASETS, "dataset"), (methods, METHODS, "method")):
        unknown = sorted(set(name) - set(allowed))
        if unknown:
            raise SystemExit(f"unknown {what}(s) {', '.join(unknown)}; choose from {', '.join(allowed)}")
    import torch

    torch.set_num_threads(1)
    rows = []
    for dataset in datasets:
        if dataset == "blobs":
            X = blobs(per_blob=100 if args.quick else 500)
        else:
            X = pendigits(n=600 if args.quick else 5000)
        graph = fuzzy_graph(X)
        rows += [measure(method, dataset, X, graph, args.quick) for method in methods]
    return rows


if __name__ == "__main__":
    main()
