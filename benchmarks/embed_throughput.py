"""Batch embedding throughput and disk use: rows on disk -> embed stage -> Zarr, against the
same model in memory.

    python benchmarks/embed_throughput.py --rows 10000000 --rows 1000000 [--format npy|zarr]

For each row count: a float32 (rows x 54) input (covertype-sized rows, written once block by
block, reused on later runs) as a ``.npy`` file (``--format npy``, the default: streamed
through the model in the stage's process) or a Zarr array (``--format zarr``: Dask
``map_blocks`` over its chunks) is embedded by the ``embed`` flow's stage code in a child
process (its peak RSS measured by ``/usr/bin/time``); then the same model embeds one large
in-memory tensor in this process. Prints one JSON line per measurement:

- ``embed_<format>``: rows, seconds, rows/s, the child's peak RSS (GB), the input's size and
  how much the store grew (MB): only the embedding is stored, the input is read where it lies;
- ``embed_memory``: rows/s of ``model.embed`` on one (m x 54) float32 tensor (m = min(rows,
  2,000,000)), torch using all cores;
- ``summary``: zarr rows/s as a fraction of in-memory rows/s (target >= 0.5) and the peaks.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

FEATURES = 54
CHUNK_ROWS = 65536
SPEC = """
name: bench-embed
derived_data:
  - {name: pca, func: pca, keys: [[data, main]], options: {n_components: 2}}
losses:
  - {name: init, type: position, func: mse, keys: {data: [pca]}}
model: {type: fully_connected, options: {hidden_dims: [100, 50]}}
training_phases:
  - {name: init, epochs: 2, sampling: {type: item, batch_size: 256}, loss: {components: [init]}}
"""


def emit(record: dict) -> None:
    print(json.dumps(record), flush=True)


def make_rows(path: Path, rows: int, seed: int = 0) -> float:
    """A (rows x 54) float32 Zarr array or ``.npy`` file written block by block (skipped if present)."""
    import zarr

    if path.suffix == ".npy":
        if path.exists() and np.load(path, mmap_mode="r").shape == (rows, FEATURES):
            return 0.0
    elif (path / "zarr.json").exists():
        array = zarr.open_array(str(path), mode="r")
        if array.shape == (rows, FEATURES):
            return 0.0
    start = time.perf_counter()
    if path.suffix == ".npy":
        array = np.lib.format.open_memmap(path, mode="w+", dtype=np.float32, shape=(rows, FEATURES))
    else:
        array = zarr.create_array(str(path), shape=(rows, FEATURES), chunks=(CHUNK_ROWS, FEATURES),
                                  dtype="float32", overwrite=True)
    rng = np.random.default_rng(seed)
    centers = rng.normal(0, 3, size=(7, FEATURES)).astype(np.float32)
    for begin in range(0, rows, CHUNK_ROWS):
        n = min(CHUNK_ROWS, rows - begin)
        block = centers[rng.integers(0, 7, n)] + rng.normal(0, 1, size=(n, FEATURES)).astype(np.float32)
        array[begin:begin + n] = block
    if path.suffix == ".npy":
        array.flush()
        del array
    return time.perf_counter() - start


def disk_bytes(path: Path) -> int:
    """Bytes of every file under ``path`` (or of the file)."""
    if path.is_file():
        return path.stat().st_size
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def fit_model(store: str, workdir: Path) -> str:
    """A 54-100-50-2 network fitted briefly through the pipeline (its stage key)."""
    from pipelines.flows import run_spec

    rng = np.random.default_rng(1)
    np.save(workdir / "fit.npy", rng.normal(size=(2000, FEATURES)).astype(np.float32))
    (workdir / "spec.yaml").write_text(SPEC)
    result = run_spec(str(workdir / "spec.yaml"), str(workdir / "fit.npy"), store, progress=False, report=False)
    return result.model_key


def child(model_key: str, data: str, store: str) -> None:
    """Runs in a child process: the embed stage, then the peak RSS of this process."""
    import resource

    from pipelines.flows import run_embed

    start = time.perf_counter()
    result = run_embed(model_key, data, store, progress=False)
    seconds = time.perf_counter() - start
    stage = next(r for r in result.records if r.kind == "embeddings")
    peak_gb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2
    print(json.dumps({"seconds": seconds, "stage_seconds": stage.seconds, "status": stage.status,
                      "peak_rss_gb": peak_gb, "embedding_key": result.embedding_key}))


def in_memory_rate(store: str, model_key: str, rows: int) -> float:
    import torch

    from pipelines.artifacts import load_routine

    model = load_routine(__import__("pipelines.store").store.ArtifactStore(store), model_key).model_
    x = torch.randn(rows, FEATURES)
    with torch.no_grad():
        model.embed(x[:1000])
        start = time.perf_counter()
        model.embed(x)
        return rows / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, action="append", help="row counts (default 10M and 1M)")
    parser.add_argument("--format", choices=("npy", "zarr"), default="npy", help="input format")
    parser.add_argument("--workdir", default=os.path.join(tempfile.gettempdir(), "paradime-embed-bench"))
    parser.add_argument("--child", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(*args.child)
        return
    workdir = Path(args.workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    store = str(workdir / "store")
    model_key = fit_model(store, workdir)
    summary = {}
    for rows in args.rows or [10_000_000, 1_000_000]:
        path = workdir / f"rows-{rows}.{args.format}"
        made = make_rows(path, rows)
        subprocess.run(["rm", "-rf", *[str(p) for p in (Path(store) / "embeddings").glob("*")]], check=False)
        store_before = disk_bytes(Path(store))
        # /usr/bin/time reports the child's own peak RSS (a child forked from this process
        # would inherit this process's RSS at fork time into its ru_maxrss on Linux)
        done = subprocess.run(["/usr/bin/time", "-f", "%M", sys.executable, __file__, "--child", model_key,
                               str(path), store], capture_output=True, text=True, check=True)
        measured = json.loads(done.stdout.strip().splitlines()[-1])
        measured["peak_rss_gb"] = float(done.stderr.strip().splitlines()[-1]) / 1024**2
        zarr_rate = rows / measured["stage_seconds"]
        emit({"bench": f"embed_{args.format}", "rows": rows, "features": FEATURES,
              "seconds": round(measured["stage_seconds"], 2), "process_seconds": round(measured["seconds"], 2),
              "rows_per_s": round(zarr_rate), "peak_rss_gb": round(measured["peak_rss_gb"], 3),
              "input_mb": round(disk_bytes(path) / 2**20, 1),
              "store_growth_mb": round((disk_bytes(Path(store)) - store_before) / 2**20, 1),
              "write_input_seconds": round(made, 1), "cpus": os.cpu_count()})
        memory_rows = min(rows, 2_000_000)
        memory_rate = in_memory_rate(store, model_key, memory_rows)
        emit({"bench": "embed_memory", "rows": memory_rows, "rows_per_s": round(memory_rate)})
        summary[rows] = {"ratio": round(zarr_rate / memory_rate, 3), "peak_rss_gb": round(measured["peak_rss_gb"], 3)}
    emit({"bench": "summary", "by_rows": summary, "target": "ratio >= 0.5, peak_rss_gb <= 2"})


if __name__ == "__main__":
    main()
