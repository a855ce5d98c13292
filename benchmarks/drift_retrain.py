"""Retraining under drift: MNIST digits 0-4 arrive first, then digits 0-9 (one lineage).

    python benchmarks/drift_retrain.py [--spec umap] [--first 6000] [--added 6000] [--seeds 0] [--epochs N]
        [--steps BATCHES_PER_EPOCH] [--hidden 64 64]

Version 1 holds ``--first`` random training images of digits 0-4; version 2 adds ``--added``
random images of digits 5-9 (the same path, so the same lineage). The spec is fitted on
version 1, then retrained on version 2 three ways:

- ``cold``: from scratch (``--cold``);
- ``warm_keep``: from the version-1 model, keeping its front layers (PCA fitted on 0-4);
- ``warm_refit``: from the version-1 model, front layers (PCA) refitted on version 2.

Each prints a JSON line: the training seconds of its phases (kNN and relations are shared
and reported once), trustworthiness@10 of a held-out embedding (5,000 test images of 0-9),
10-NN accuracy of those test images against the version-2 training embedding, and the same
two figures on the new digits 5-9 alone. Runs without Prefect (``run_spec``), in a fresh
store under ``--workdir``.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np

DATA = Path(os.environ.get("PARADIME_DATA_DIR", Path(__file__).resolve().parents[1].parent / "shared" / "datasets"))


def emit(record: dict) -> None:
    print(json.dumps(record), flush=True)


def versions(first: int, added: int, n_test: int, seed: int = 0):
    """(v1 X, v1 y), (v2 X, v2 y), (test X, test y): pixels scaled to [0, 1], float32."""
    mnist = np.load(DATA / "mnist.npz")
    X, y, is_test = mnist["X"].astype(np.float32) / 255.0, mnist["y"], mnist["is_test"]
    rng = np.random.default_rng(seed)
    train = np.flatnonzero(~is_test)
    low = rng.permutation(train[y[train] < 5])[:first]
    high = rng.permutation(train[y[train] >= 5])[:added]
    test = rng.permutation(np.flatnonzero(is_test))[:n_test]
    v2 = np.concatenate([low, high])
    return (X[low], y[low]), (X[v2], y[v2]), (X[test], y[test])


def quality(store: str, model_key: str, embedding_key: str, v2, test) -> dict:
    from paradime_core.metrics import knn_accuracy, trustworthiness
    from pipelines.artifacts import load_routine
    from pipelines.parallel import embed_rows
    from pipelines.store import ArtifactStore

    st = ArtifactStore(store)
    Y_train = np.asarray(st.open_group("embeddings", embedding_key)["embedding"][...])
    Y_test = embed_rows(load_routine(st, model_key).model_, test[0])
    new = test[1] >= 5
    return {
        "trust10": round(float(trustworthiness(test[0], Y_test, k=10)), 4),
        "knn10_acc": round(float(knn_accuracy(Y_train, v2[1], Y_test, test[1], k=10)), 4),
        "trust10_new_digits": round(float(trustworthiness(test[0][new], Y_test[new], k=10)), 4),
        "knn10_acc_new_digits": round(float(knn_accuracy(Y_train, v2[1], Y_test[new], test[1][new], k=10)), 4),
    }


def phase_seconds(result) -> float:
    return round(sum(r.seconds for r in result.records if r.kind == "phases"), 2)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--spec", default="umap", help="bundled spec name or spec file")
    parser.add_argument("--first", type=int, default=6000, help="version 1: images of digits 0-4")
    parser.add_argument("--added", type=int, default=6000, help="version 2 adds this many images of digits 5-9")
    parser.add_argument("--test", type=int, default=5000, help="held-out test images (digits 0-9)")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0], help="model seeds")
    parser.add_argument("--epochs", type=int, help="epochs of the spec's last phase (default: the spec's)")
    parser.add_argument("--steps", type=int, help="batches per epoch of every phase (default: the spec's)")
    parser.add_argument("--hidden", type=int, nargs="+", help="hidden layer widths of the model (default: the spec's)")
    parser.add_argument("--workdir", default=os.path.join(tempfile.gettempdir(), "paradime-drift-bench"))
    args = parser.parse_args()

    from pipelines.flows import run_spec

    spec = args.spec
    if args.epochs is not None:
        from paradime_core.spec import Spec
        from pipelines.bundled import load_spec_argument

        raw = load_spec_argument(args.spec).to_dict()
        raw["training_phases"][-1]["epochs"] = args.epochs
        spec = Spec.from_dict(raw)
    if args.steps is not None or args.hidden is not None:
        from paradime_core.spec import Spec
        from pipelines.bundled import load_spec_argument

        raw = load_spec_argument(spec).to_dict()
        for phase in raw["training_phases"]:
            if args.steps is not None:
                phase["sampling"].setdefault("options", {})["batches_per_epoch"] = args.steps
        if args.hidden is not None:
            raw["model"]["options"]["hidden_dims"] = list(args.hidden)
        spec = Spec.from_dict(raw)
    v1, v2, test = versions(args.first, args.added, args.test)
    for seed in args.seeds:
        workdir = Path(args.workdir) / f"seed-{seed}"
        shutil.rmtree(workdir, ignore_errors=True)
        workdir.mkdir(parents=True)
        store, data = str(workdir / "store"), str(workdir / "feed.npz")
        np.savez(data, X=v1[0], y=v1[1])
        start = time.perf_counter()
        first = run_spec(spec, data, store, seed=seed, progress=False, report=False, flow_name="retrain",
                         warm_start=True)
        emit({"bench": "drift", "run": "v1", "seed": seed, "rows": len(v1[1]), "seconds": round(time.perf_counter() - start, 1),
              "phase_seconds": phase_seconds(first), "version": first.dataset_version})
        np.savez(data, X=v2[0], y=v2[1])
        for run, options in (("cold", {"warm_start": False}), ("warm_keep", {"warm_start": True, "refit_front": False}),
                             ("warm_refit", {"warm_start": True, "refit_front": True})):
            start = time.perf_counter()
            result = run_spec(spec, data, store, seed=seed, progress=False, report=False, flow_name="retrain",
                              **options)
            shared = round(sum(r.seconds for r in result.records if r.kind in ("knn", "relations", "derived")
                               and r.executed), 2)
            emit({"bench": "drift", "run": run, "seed": seed, "rows": len(v2[1]), "version": result.dataset_version,
                  "start": result.start.describe() if result.start else "cold start (--cold)",
                  "seconds": round(time.perf_counter() - start, 1), "phase_seconds": phase_seconds(result),
                  "shared_stage_seconds": shared, **quality(store, result.model_key, result.embedding_key, v2, test)})


if __name__ == "__main__":
    main()
