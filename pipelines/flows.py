"""Prefect flows: ``fit`` (spec + data -> model, embedding, report), ``embed`` (a trained
model + any data -> embedding) and ``retrain`` (new data -> new dataset version -> model,
optionally warm-started), each a sequence of cached stages.

Every stage is one Prefect task (``ingest``, ``knn:<relation>``, ``relation:<name>``,
``derived:<name>``, ``phase:<i>``, ``embed:train``, ``report:train``); Prefect's own
caching is off (``NO_CACHE``) because the artifact store is the cache: a task whose stage is
stored only checks it (no arrays are read or hashed) and returns. Tasks pass small
references, never arrays. Dask (kNN, embedding) is started only by a stage that computes.

Importing this module runs ``pipelines/__init__`` first, which sets Prefect's offline
defaults before prefect is imported. The same functions run without Prefect
(``run_spec``/``run_embed`` outside a flow call the stages directly); the flows call them.
"""

from __future__ import annotations

import base64
import os
import time
import warnings
from dataclasses import dataclass, field
from typing import Any

from prefect import flow, get_run_logger, task
from prefect.cache_policies import NO_CACHE
from prefect.context import FlowRunContext

from pipelines import catalog
from pipelines.bundled import SpecHandle, load_spec_argument
from pipelines.errors import CacheWarning, CorruptArtifact, PipelineError
from pipelines.fingerprint import SourceIndex, file_signature, local_url
from pipelines.ingest import Source, dataset_ref, ingest, probe
from pipelines.keys import Plan, embed_key, make_plan, plan_cache_key, spec_id
from pipelines.parallel import DaskManager
from pipelines.stages import Pipeline, StageRecord, embed_into, timed_record
from pipelines.store import ArtifactStore, StageRef


@dataclass
class RunResult:
    """What a flow run did and where its outputs are."""

    flow: str
    store: str
    records: list[StageRecord] = field(default_factory=list)
    dataset_key: str | None = None
    dataset_version: int | None = None
    model_key: str | None = None
    embedding_key: str | None = None
    metrics: dict[str, float] = field(default_factory=dict)
    output: str | None = None
    run_log: str | None = None
    seconds: float = 0.0

    def executed(self) -> list[str]:
        """``kind:name`` of every stage that was computed (not read from the store)."""
        return [f"{r.kind}:{r.name}" for r in self.records if r.executed]

    def status(self) -> dict[str, str]:
        return {f"{r.kind}:{r.name}": r.status for r in self.records}

    def to_dict(self) -> dict[str, Any]:
        return {"flow": self.flow, "store": self.store, "records": [r.to_dict() for r in self.records],
                "dataset_key": self.dataset_key, "dataset_version": self.dataset_version,
                "model_key": self.model_key, "embedding_key": self.embedding_key, "metrics": self.metrics,
                "output": self.output, "seconds": self.seconds}


# --------------------------------------------------------------------------- stage functions
def _logger() -> Any:
    if FlowRunContext.get() is not None:
        try:
            return get_run_logger()
        except Exception:  # noqa: BLE001 - logging must never break a run
            pass
    import logging

    return logging.getLogger("pipelines")


def ingest_stage(data: str, store: ArtifactStore, label_column: str | None = None,
                 progress: bool = True, replace: bool = False) -> tuple[StageRef, StageRecord, dict[str, str]]:
    """The dataset stage of ``data`` (a path/URL, a dataset name, or a stored dataset key).

    An input read before with an unchanged signature is not opened at all: its stored copy
    passes the cheap checks (seal, file sizes; checksums are verified when it is read).
    ``replace`` reads the input again and replaces the stored copy (a damaged one).
    """
    start = time.perf_counter()
    stored = _stored_dataset(store, data)
    if stored is not None:
        fps = dict(store.open_group("datasets", stored.key).attrs["fingerprints"])
        return stored, timed_record("datasets", stored.name, stored.key, "cached", start), fps
    found = probe(data, label_column)
    record = None
    if found.signature is not None and not replace:
        record = SourceIndex(store).lookup(found.url, found.signature, found.options)
    if record is not None:
        ref = dataset_ref(store, record["fingerprint"])
        if ref is not None:
            try:
                store.check("datasets", ref.key)
                return ref, timed_record("datasets", ref.name, ref.key, "cached", start), dict(record["arrays"])
            except CorruptArtifact as exc:
                warnings.warn(CacheWarning(f"cached dataset ({ref.key[:12]}) is damaged: {exc}; ingesting again"),
                              stacklevel=2)
                replace = True
    result = ingest(found.open(), store, name=_dataset_name(found.url), progress=progress, replace=replace)
    status = "recomputed" if (record is not None or replace) and result.status == "computed" else result.status
    return result.ref, timed_record("datasets", result.ref.name, result.ref.key, status, start), result.fingerprints


def _dataset_name(url: str) -> str:
    if url.startswith("dataset:"):
        return url.split(":", 1)[1]
    return os.path.splitext(os.path.basename(url.rstrip("/")))[0] or "data"


def _stored_dataset(store: ArtifactStore, data: str) -> StageRef | None:
    """``data`` given as ``datasets/<key>`` (or a unique key prefix of 8+ characters)."""
    text = str(data)
    key = text.split("/", 1)[1] if text.startswith("datasets/") else text
    if "/" in key or "." in key or len(key) < 8 or os.path.exists(text):
        return None
    matches = [s for s in store.find(key, "datasets") if s.complete]
    return dataset_ref(store, matches[0].key) if len(matches) == 1 else None


@task(name="ingest", cache_policy=NO_CACHE, persist_result=False)
def ingest_task(data: str, store: ArtifactStore, label_column: str | None, progress: bool
                ) -> tuple[StageRef, StageRecord, dict[str, str]]:
    ref, record, fps = ingest_stage(data, store, label_column, progress)
    _logger().info("dataset %s: %s (%d items)", ref.key[:12], record.status, ref.summary.get("n_items", -1))
    return ref, record, fps


@task(name="stage", task_run_name="{node_id}", cache_policy=NO_CACHE, persist_result=False)
def stage_task(pipeline: Pipeline, node_id: str) -> StageRef:
    before = len(pipeline.records)
    ref = pipeline.run(node_id)
    for record in pipeline.records[before:]:
        _logger().info("%s '%s' (%s): %s in %.2f s", record.kind, record.name, record.key[:12], record.status,
                       record.seconds)
    return ref


def _call(prefect_task: Any, *args: Any) -> Any:
    """Run a stage as a Prefect task inside a flow, as a plain function outside."""
    if FlowRunContext.get() is not None:
        return prefect_task(*args)
    return prefect_task.fn(*args)


# --------------------------------------------------------------------------- fit / retrain
def run_spec(spec: Any, data: str, store: str | None = None, *, dask_address: str | None = None,
             seed: int = 0, out_dim: int = 2, label_column: str | None = None, progress: bool = True,
             device: str = "cpu", warm_start: bool = False, flow_name: str = "fit",
             report: bool = True, torch_threads: int | None = None) -> RunResult:
    """Ingest ``data``, then every stage of ``spec`` that the store does not hold yet.

    A spec given as text or a file whose plan (stage keys) was made before for the same
    dataset and settings reuses that plan: a fully cached run reads a few small JSON files
    and imports neither torch nor the core.
    """
    started = time.perf_counter()
    handle = SpecHandle(spec)
    st = ArtifactStore(store)
    result = RunResult(flow_name, st.url)
    dask = DaskManager(dask_address)
    try:
        ref, record, fingerprints = _call(ingest_task, str(data), st, label_column, progress)
        result.records.append(record)
        result.dataset_key = ref.key
        if not str(data).startswith("datasets/"):
            result.dataset_version, _ = catalog.record_version(st, probe(data, label_column).url, ref.key)
        key, name = handle.identity(st, seed, out_dim)
        start_from = catalog.warm_start_for(st, key, ref.key) if warm_start else None
        plan = _plan(st, handle, ref, fingerprints, seed, out_dim, start_from)
        reingest = None
        if not str(data).startswith("datasets/"):
            def reingest() -> StageRef:
                return ingest_stage(str(data), st, label_column, progress, replace=True)[0]
        pipeline = Pipeline(st, handle, plan, dask, device=device, progress=progress, torch_threads=torch_threads,
                            reingest=reingest)
        for node_id, node in plan.nodes.items():
            if node.kind == "reports" and not report:
                continue
            _call(stage_task, pipeline, node_id)
        result.records.extend(pipeline.records)
        result.model_key = plan.final_phase.key
        result.embedding_key = plan.nodes["embed:train"].key
        if report:
            manifest = st.manifest("reports", plan.nodes["report:train"].key) or {}
            result.metrics = dict(manifest.get("summary", {}).get("metrics", {}))
            _publish_report(st, plan.nodes["report:train"].key, result, name)
        catalog.record_model(st, key, ref.key, result.model_key, start_from, name)
    finally:
        dask.close()
    result.seconds = round(time.perf_counter() - started, 3)
    result.run_log = catalog.record_run(st, flow_name, result.to_dict())
    return result


def _plan(store: ArtifactStore, handle: SpecHandle, ref: StageRef, fingerprints: dict[str, str], seed: int,
          out_dim: int, start_from: str | None) -> Plan:
    """The run's plan: remembered for this spec text and inputs, else made (and remembered)."""
    n_items = int(ref.summary["n_items"])
    path = None
    if handle.text is not None:
        path = f"index/plans/{plan_cache_key(handle.text, ref.key, n_items, seed, out_dim, start_from)}.json"
        remembered = store.read_json(path)
        if remembered:
            return Plan.from_dict(remembered)
    plan = make_plan(handle.spec, ref.key, fingerprints, n_items, seed=seed, out_dim=out_dim, warm_start=start_from)
    if path is not None:
        store.write_json(path, plan.to_dict())
    return plan


def _publish_report(store: ArtifactStore, report_key: str, result: RunResult, spec_name: str | None) -> None:
    """Metrics table and embedding plot as Prefect artifacts (inside a flow run only)."""
    if FlowRunContext.get() is None:
        return
    from prefect.artifacts import create_markdown_artifact, create_table_artifact

    rows = [{"metric": k, "value": round(v, 4)} for k, v in result.metrics.items()]
    stages = [{"stage": f"{r.kind}:{r.name}", "status": r.status, "seconds": r.seconds, "key": r.key[:12]}
              for r in result.records]
    try:
        create_table_artifact(table=rows, key="paradime-metrics", description=f"metrics of {spec_name or 'spec'}")
        create_table_artifact(table=stages, key="paradime-stages", description="stages of this run")
        group = store.open_group("reports", report_key)
        if "plot_png" in group:
            png = bytes(group["plot_png"][...].tobytes())
            image = base64.b64encode(png).decode()
            create_markdown_artifact(
                markdown=f"## Embedding\n\nmodel `{result.model_key}`, embedding `{result.embedding_key}`\n\n"
                         f"![embedding](data:image/png;base64,{image})",
                key="paradime-embedding", description="embedding of the training data")
    except Exception as exc:  # noqa: BLE001 - artifacts are a convenience, never a failure
        _logger().warning("could not create Prefect artifacts: %s", exc)


@flow(name="paradime-fit", validate_parameters=False)
def fit_flow(spec: Any, data: str, store: str | None = None, dask_address: str | None = None, seed: int = 0,
             out_dim: int = 2, label_column: str | None = None, progress: bool = True,
             device: str = "cpu", torch_threads: int | None = None) -> RunResult:
    """Fit a spec on data: ingest -> relations -> derived data -> phases -> embedding -> report."""
    return run_spec(spec, data, store, dask_address=dask_address, seed=seed, out_dim=out_dim,
                    label_column=label_column, progress=progress, device=device, flow_name="fit",
                    torch_threads=torch_threads)


@flow(name="paradime-retrain", validate_parameters=False)
def retrain_flow(spec: Any, data: str, store: str | None = None, dask_address: str | None = None,
                 warm_start: bool = True, seed: int = 0, out_dim: int = 2, label_column: str | None = None,
                 progress: bool = True, device: str = "cpu", torch_threads: int | None = None) -> RunResult:
    """Retrain on the current contents of ``data`` (a new version if they changed).

    With ``warm_start`` the first phase starts from the spec's latest model fitted on an
    earlier dataset version. Unchanged data -> every stage is cached.
    """
    return run_spec(spec, data, store, dask_address=dask_address, seed=seed, out_dim=out_dim,
                    label_column=label_column, progress=progress, device=device, warm_start=warm_start,
                    flow_name="retrain", torch_threads=torch_threads)


# --------------------------------------------------------------------------- embed
def resolve_model(model: str, store: ArtifactStore, seed: int = 0, out_dim: int = 2) -> str:
    """The phase key a model argument names: a key (prefix), a routine file, or a spec."""
    text = str(model)
    if os.path.isfile(text) and text.endswith((".pt", ".pth")):
        return import_routine_file(text, store)
    key = text.split("/", 1)[1] if text.startswith("phases/") else text
    if "/" not in key and "." not in key and len(key) >= 6:
        matches = [s for s in store.find(key, "phases") if s.complete]
        if len(matches) == 1:
            return matches[0].key
        if len(matches) > 1:
            raise PipelineError(f"model '{text}' is ambiguous ({len(matches)} stored models start with it)")
    try:
        spec = load_spec_argument(text)
    except Exception as exc:  # noqa: BLE001 - reported as one line below
        raise PipelineError(f"model '{text}': not a stored model key, a routine file (.pt) or a spec "
                            f"({exc})") from None
    fit = catalog.latest_model(store, spec_id(spec, seed, out_dim))
    if fit is None or store.manifest("phases", fit["model"]) is None:
        raise PipelineError(f"no model fitted with spec '{text}' in store {store.url}; run `paradime run` first")
    return fit["model"]


def verified_model(model: str, store: ArtifactStore, seed: int = 0, out_dim: int = 2) -> str:
    """:func:`resolve_model`, then every file of the model's stage checked against its checksum.

    Raises :class:`PipelineError` (one line naming the damaged file) for a damaged model.
    """
    key = resolve_model(model, store, seed, out_dim)
    try:
        store.verify("phases", key)
    except CorruptArtifact as exc:
        raise PipelineError(f"model {key[:12]} is damaged ({exc}); `paradime run` recomputes it, "
                            f"`paradime cache verify` lists every damaged stage") from None
    return key


def import_routine_file(path: str, store: ArtifactStore) -> str:
    """Store a saved routine (``Routine.save``) as a phase stage keyed by the file's bytes."""
    import hashlib

    from paradime_core.routine import Routine
    from pipelines import artifacts

    with open(path, "rb") as handle:
        key = hashlib.blake2b(b"routine-file:" + handle.read(), digest_size=16).hexdigest()
    if store.manifest("phases", key) is not None:
        return key
    routine = Routine.load(path, device="cpu")
    with store.begin("phases", key, name=os.path.basename(path), meta={"inputs": {"file": path}}) as writer:
        artifacts.write_state_dict(writer.group, routine.model_.state_dict())
        writer.group.attrs.update({"history": routine.history_, "spec": routine.spec.to_dict(),
                                   "model_spec": routine.model_spec_.to_dict(), "seed": routine.seed,
                                   "out_dim": routine.out_dim, "imported_from": path})
        writer.summary = {"imported_from": path}
    return key


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


@task(name="embed", cache_policy=NO_CACHE, persist_result=False)
def embed_task(model_key: str, data: str, store: ArtifactStore, dask_address: str | None, method: str,
               label_column: str | None, progress: bool) -> tuple[list[StageRecord], str, str]:
    """The embedding stage of ``data`` with ``model_key``: a Zarr array is read where it lies
    (fingerprinted during the same pass the first time), anything else is ingested first."""
    records: list[StageRecord] = []
    zarr_source = _zarr_array_source(data, store) if "://" in data or os.path.isdir(local_url(data)) else None
    signature = array_url = None
    if zarr_source is not None:
        location, array_url, signature, fingerprint = zarr_source
        dataset_key = None
    else:
        ref, record, fingerprints = ingest_stage(data, store, label_column, progress)
        records.append(record)
        ref = _verified_dataset(store, ref, data, label_column, progress)
        location = store.zarr_location(store.stage_path("datasets", ref.key) + "/main")
        fingerprint, dataset_key = fingerprints["main"], ref.key
    start = time.perf_counter()
    status = "computed"
    if fingerprint is not None:
        key = embed_key(model_key, fingerprint, method)
        try:
            if store.check("embeddings", key) is not None:
                store.verify("embeddings", key)
                records.append(timed_record("embeddings", "embed", key, "cached", start))
                return records, key, fingerprint
        except CorruptArtifact as exc:
            warnings.warn(CacheWarning(f"cached embedding ({key[:12]}) is damaged: {exc}; recomputing"),
                          stacklevel=2)
            status = "recomputed"
    with DaskManager(dask_address) as dask, store.begin(
            "embeddings", key if fingerprint is not None else "pending", name="embed", replace=status == "recomputed",
            meta={"inputs": {"model": model_key, "data": fingerprint, "method": method}}) as writer:
        summary, fingerprint = embed_into(store, dask, model_key, location, writer, data_fingerprint=fingerprint,
                                          method=method, progress=progress,
                                          extra_attrs={"dataset_key": dataset_key, "source": str(data)},
                                          source_name=str(data))
        writer.summary = summary
        key = writer.key = embed_key(model_key, fingerprint, method)
        writer.meta["inputs"]["data"] = fingerprint
        if status != "recomputed" and store.manifest("embeddings", key) is not None:  # embedded before
            writer.discard()
            status = "cached"
    if signature is not None:
        SourceIndex(store).remember(array_url, signature, {"fingerprint": fingerprint})
    records.append(timed_record("embeddings", "embed", key, status, start))
    return records, key, fingerprint


def _verified_dataset(store: ArtifactStore, ref: StageRef, data: str, label_column: str | None,
                      progress: bool) -> StageRef:
    """``ref`` after verifying its checksums; a damaged copy is ingested again from ``data``
    (refused if ``data`` named the stored dataset itself)."""
    try:
        store.verify("datasets", ref.key)
        return ref
    except CorruptArtifact as exc:
        if str(data).startswith("datasets/") or _stored_dataset(store, data) is not None:
            raise PipelineError(f"dataset {ref.key[:12]} is damaged ({exc}); remove it with "
                                f"`paradime cache rm datasets/{ref.key[:12]}` and ingest the data again") from None
        warnings.warn(CacheWarning(f"cached dataset ({ref.key[:12]}) is damaged: {exc}; ingesting again"),
                      stacklevel=2)
    return ingest_stage(data, store, label_column, progress, replace=True)[0]


def run_embed(model: str, data: str, store: str | None = None, *, dask_address: str | None = None,
              out: str | None = None, method: str = "embed", label_column: str | None = None,
              progress: bool = True, seed: int = 0, out_dim: int = 2, overwrite: bool = False) -> RunResult:
    """Embed ``data`` (any ingest format, a stored dataset, or a Zarr array) with ``model``.

    ``out`` follows :mod:`pipelines.outputs` (an existing output is replaced only with
    ``overwrite`` and only if paradime wrote it; never the input).
    """
    from pipelines.outputs import check_output

    started = time.perf_counter()
    st = ArtifactStore(store)
    result = RunResult("embed", st.url)
    inputs = [str(data), str(model)]
    if out:
        check_output(out, overwrite=overwrite, inputs=inputs, store_root=_local_root(st))
    model_key = verified_model(model, st, seed, out_dim)
    records, key, _ = _call(embed_task, model_key, str(data), st, dask_address, method, label_column, progress)
    result.records.extend(records)
    result.model_key, result.embedding_key = model_key, key
    if out:
        result.output = export_embedding(st, key, out, overwrite=overwrite, inputs=inputs)
    result.seconds = round(time.perf_counter() - started, 3)
    result.run_log = catalog.record_run(st, "embed", result.to_dict())
    return result


@flow(name="paradime-embed", validate_parameters=False)
def embed_flow(model: str, data: str, store: str | None = None, dask_address: str | None = None,
               out: str | None = None, method: str = "embed", label_column: str | None = None,
               progress: bool = True, seed: int = 0, out_dim: int = 2, overwrite: bool = False) -> RunResult:
    """Embed any number of rows with a trained model (``map_blocks`` over Zarr row chunks)."""
    return run_embed(model, data, store, dask_address=dask_address, out=out, method=method,
                     label_column=label_column, progress=progress, seed=seed, out_dim=out_dim,
                     overwrite=overwrite)


def _local_root(store: ArtifactStore) -> str | None:
    return store.root if store.is_local else None


def _verified_stage(store: ArtifactStore, kind: str, key: str) -> None:
    try:
        store.verify(kind, key)
    except CorruptArtifact as exc:
        raise PipelineError(f"stored {kind[:-1]} {key[:12]} is damaged ({exc}); run the command "
                            "again to recompute it") from None


def export_run(store: ArtifactStore, result: RunResult, out_dir: str, overwrite: bool = False,
               inputs: list[str] | tuple[str, ...] = (), exports: tuple[str, ...] = ()) -> list[str]:
    """Write a fit run's outputs to the folder ``out_dir``: ``embedding.npy``, the report's
    ``embedding.png`` and the model in each of ``exports`` (``model.onnx``, ``web/``), by the
    rules of :mod:`pipelines.outputs`."""
    import numpy as np

    from pipelines.outputs import staged_output

    _verified_stage(store, "embeddings", result.embedding_key)
    report = next((r for r in result.records if r.kind == "reports"), None)
    names = ["embedding.npy"]
    with staged_output(out_dir, overwrite=overwrite, inputs=inputs, store_root=_local_root(store)) as tmp:
        os.makedirs(tmp)
        with open(os.path.join(tmp, "embedding.npy"), "wb") as handle:
            np.save(handle, np.asarray(store.open_group("embeddings", result.embedding_key)["embedding"][...]))
        if report is not None:
            _verified_stage(store, "reports", report.key)
            group = store.open_group("reports", report.key)
            if "plot_png" in group:
                with open(os.path.join(tmp, "embedding.png"), "wb") as handle:
                    handle.write(bytes(group["plot_png"][...].tobytes()))
                names.append("embedding.png")
        if exports:
            from pipelines.exporting import EXPORT_NAMES, write_export

            for fmt in exports:
                write_export(store, result.model_key, fmt, os.path.join(tmp, EXPORT_NAMES[fmt]))
                names.append(EXPORT_NAMES[fmt])
    target = os.path.abspath(os.path.expanduser(out_dir))
    return [os.path.join(target, name) for name in names]


def export_embedding(store: ArtifactStore, key: str, out: str, overwrite: bool = False,
                     inputs: list[str] | tuple[str, ...] = ()) -> str:
    """Copy a stored embedding to ``out`` (.zarr with xarray layout and provenance, .npy, .csv,
    .parquet), by the rules of :mod:`pipelines.outputs`."""
    import numpy as np
    import xarray as xr

    from pipelines.outputs import staged_output

    lower = str(out).lower().rstrip("/")
    if not lower.endswith((".zarr", ".npy", ".csv", ".parquet")):
        raise PipelineError(f"{out}: unknown output format (use .zarr, .npy, .csv or .parquet)")
    _verified_stage(store, "embeddings", key)
    group = store.open_group("embeddings", key)
    attrs = {k: v for k, v in group.attrs.items() if k != "paradime"}
    attrs["embedding_key"] = key
    with staged_output(out, overwrite=overwrite, inputs=inputs, store_root=_local_root(store)) as tmp:
        if lower.endswith(".zarr"):
            dataset = xr.open_zarr(store.zarr_location(store.stage_path("embeddings", key)), consolidated=False,
                                   chunks={})[["embedding"]]
            dataset.attrs = attrs
            dataset.to_zarr(tmp, mode="w-", zarr_format=3, consolidated=False)
        else:
            values = np.asarray(group["embedding"][...])
            if lower.endswith(".npy"):
                with open(tmp, "wb") as handle:
                    np.save(handle, values)
            else:
                import pandas as pd

                frame = pd.DataFrame(values, columns=[f"dim_{i}" for i in range(values.shape[1])])
                if lower.endswith(".csv"):
                    frame.to_csv(tmp, index=False)
                else:
                    frame.to_parquet(tmp, index=False)
    return os.path.abspath(os.path.expanduser(str(out)))


__all__ = ["RunResult", "embed_flow", "fit_flow", "retrain_flow", "run_embed", "run_spec", "Source"]
