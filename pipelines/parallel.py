"""Dask inside stages: kNN queries in row blocks and batch embedding with ``map_blocks``.

Both write their results straight into Zarr regions of the stage's temporary group, block
``[s, e)`` into rows ``[s, e)`` (blocks follow the arrays' row chunks, so no two tasks
write one chunk), and return only row counts, so the client never holds the results.

Threads: a task sets torch (and faiss) to one thread; several torch threads per Dask
thread collapse under load on small machines (../shared/ENVIRONMENT.md).

The cluster is created only when a stage needs it (a cached run starts none): a
:class:`distributed.LocalCluster` sized to the machine (threads in one process by
default, so its workers end with the command; it and its dashboard listen on 127.0.0.1
unless told otherwise), or the scheduler at ``address``.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Iterable
from typing import Any

import numpy as np

from pipelines.settings import available_cores

DASK_HOST_ENV = "PARADIME_DASK_HOST"
LOCAL_HOST = "127.0.0.1"
_MODELS: dict[tuple[str, str], Any] = {}
_MODELS_LOCK = threading.Lock()


class DaskManager:
    """A Dask client created on first use: LocalCluster by default, or ``address``.

    A local cluster's scheduler, workers and dashboard listen on ``host``: by default
    ``$PARADIME_DASK_HOST``, else 127.0.0.1 (this machine only).
    """

    def __init__(self, address: str | None = None, n_workers: int | None = None,
                 threads_per_worker: int | None = None, processes: bool = False, host: str | None = None,
                 dashboard: bool = True):
        self.address = address
        self.n_workers = n_workers
        self.threads_per_worker = threads_per_worker
        self.processes = processes
        self.host = host or os.environ.get(DASK_HOST_ENV) or LOCAL_HOST
        self.dashboard = dashboard
        self._client: Any = None
        self._cluster: Any = None

    def client(self) -> Any:
        if self._client is None:
            from distributed import Client, LocalCluster

            for name in ("distributed", "distributed.scheduler", "distributed.worker", "distributed.core",
                         "distributed.nanny", "distributed.http.proxy"):
                if logging.getLogger(name).getEffectiveLevel() < logging.WARNING:
                    logging.getLogger(name).setLevel(logging.WARNING)
            if self.address:
                self._client = Client(self.address, set_as_default=False)
            else:
                cores = available_cores()
                n_workers = self.n_workers or (cores if self.processes else 1)
                threads = self.threads_per_worker or (1 if self.processes else cores)
                # threads in this process talk in-process (no socket); worker processes over
                # TCP on ``host``
                network = {"host": self.host} if self.processes else {}
                self._cluster = LocalCluster(n_workers=n_workers, threads_per_worker=threads,
                                             processes=self.processes, **network,
                                             dashboard_address=f"{self.host}:0" if self.dashboard else None,
                                             worker_dashboard_address=f"{self.host}:0",
                                             silence_logs=logging.WARNING)
                self._client = Client(self._cluster, set_as_default=False)
        return self._client

    def describe(self) -> str:
        if self.address:
            return f"dask scheduler {self.address}"
        return "local dask cluster (created on demand)"

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
        if self._cluster is not None:
            self._cluster.close()
        self._client = self._cluster = None

    def __enter__(self) -> DaskManager:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


def _progress(client: Any, futures: Iterable[Any], total_rows: int, desc: str, enabled: bool) -> None:
    """Wait for ``futures`` (each returning a row count), with a tqdm bar over rows."""
    from distributed import as_completed

    bar = None
    if enabled:
        from tqdm.auto import tqdm

        bar = tqdm(total=total_rows, desc=desc, unit="row", unit_scale=True, leave=False)
    try:
        for future in as_completed(list(futures), loop=client.loop):
            rows = future.result()
            if bar is not None:
                bar.update(int(np.sum(rows)))
            future.release()
    finally:
        if bar is not None:
            bar.close()


def _single_thread() -> None:
    import torch

    if torch.get_num_threads() != 1:
        torch.set_num_threads(1)


# --------------------------------------------------------------------------- kNN
def _knn_block(index: Any, source: Any, array: str, start: int, stop: int, k: int, target: Any) -> int:
    import zarr

    rows = np.asarray(zarr.open_group(source, mode="r")[array][start:stop])
    indices, distances = index.query_self(rows.reshape(len(rows), -1), k, start)
    out = zarr.open_group(target, mode="r+")
    out["indices"][start:stop] = indices
    out["distances"][start:stop] = distances
    return stop - start


def knn_to_zarr(dask: DaskManager, X: np.ndarray, source: Any, array: str, target_group: Any, target: Any,
                k: int, method: str, metric: str, seed: int, rows: int, progress: bool = True) -> dict[str, Any]:
    """kNN (self excluded) of every row of ``X`` into ``indices``/``distances`` of the target group.

    One index is built over ``X`` here; Dask tasks query it in blocks of ``rows`` rows read
    from the Zarr array ``source[array]`` and write their block's rows. pynndescent builds its
    neighbour graph while indexing, so that method takes the graph in one call instead.
    """
    from paradime_core.neighbors import NeighborIndex, nearest_neighbors

    n = X.shape[0]
    indices = target_group.create_array("indices", shape=(n, k), chunks=(rows, k), dtype="int64",
                                        dimension_names=["sample", "neighbor"])
    distances = target_group.create_array("distances", shape=(n, k), chunks=(rows, k), dtype="float32",
                                          dimension_names=["sample", "neighbor"])
    if method == "pynndescent":
        idx, dist = nearest_neighbors(X, k, method=method, metric=metric, seed=seed)
        indices[...] = idx
        distances[...] = dist
        return {"method": method, "blocks": 1}
    index = NeighborIndex(method=method, metric=metric, seed=seed).build(X)
    index.n_threads = 1  # each Dask task runs faiss on one thread
    client = dask.client()
    # hash=False: no content hash of the index (a full pickle of it, ~0.8 s on 60,000 MNIST
    # rows); in-process workers then share it by reference, remote ones get one copy each.
    shared = client.scatter(index, broadcast=True, hash=False)
    futures = [client.submit(_knn_block, shared, source, array, start, min(start + rows, n), k, target,
                             pure=False)
               for start in range(0, n, rows)]
    _progress(client, futures, n, f"kNN k={k}", progress)
    return {"method": index.method_, "pca_dims": index.pca_dims_, "blocks": len(futures)}


# --------------------------------------------------------------------------- embedding
def _cached_model(model_ref: tuple[str, str]) -> Any:
    """The model of a phase stage, loaded once per worker process."""
    with _MODELS_LOCK:
        model = _MODELS.get(model_ref)
        if model is None:
            from pipelines.artifacts import load_routine
            from pipelines.store import ArtifactStore

            store_url, key = model_ref
            model = load_routine(ArtifactStore(store_url), key).model_
            if len(_MODELS) > 8:
                _MODELS.clear()
            _MODELS[model_ref] = model
    return model


def embed_rows(model: Any, rows: np.ndarray, method: str = "embed") -> np.ndarray:
    """``model.<method>`` on a block of rows (float32, no gradient)."""
    import torch

    from paradime_core.batch import call_model_method

    x = torch.from_numpy(np.ascontiguousarray(rows.reshape(len(rows), -1), dtype=np.float32))
    with torch.no_grad():
        return call_model_method(model, method, x).cpu().numpy()


def _embed_block(block: np.ndarray, model_ref: tuple[str, str], method: str, target: Any,
                 hash_rows: bool, block_info: Any = None) -> np.ndarray:
    """Embed one row block into the target's rows; returns [[rows, digest as two int64]]."""
    import zarr

    from pipelines.fingerprint import block_digest

    _single_thread()
    start, stop = block_info[0]["array-location"][0]
    out = embed_rows(_cached_model(model_ref), block, method)
    zarr.open_array(target, mode="r+")[start:stop] = out
    result = np.zeros((1, 3), dtype=np.int64)
    result[0, 0] = stop - start
    if hash_rows:
        result[0, 1:] = np.frombuffer(block_digest(block), dtype="<i8")
    return result


def embed_to_zarr(dask: DaskManager, source: Any, model_ref: tuple[str, str], target: Any,
                  method: str = "embed", progress: bool = True, block_rows: int | None = None,
                  hash_rows: bool = False) -> tuple[int, list[bytes] | None]:
    """Embed every row of the Zarr array ``source`` into the Zarr array ``target``.

    ``map_blocks`` over row blocks (the source's row chunks, or ``block_rows``; the target's
    row chunks must match); each task embeds its block with the model of phase stage
    ``model_ref = (store url, key)`` (loaded once per worker) and writes rows ``[s, e)`` of
    the target. Memory stays at a few blocks per worker whatever ``n``. With ``hash_rows``
    each task also returns the BLAKE2b digest of its input rows (blocks of
    :data:`~pipelines.fingerprint.BLOCK_ROWS` rows give the content fingerprint's block
    digests, so new data is fingerprinted in the same pass). Returns (rows, digests).
    """
    import dask.array as da
    from distributed import as_completed

    x = da.from_zarr(source)
    if x.ndim == 1:
        x = x[:, None]
    elif x.ndim > 2:  # items with several axes (images): rows of their C-order values
        x = x.rechunk({axis: -1 for axis in range(1, x.ndim)}).reshape((x.shape[0], -1))
    x = x.rechunk({0: block_rows or x.chunks[0][0], 1: -1})
    n_blocks = len(x.chunks[0])
    results = x.map_blocks(_embed_block, model_ref, method, target, hash_rows, dtype=np.int64,
                           chunks=((1,) * n_blocks, (3,)))
    client = dask.client()
    futures = client.compute(results.to_delayed().ravel().tolist())
    position = {future.key: i for i, future in enumerate(futures)}
    digests: list[bytes | None] = [None] * n_blocks
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=int(x.shape[0]), desc="embed", unit="row", unit_scale=True, leave=False)
    try:
        for future in as_completed(futures, loop=client.loop):
            row = future.result()[0]
            digests[position[future.key]] = row[1:].astype("<i8").tobytes()
            if bar is not None:
                bar.update(int(row[0]))
            future.release()
    finally:
        if bar is not None:
            bar.close()
    return int(x.shape[0]), (digests if hash_rows else None)  # type: ignore[return-value]
