"""The ``embed`` stage for any input: rows are read where they lie, only the embedding is stored.

Three kinds of input:

- a stored dataset (``datasets/<key>``): its Zarr array in the store;
- a Zarr array (or a Zarr group's features array) anywhere: embedded by Dask ``map_blocks``
  over its row chunks (:func:`pipelines.stages.embed_into`);
- any other format ingest reads (``.npy`` (memory-mapped), ``.npz``, ``.csv``, ``.parquet``,
  ``.nc``, a folder of parts, a dataset name): streamed block by block through the model in
  this process (:func:`stream_embed_into`); nothing but the embedding is written.

The embedding's key is the model key + the rows' content fingerprint (the same BLAKE2b over
65,536-row blocks that ingest computes, so an input that was ingested for training and then
embedded finds the training embedding's fingerprint). The fingerprint is computed while the
rows are embedded and remembered under the input's path and signature (size and mtime) in
the store's source index, so embedding an unchanged input again reads nothing: it is a
cache hit decided from one small JSON record.
"""

from __future__ import annotations

import contextlib
import os
import threading
import time
import warnings
from collections.abc import Iterator
from queue import Empty, Full, Queue
from typing import Any

import numpy as np

from pipelines import stage_checks
from pipelines.catalog import stored_dataset
from pipelines.errors import CacheWarning, CorruptArtifact, PipelineError
from pipelines.fingerprint import ArrayHasher, SourceIndex, file_signature, local_url
from pipelines.ingest import _RowBuffer, chunk_rows_for, probe
from pipelines.keys import embed_key, spec_id
from pipelines.parallel import DaskManager, embed_rows
from pipelines.stages import StageRecord, check_width, embed_into, timed_record
from pipelines.store import ArtifactStore, StageRef

EMBED_RECORD = "embed-rows"
"""Option that keeps the source-index records of embedded inputs apart from ingest's."""


def embed_stage(model_key: str, data: str, store: ArtifactStore, dask_address: str | None, method: str,
                label_column: str | None, progress: bool) -> tuple[list[StageRecord], str, str]:
    """Embed ``data`` with phase ``model_key``'s model; returns (records, embedding key, fingerprint)."""
    start = time.perf_counter()
    stored = stored_dataset(store, data)
    if stored is not None:
        _verify_stored_dataset(store, stored)
        fingerprint = dict(store.open_group("datasets", stored.key).attrs["fingerprints"])["main"]
        location = store.zarr_location(store.stage_path("datasets", stored.key) + "/main")
        return _embed_zarr(store, model_key, location, fingerprint, dask_address, method, progress, start,
                           {"dataset_key": stored.key, "source": data}, str(data))
    zarr_source = _zarr_array_source(data, store) if "://" in data or os.path.isdir(local_url(data)) else None
    if zarr_source is not None:
        location, array_url, signature, fingerprint = zarr_source
        records, key, fingerprint = _embed_zarr(store, model_key, location, fingerprint, dask_address, method,
                                                progress, start, {"source": str(data)}, str(data))
        SourceIndex(store).remember(array_url, signature, {"fingerprint": fingerprint})
        return records, key, fingerprint
    return _embed_stream(store, model_key, data, method, label_column, progress, start)


def _verify_stored_dataset(store: ArtifactStore, ref: StageRef) -> None:
    """Check every file of a stored dataset named as the input (a damaged one cannot be read
    again from anywhere, so it is refused with the way out)."""
    try:
        store.verify("datasets", ref.key)
    except CorruptArtifact as exc:
        raise PipelineError(f"dataset {ref.key[:12]} is damaged ({exc}); remove it with "
                            f"`paradime cache rm datasets/{ref.key[:12]}` and ingest the data again") from None


def _cached(store: ArtifactStore, model_key: str, fingerprint: str | None, method: str,
            start: float) -> tuple[StageRecord | None, str]:
    """The record of a valid stored embedding of these rows (None and the status to compute it with:
    ``recomputed`` replaces a damaged or incomplete copy)."""
    if fingerprint is None:
        return None, "computed"
    key = embed_key(model_key, fingerprint, method)
    try:
        if store.check("embeddings", key) is not None:
            store.verify("embeddings", key)
            return timed_record("embeddings", "embed", key, "cached", start), "cached"
    except CorruptArtifact as exc:
        warnings.warn(CacheWarning(f"cached embedding ({key[:12]}) is damaged: {exc}; recomputing"), stacklevel=3)
        return None, "recomputed"
    return None, "computed"


def _pending_key(model_key: str, fingerprint: str | None, method: str) -> str:
    """The key an embedding is written under before its rows' fingerprint is known."""
    return embed_key(model_key, fingerprint, method) if fingerprint is not None else "pending"


def _embed_zarr(store: ArtifactStore, model_key: str, location: Any, fingerprint: str | None,
                dask_address: str | None, method: str, progress: bool, start: float,
                attrs: dict[str, Any], source_name: str) -> tuple[list[StageRecord], str, str]:
    record, status = _cached(store, model_key, fingerprint, method, start)
    if record is not None:
        return [record], record.key, fingerprint
    with DaskManager(dask_address) as dask, store.begin(
            "embeddings", _pending_key(model_key, fingerprint, method), name="embed",
            replace=status == "recomputed",
            meta={"inputs": {"model": model_key, "data": fingerprint, "method": method}}) as writer:
        summary, fingerprint = embed_into(store, dask, model_key, location, writer, data_fingerprint=fingerprint,
                                          method=method, progress=progress, extra_attrs=attrs,
                                          source_name=source_name)
        status = _publish_as(store, writer, summary, model_key, fingerprint, method, status)
    return [timed_record("embeddings", "embed", writer.key, status, start)], writer.key, fingerprint


def _publish_as(store: ArtifactStore, writer: Any, summary: dict[str, Any], model_key: str, fingerprint: str,
                method: str, status: str) -> str:
    """Name the written embedding by its rows' fingerprint (drop it if a valid copy is stored;
    a ``recomputed`` one replaces the damaged copy)."""
    writer.summary = summary
    writer.key = embed_key(model_key, fingerprint, method)
    writer.meta["inputs"]["data"] = fingerprint
    if status != "recomputed" and store.manifest("embeddings", writer.key) is not None:  # embedded before
        writer.discard()
        return "cached"
    return status


def _embed_stream(store: ArtifactStore, model_key: str, data: str, method: str, label_column: str | None,
                  progress: bool, start: float) -> tuple[list[StageRecord], str, str]:
    """Embed any ingest format block by block, reading it only if its fingerprint is unknown."""
    found = probe(data, label_column)
    index = SourceIndex(store)
    fingerprint = None
    if found.signature is not None:
        ingested = index.lookup(found.url, found.signature, found.options)
        embedded = index.lookup(found.url, found.signature, {**found.options, EMBED_RECORD: True})
        fingerprint = ((ingested or {}).get("arrays") or {}).get("main") or (embedded or {}).get("fingerprint")
    record, status = _cached(store, model_key, fingerprint, method, start)
    if record is not None:
        return [record], record.key, fingerprint
    source = found.open()
    with store.begin("embeddings", _pending_key(model_key, fingerprint, method), name="embed",
                     replace=status == "recomputed",
                     meta={"inputs": {"model": model_key, "data": fingerprint, "method": method}}) as writer:
        summary, fingerprint = stream_embed_into(store, model_key, source, writer, method=method, progress=progress,
                                                 source_name=str(data))
        writer.group.attrs.update({"source": str(data)})
        status = _publish_as(store, writer, summary, model_key, fingerprint, method, status)
    if found.signature is not None:
        index.remember(found.url, found.signature, {"fingerprint": fingerprint},
                       {**found.options, EMBED_RECORD: True})
    return [timed_record("embeddings", "embed", writer.key, status, start)], writer.key, fingerprint


def stream_embed_into(store: ArtifactStore, model_key: str, source: Any, writer: Any, *, method: str = "embed",
                      progress: bool = True, torch_threads: int | None = None,
                      source_name: str | None = None) -> tuple[dict[str, Any], str]:
    """Embed ``source``'s features block by block into array ``embedding`` of ``writer``'s group.

    Rows of another width than the model's input are refused before any work. Each block is
    checked as it is read (values that fit float32, see :mod:`pipelines.validation`), hashed
    exactly as ingest hashes the features array (so the fingerprint matches an ingested
    copy), embedded with torch using ``torch_threads`` threads (default: every core, see
    :func:`pipelines.settings.torch_threads`) and appended in whole row chunks. Memory holds
    one block of input and of output. A non-finite embedded row is refused
    (:func:`pipelines.stage_checks.check_rows`).

    Parameters
    ----------
    store : ArtifactStore
        The store holding the model.
    model_key : str
        The phase stage whose model embeds.
    source : pipelines.ingest.Source
        The rows (its ``main`` array).
    writer : StageWriter
        The embedding stage being written.
    method : str
        The model method to apply.
    progress : bool
        Show a progress bar.
    torch_threads : int, optional
        Torch threads while embedding.
    source_name : str, optional
        The data's name in errors (default: the source's URL).

    Returns
    -------
    (summary, fingerprint) : tuple
        The stage summary and the features' content fingerprint.
    """
    import torch

    from pipelines import artifacts, errors
    from pipelines.ingest import _progress_bar
    from pipelines.settings import torch_threads as threads_setting

    routine = artifacts.load_routine(store, model_key)
    model = routine.model_
    if getattr(model, "input_key", None) == "index":
        raise errors.DataError("a direct (non-parametric) model embeds only its training items")
    dtype, row_shape = source.schema["main"]
    name = source_name or source.url
    check_width((int(source.n_rows or 0), *row_shape), routine, model_key, name)
    width = int(np.prod(row_shape, dtype=np.int64)) if row_shape else 1
    rows = chunk_rows_for(width * 4, source.n_rows)
    hasher = ArrayHasher(dtype, row_shape if row_shape else (1,))
    array = buffer = None
    n = 0
    threads = torch.get_num_threads()
    torch.set_num_threads(threads_setting(torch_threads))
    bar = _progress_bar(progress, source.n_rows, "embed")
    try:
        for values in _prefetch(_checked_blocks(source, rows, dtype, hasher)):
            out = embed_rows(model, values, method)
            out = out.reshape(len(out), -1)
            if array is None:
                array = writer.group.create_array("embedding", shape=(0, out.shape[1]), chunks=(rows, out.shape[1]),
                                                  dtype=out.dtype, dimension_names=["sample", "component"])
                buffer = _RowBuffer(array, rows)
            buffer.append(out)
            n += len(values)
            if bar is not None:
                bar.update(len(values))
    finally:
        torch.set_num_threads(threads)
        if bar is not None:
            bar.close()
    if buffer is None or n == 0:
        raise errors.DataError(f"{source.url}: holds no rows to embed")
    buffer.flush()
    stage_checks.check_rows(writer.group["embedding"], n, f"embedding of {name}")
    fingerprint = hasher.hexdigest()
    writer.group.attrs.update({"model_key": model_key, "spec_hash": spec_id(routine.spec, routine.seed,
                                                                            routine.out_dim),
                               "data_fingerprint": fingerprint, "method": method})
    return {"n_items": n, "model_key": model_key, "data_fingerprint": fingerprint}, fingerprint


def _checked_blocks(source: Any, rows: int, dtype: np.dtype, hasher: ArrayHasher) -> Iterator[np.ndarray]:
    """The features of ``source`` in blocks of ``rows`` (checked by the source as they are read):
    writable, hashed in order."""
    for block in source.blocks(rows):
        values = np.array(block["main"], dtype=dtype)  # a writable copy of a (memory-mapped) block
        if values.ndim == 1:
            values = values[:, None]
        hasher.update(values)
        yield values


def _prefetch(items: Iterator[Any], depth: int = 2) -> Iterator[Any]:
    """``items`` produced by a background thread up to ``depth`` ahead, in order.

    Reading, checking and hashing the next block (numpy, hashlib and file reads release the
    GIL) overlap embedding the current one. An exception in the producer is raised here; a
    consumer that stops early stops the producer.
    """
    queue: Queue[Any] = Queue(depth)
    stop = threading.Event()
    end = object()

    def produce() -> None:
        try:
            for item in items:
                while not stop.is_set():
                    try:
                        queue.put((item, None), timeout=0.1)
                        break
                    except Full:
                        continue
                if stop.is_set():
                    return
            queue.put((end, None))
        except BaseException as exc:  # noqa: BLE001 - handed to the consumer
            queue.put((end, exc))

    thread = threading.Thread(target=produce, name="paradime-embed-reader", daemon=True)
    thread.start()
    try:
        while True:
            item, error = queue.get()
            if item is end:
                if error is not None:
                    raise error
                return
            yield item
    finally:
        stop.set()
        while thread.is_alive():
            with contextlib.suppress(Empty):
                queue.get(timeout=0.1)
        thread.join()


def _zarr_array_source(data: str, store: ArtifactStore) -> tuple[Any, str, str, str | None] | None:
    """An existing Zarr array (or a Zarr group's features array) to embed where it lies.

    Returns (location, url, signature, remembered fingerprint or None).
    """
    import fsspec
    import zarr

    url = local_url(data)
    fs, path = fsspec.core.url_to_fs(url)
    if not (fs.isdir(path) and fs.exists(f"{path}/zarr.json")):
        return None
    node = zarr.open(path if "://" not in url else url, mode="r")
    array_url = url
    if isinstance(node, zarr.Group):
        name = next((n for n in ("main", "data", "X", "x") if n in node), None)
        if name is None:
            return None
        array_url = f"{url.rstrip('/')}/{name}"
    location = array_url if "://" not in array_url else zarr.storage.FsspecStore.from_url(array_url)
    signature = file_signature(fs, path)
    record = SourceIndex(store).lookup(array_url, signature)
    return location, array_url, signature, (record or {}).get("fingerprint")
