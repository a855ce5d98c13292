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
from prefect.context import FlowRunContext, TaskRunContext
from prefect.states import Completed, State

from pipelines import catalog
from pipelines.bundled import SpecHandle, load_spec_argument
from pipelines.embedding import embed_stage
from pipelines.errors import CacheWarning, CorruptArtifact, PipelineError
from pipelines.fingerprint import SourceIndex
from pipelines.ingest import Source, dataset_ref, ingest, probe
from pipelines.keys import Plan, make_plan, plan_cache_key, spec_id
from pipelines.lineage import (
    WarmStart,
    choose_warm_start,
    lineage_id,
    record_version,
    weights_mismatch,
)
from pipelines.parallel import DaskManager
from pipelines.stages import Pipeline, StageRecord, timed_record
from pipelines.store import ArtifactStore, StageRef


@dataclass
class RunResult:
    """What a flow run did and where its outputs are.

    ``embedded_rows``: the rows an embed run read where they lie (not stored as a dataset):
    their content fingerprint (``key``), ``name`` and ``source``.
    """

    flow: str
    store: str
    records: list[StageRecord] = field(default_factory=list)
    dataset_key: str | None = None
    dataset_version: int | None = None
    model_key: str | None = None
    embedding_key: str | None = None
    metrics: dict[str, float] = field(default_factory=dict)
    lineage: str | None = None
    start: WarmStart | None = None
    embedded_rows: dict[str, str] | None = None
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
                "lineage": self.lineage, "start": self.start.to_dict() if self.start else None,
                "warm_start": self.start.describe() if self.start else None,
                "embedded_rows": self.embedded_rows, "output": self.output, "seconds": self.seconds}


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
    stored = catalog.stored_dataset(store, data)
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


@task(name="ingest", cache_policy=NO_CACHE, persist_result=False)
def ingest_task(data: str, store: ArtifactStore, label_column: str | None, progress: bool
                ) -> tuple[StageRef, StageRecord, dict[str, str]]:
    ref, record, fps = ingest_stage(data, store, label_column, progress)
    _logger().info("dataset %s: %s (%d items)", ref.key[:12], record.status, ref.summary.get("n_items", -1))
    return as_task_state((ref, record, fps), record.status == "cached")


@task(name="stage", task_run_name="{node_id}", cache_policy=NO_CACHE, persist_result=False)
def stage_task(pipeline: Pipeline, node_id: str) -> StageRef:
    before = len(pipeline.records)
    ref = pipeline.run(node_id)
    records = pipeline.records[before:]
    for record in records:
        _logger().info("%s '%s' (%s): %s in %.2f s", record.kind, record.name, record.key[:12], record.status,
                       record.seconds)
    return as_task_state(ref, all(r.status == "cached" for r in records))


def as_task_state(value: Any, cached: bool) -> Any:
    """``value``, or inside a task run of a stage read from the store, Prefect's *Cached* state
    (a ``Completed`` state named ``Cached``, as Prefect's own cache hits are) holding it, so
    the UI shows which stages were computed and which were read."""
    if not cached or TaskRunContext.get() is None:
        return value
    return Completed(name="Cached", data=value, message="read from the paradime store")


def _call(prefect_task: Any, *args: Any) -> Any:
    """Run a stage as a Prefect task inside a flow, as a plain function outside."""
    out = prefect_task(*args) if FlowRunContext.get() is not None else prefect_task.fn(*args)
    return out.result() if isinstance(out, State) else out


# --------------------------------------------------------------------------- fit / retrain
REFIT_FRONT_DEFAULT = True
"""Whether a warm-started retraining refits the front layers (PCA) on the new version by
default (the drift measurement behind it is in docs/RESULTS.md)."""


def run_spec(spec: Any, data: str, store: str | None = None, *, dask_address: str | None = None,
             seed: int = 0, out_dim: int = 2, label_column: str | None = None, progress: bool = True,
             device: str = "cpu", warm_start: bool = False, flow_name: str = "fit",
             report: bool = True, torch_threads: int | None = None, lineage: str | None = None,
             refit_front: bool = REFIT_FRONT_DEFAULT) -> RunResult:
    """Ingest ``data``, then every stage of ``spec`` that the store does not hold yet.

    The dataset becomes a version of its lineage (``lineage``, else its source path). With
    ``warm_start`` the first phase starts from the spec's latest model on an earlier version
    of the same lineage (cold if there is none or its weights do not fit the data); with
    ``refit_front`` that start refits the front layers (PCA) on the new version.

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
        source_url = _source_url(st, str(data), ref, label_column)
        result.lineage = lineage_id(source_url, lineage)
        result.dataset_version, _ = record_version(st, result.lineage, ref.key, source_url)
        key, name = handle.identity(st, seed, out_dim)
        start = None
        if warm_start:
            start = choose_warm_start(st, catalog.model_record(st, key)["fits"], result.lineage, ref.key,
                                      lambda model: _weights_mismatch(st, model, handle, ref, seed, out_dim))
            result.start = start
            _logger().info("%s", start.describe())
        elif flow_name == "retrain":
            result.start = WarmStart(None, reason="requested")
        start_from = start.model if start else None
        refit = bool(refit_front and start_from)
        plan = _plan(st, handle, ref, fingerprints, seed, out_dim, start_from, refit)
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
        catalog.record_model(st, key, ref.key, result.model_key, start_from, name, lineage=result.lineage,
                             start=start.to_dict() if start else None)
    finally:
        dask.close()
    result.seconds = round(time.perf_counter() - started, 3)
    result.run_log = catalog.record_run(st, flow_name, result.to_dict())
    return result


def _source_url(store: ArtifactStore, data: str, ref: StageRef, label_column: str | None) -> str:
    """Where the dataset was read from (a stored dataset key: the source it was ingested from)."""
    if catalog.stored_dataset(store, data) is not None:
        return str(ref.summary.get("source") or f"datasets/{ref.key}")
    return probe(data, label_column).url


def _weights_mismatch(store: ArtifactStore, model_key: str, handle: SpecHandle, ref: StageRef, seed: int,
                      out_dim: int) -> str | None:
    import numpy as np

    shape = ref.summary.get("arrays", {}).get("main") or [ref.summary["n_items"], 1]
    width = int(np.prod(shape[1:], dtype=np.int64)) if len(shape) > 1 else 1
    return weights_mismatch(store, model_key, handle.spec, seed, out_dim, int(ref.summary["n_items"]), width)


def _plan(store: ArtifactStore, handle: SpecHandle, ref: StageRef, fingerprints: dict[str, str], seed: int,
          out_dim: int, start_from: str | None, refit_front: bool = False) -> Plan:
    """The run's plan: remembered for this spec text and inputs, else made (and remembered)."""
    n_items = int(ref.summary["n_items"])
    path = None
    if handle.text is not None:
        start_key = f"{start_from}+refit-front" if refit_front else start_from
        path = f"index/plans/{plan_cache_key(handle.text, ref.key, n_items, seed, out_dim, start_key)}.json"
        remembered = store.read_json(path)
        if remembered:
            return Plan.from_dict(remembered)
    plan = make_plan(handle.spec, ref.key, fingerprints, n_items, seed=seed, out_dim=out_dim, warm_start=start_from,
                     refit_front=refit_front)
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
             device: str = "cpu", torch_threads: int | None = None, lineage: str | None = None) -> RunResult:
    """Fit a spec on data: ingest -> relations -> derived data -> phases -> embedding -> report."""
    return run_spec(spec, data, store, dask_address=dask_address, seed=seed, out_dim=out_dim,
                    label_column=label_column, progress=progress, device=device, flow_name="fit",
                    torch_threads=torch_threads, lineage=lineage)


@flow(name="paradime-retrain", validate_parameters=False)
def retrain_flow(spec: Any, data: str, store: str | None = None, dask_address: str | None = None,
                 warm_start: bool = True, seed: int = 0, out_dim: int = 2, label_column: str | None = None,
                 progress: bool = True, device: str = "cpu", torch_threads: int | None = None,
                 lineage: str | None = None, refit_front: bool = REFIT_FRONT_DEFAULT) -> RunResult:
    """Retrain on the current contents of ``data`` (a new version of its lineage if they changed).

    With ``warm_start`` the first phase starts from the spec's latest model fitted on an
    earlier version of the same lineage (see :mod:`pipelines.lineage`). Unchanged data ->
    every stage is cached.
    """
    return run_spec(spec, data, store, dask_address=dask_address, seed=seed, out_dim=out_dim,
                    label_column=label_column, progress=progress, device=device, warm_start=warm_start,
                    flow_name="retrain", torch_threads=torch_threads, lineage=lineage, refit_front=refit_front)


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


@task(name="embed", cache_policy=NO_CACHE, persist_result=False)
def embed_task(model_key: str, data: str, store: ArtifactStore, dask_address: str | None, method: str,
               label_column: str | None, progress: bool) -> tuple[list[StageRecord], str, str]:
    """The embedding stage of ``data`` with ``model_key`` (:mod:`pipelines.embedding`): the
    rows are read where they lie, only the embedding is stored."""
    records, key, fingerprint = embed_stage(model_key, data, store, dask_address, method, label_column, progress)
    return as_task_state((records, key, fingerprint), all(r.status == "cached" for r in records))


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
    records, key, fingerprint = _call(embed_task, model_key, str(data), st, dask_address, method, label_column,
                                      progress)
    result.records.extend(records)
    result.model_key, result.embedding_key = model_key, key
    stored = catalog.stored_dataset(st, str(data))
    if stored is not None:
        result.dataset_key = stored.key
    else:  # rows read where they lie: named as ingest would name them
        result.embedded_rows = {"key": fingerprint, "name": _dataset_name(str(data)), "source": str(data)}
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
