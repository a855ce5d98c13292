"""The stages of a run as plain functions over the store (Prefect wraps them in tasks).

:class:`Pipeline` holds one run's plan (:mod:`pipelines.keys`) and computes a stage only
when the store has no valid copy of it. Every stage ends in a :class:`StageRecord` saying
whether it was ``cached``, ``computed`` or ``recomputed`` (after a damaged copy was found,
which is also reported as a :class:`~pipelines.errors.CacheWarning`). All numbers come
from ``paradime_core``: kNN graphs from :mod:`paradime_core.neighbors`, transforms,
derived data and training phases from the :class:`~paradime_core.routine.Routine`
stage methods, metrics from :mod:`paradime_core.metrics`.

Determinism: phase ``i`` starts from phase ``i-1``'s stored weights with the torch seed
``seed * 1000003 + i``, so a run resumed after a crash trains exactly like one that was
never interrupted.
"""

from __future__ import annotations

import io
import time
import warnings
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from paradime_core.value_checks import all_rows_identical
from pipelines import artifacts, errors, stage_checks
from pipelines.errors import CacheWarning, CorruptArtifact, PipelineError
from pipelines.ingest import chunk_rows_for, load_dataset
from pipelines.keys import Node, Plan, spec_id
from pipelines.parallel import DaskManager, embed_rows, embed_to_zarr, knn_to_zarr
from pipelines.store import ArtifactStore, StageRef

PHASE_SEED_STRIDE = 1_000_003


@dataclass
class StageRecord:
    """What happened to one stage in a run."""

    kind: str
    name: str
    key: str
    status: str  # cached | computed | recomputed
    seconds: float
    detail: str = ""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @property
    def executed(self) -> bool:
        return self.status != "cached"


def timed_record(kind: str, name: str, key: str, status: str, start: float, detail: str = "") -> StageRecord:
    return StageRecord(kind, name, key, status, round(time.perf_counter() - start, 3), detail)


DASK_STAGES = ("knn", "embeddings")
"""Stages that run Dask tasks. The client (and a local cluster) is closed after each: an idle
cluster's threads keep waking up, and on a small machine a wake-up that preempts one of
torch's OpenMP threads stalls the whole parallel region (two cores: a UMAP network step took
2-29 % longer with an idle in-process cluster alive, in six paired runs)."""


class Pipeline:
    """One run of a spec on an ingested dataset: ensures stages, loads their values."""

    def __init__(self, store: ArtifactStore, spec: Any, plan: Plan, dask: DaskManager | None = None,
                 device: str = "cpu", progress: bool = True, torch_threads: int | None = None,
                 reingest: Callable[[], StageRef] | None = None):
        from pipelines.settings import torch_threads as threads_setting

        self.torch_threads = threads_setting(torch_threads)
        self.store = store
        self._spec = spec  # a Spec, or an object whose ``.spec`` loads it (SpecHandle)
        self.plan = plan
        self.dask = dask or DaskManager()
        self.device = device
        self.progress = progress
        self.records: list[StageRecord] = []
        self._ensured: dict[str, StageRef] = {}
        self._values: dict[str, Any] = {}
        self._dataset: dict[str, np.ndarray] | None = None
        self._dataset_verified = False
        self.reingest = reingest  # ingests the run's data again, replacing a damaged copy
        self._tensors: Any = None
        self._compute: dict[str, Callable[[Node, Any], dict[str, Any]]] = {
            "knn": self._compute_knn,
            "relations": self._compute_relation,
            "derived": self._compute_derived,
            "phases": self._compute_phase,
            "embeddings": self._compute_embedding,
            "reports": self._compute_report,
        }

    @property
    def spec(self) -> Any:
        """The parsed spec (loaded on first use: a cached run never needs it)."""
        return self._spec.spec if hasattr(self._spec, "spec") else self._spec

    # ------------------------------------------------------------------ ensure / load
    def run(self, node_id: str) -> StageRef:
        """Ensure stage ``node_id`` (and, if needed, what it depends on).

        A stage the run hands to the user (the final model, the embedding, the report) is
        also verified file by file, so a damaged copy is recomputed even when cached.
        """
        node = self.plan.nodes[node_id]
        ref = self.ensure(node)
        if node.kind in ("embeddings", "reports") or node.id == self.plan.final_phase.id:
            ref = self.readable(node)
        return ref

    def ensure(self, node: Node, force: bool = False) -> StageRef:
        """The stage of ``node``: the stored copy if it passes the cheap checks (seal and
        file sizes), else computed; ``force`` recomputes it and replaces the stored copy."""
        if node.id in self._ensured and not force:
            return self._ensured[node.id]
        start = time.perf_counter()
        store = self.store
        status, detail = ("recomputed" if force else "computed"), ""
        if not force:
            try:
                manifest = store.check(node.kind, node.key)
            except CorruptArtifact as exc:
                self._damaged(node, exc)
                status, detail, force = "recomputed", str(exc), True
            else:
                if manifest is not None:
                    ref = StageRef(store.url, node.kind, node.key, node.name, manifest.get("summary", {}))
                    self._ensured[node.id] = ref
                    self.records.append(timed_record(node.kind, node.name, node.key, "cached", start))
                    return ref
        for dep in node.deps:
            self.ensure(self.plan.nodes[dep])
        with store.begin(node.kind, node.key, name=node.name, replace=force,
                         meta={"inputs": node.payload, "node": node.id}) as writer:
            try:
                writer.summary = self._compute[node.kind](node, writer) or {}
            finally:
                if node.kind in DASK_STAGES:
                    self.dask.close()  # recreated on next use (a local cluster in ~0.05 s)
        ref = StageRef(store.url, node.kind, node.key, node.name, writer.summary)
        self._ensured[node.id] = ref
        self._values.pop(node.id, None)
        self.records.append(timed_record(node.kind, node.name, node.key, status, start, detail))
        return ref

    def _damaged(self, node: Node, exc: Exception) -> None:
        warnings.warn(CacheWarning(f"cached {node.kind[:-1] if node.kind.endswith('s') else node.kind} "
                                   f"'{node.name}' ({node.key[:12]}) is damaged: {exc}; recomputing"),
                      stacklevel=2)

    def readable(self, node: Node) -> StageRef:
        """Ensure ``node``'s stage and verify every file's checksum before its content is read;
        a damaged stage is reported (:class:`CacheWarning`) and recomputed."""
        ref = self.ensure(node)
        try:
            self.store.verify(node.kind, node.key)
        except CorruptArtifact as exc:
            self._damaged(node, exc)
            ref = self.ensure(node, force=True)
        return ref

    def value(self, node_id: str) -> Any:
        """The in-memory value of a relation, derived-data or kNN stage (recomputed if unreadable)."""
        if node_id in self._values:
            return self._values[node_id]
        node = self.plan.nodes[node_id]
        self.readable(node)
        try:
            value = self._load(node)
        except (CorruptArtifact, ValueError, KeyError, OSError, RuntimeError) as exc:
            self._damaged(node, exc)
            self.ensure(node, force=True)
            value = self._load(node)
        self._values[node_id] = value
        return value

    def _load(self, node: Node) -> Any:
        group = self.store.open_group(node.kind, node.key)
        if node.kind == "relations":
            return artifacts.read_relation(group)
        if node.kind == "derived":
            return np.asarray(group["value"][...])
        if node.kind == "knn":
            indices, distances = np.asarray(group["indices"][...]), np.asarray(group["distances"][...])
            try:  # a graph stored before its stage was checked is recomputed, never used
                stage_checks.check_knn(indices, distances, self.plan.n_items, f"kNN '{node.name}'")
            except stage_checks.StageCheckError as exc:
                raise CorruptArtifact(str(exc)) from None
            return indices, distances
        raise ValueError(f"no in-memory value for {node.kind}")

    # ------------------------------------------------------------------ data
    def dataset_location(self, array: str = "main") -> Any:
        self.verify_dataset()
        return self.store.zarr_location(self.store.stage_path("datasets", self.plan.dataset_key) + f"/{array}")

    def verify_dataset(self) -> None:
        """Verify the dataset's checksums before it is read (once per run); a damaged copy is
        ingested again from the run's data, or refused if the data was a stored key."""
        if self._dataset_verified:
            return
        key = self.plan.dataset_key
        try:
            self.store.verify("datasets", key)
        except CorruptArtifact as exc:
            if self.reingest is None:
                raise PipelineError(f"dataset {key[:12]} is damaged ({exc}); remove it with "
                                    f"`paradime cache rm datasets/{key[:12]}` and ingest the data again") from None
            warnings.warn(CacheWarning(f"cached dataset ({key[:12]}) is damaged: {exc}; ingesting again"),
                          stacklevel=2)
            start = time.perf_counter()
            ref = self.reingest()
            self.records.append(timed_record("datasets", ref.name, ref.key, "recomputed", start, str(exc)))
            if ref.key != key:
                raise PipelineError(f"the data changed during the run (dataset {key[:12]} was damaged "
                                    "and its source now reads differently); run again") from None
        self._dataset_verified = True

    def arrays(self) -> dict[str, np.ndarray]:
        """The ingested arrays in memory (loaded once per run)."""
        if self._dataset is None:
            self.verify_dataset()
            try:
                self._dataset = load_dataset(self.store, self.plan.dataset_key)
            except (KeyError, ValueError, OSError) as exc:
                raise PipelineError(f"dataset {self.plan.dataset_key[:12]} cannot be read ({exc}); "
                                    "remove it with `paradime cache rm` and run again") from exc
            main = self._dataset["main"]
            if all_rows_identical(main):  # refused before any stage computes on them
                source = self.store.open_group("datasets", self.plan.dataset_key).attrs.get("source", "the data")
                raise errors.DataError(f"{source}: all {len(main)} rows are identical (there is no structure "
                                       "to embed)")
        return self._dataset

    def input_array(self, name: str) -> np.ndarray:
        """Dataset entry ``name``: an ingested array or derived data."""
        if f"derived:{name}" in self.plan.nodes:
            return self.value(f"derived:{name}")
        return self.arrays()[name]

    def training_dataset(self) -> dict[str, np.ndarray]:
        """Ingested arrays + all derived data, validated by the core (adds ``index``)."""
        from paradime_core.routine import prepare_dataset

        data = dict(self.arrays())
        for node in self.plan.of_kind("derived"):
            data[node.name] = self.value(node.id)
        return prepare_dataset(data, self.spec.data_keys())

    def routine(self) -> Any:
        from paradime_core.routine import Routine

        return Routine(self.spec, seed=self.plan.seed, out_dim=self.plan.out_dim, device=self.device,
                       verbose=self.progress)

    # ------------------------------------------------------------------ stage computations
    def _compute_knn(self, node: Node, writer: Any) -> dict[str, Any]:
        relation = self.spec.relation(node.name)
        X = self.input_array(relation.data)
        k = int(node.payload["k"])  # the relation's own request, fitted to the number of items
        if f"derived:{relation.data}" in self.plan.nodes:
            derived = self.plan.nodes[f"derived:{relation.data}"]
            source = self.store.zarr_location(self.store.stage_path("derived", derived.key))
            array = "value"
        else:
            source = self.store.zarr_location(self.store.stage_path("datasets", self.plan.dataset_key))
            array = relation.data
        X2 = X.reshape(len(X), -1)
        import zarr

        rows = int(zarr.open_group(source, mode="r")[array].chunks[0])  # one task per stored row chunk
        rows = min(rows, chunk_rows_for(X2.shape[1] * 4, X2.shape[0]) * 4)
        info = knn_to_zarr(self.dask, X2, source, array, writer.group, writer.location, k,
                           node.payload["method"], node.payload["metric"], node.payload["seed"], rows,
                           self.progress)
        stage_checks.check_knn(writer.group["indices"], writer.group["distances"], int(X.shape[0]),
                               f"kNN '{node.name}'")
        writer.group.attrs.update({"k": k, "metric": node.payload["metric"], **info})
        return {"n_items": int(X.shape[0]), "k": k, **info}

    def _compute_relation(self, node: Node, writer: Any) -> dict[str, Any]:
        from paradime_core.relation_data import NeighborGraph

        relation = self.spec.relation(node.name)
        knn_id = f"knn:{node.name}"
        if knn_id in self.plan.nodes:
            value: Any = self.routine().relation_from_graph(node.name, NeighborGraph(*self.value(knn_id)))
        else:
            data = {"main": self.arrays()["main"], relation.data: self.input_array(relation.data)}
            value = self.routine().compute_relation(node.name, data)
        stage_checks.check_relation(value, self.plan.n_items, f"relation '{node.name}'")
        return artifacts.write_relation(writer.group, value)

    def _compute_derived(self, node: Node, writer: Any) -> dict[str, Any]:
        entry = next(d for d in self.spec.derived_data if d.name == node.name)
        data = {"main": self.arrays()["main"]}
        relations = {}
        for kind, key in entry.keys:
            if kind == "rels":
                relations[key] = self.value(f"relation:{key}")
            else:
                data[key] = self.input_array(key)
        value = self.routine().compute_derived(node.name, data, relations)
        stage_checks.check_rows(value, self.plan.n_items, f"derived data '{node.name}'")
        artifacts.write_rows(writer.group, "value", value,
                             dims=["sample"] + [f"dim_{i + 1}" for i in range(value.ndim - 1)])
        return {"shape": list(value.shape), "dtype": str(value.dtype)}

    def _compute_phase(self, node: Node, writer: Any) -> dict[str, Any]:
        import torch

        from paradime_core.routine import to_tensors

        index = int(node.index or 0)
        dataset = self.training_dataset()
        relations = {name: self.value(f"relation:{name}") for name in node.payload["global_relations"]}
        routine = self.routine()
        previous = node.payload["previous"]
        state, history, warm_start = None, {}, None
        if isinstance(previous, str):  # phase i > 0 starts where phase i-1 ended
            state, history = self._phase_state(previous, node)
        elif previous.get("warm_start"):  # retraining from an earlier model
            warm_start = previous["warm_start"]
            state, _ = self._phase_state(warm_start, node)
        # Stored weights carry the fitted front layers (PCA, noise unit): no refit then.
        model = routine.build_model(dataset, fit_front=state is None)
        if state is not None:
            try:
                model.load_state_dict(state)
            except RuntimeError as exc:
                if warm_start is None:
                    raise
                raise PipelineError(f"cannot warm-start from model {warm_start[:12]}: "
                                    f"its architecture differs ({exc})") from exc
        if self._tensors is None:
            self._tensors = to_tensors(dataset, routine.device)
        torch.manual_seed(self.plan.seed * PHASE_SEED_STRIDE + index)
        threads = torch.get_num_threads()
        torch.set_num_threads(self.torch_threads)
        try:
            result = routine.run_phase(index, dataset, relations, tensors=self._tensors)
        finally:
            torch.set_num_threads(threads)
        history = {**history, result.name: result.history}
        final = {k: (v[-1] if v else None) for k, v in result.history.items()}
        stage_checks.check_phase(model.state_dict(), final, f"phase {index} ('{result.name}')")
        group = writer.group
        artifacts.write_state_dict(group, model.state_dict())
        if result.optimizer_state is not None:
            artifacts.write_optimizer_state(group, result.optimizer_state)
        group.attrs.update({
            "phase": result.name, "index": index, "epochs_run": result.epochs_run,
            "history": history, "spec": self.spec.to_dict(), "model_spec": routine.model_spec_.to_dict(),
            "seed": self.plan.seed, "out_dim": self.plan.out_dim,
            "spec_id": spec_id(self.spec, self.plan.seed, self.plan.out_dim),
            "dataset": self.plan.dataset_key,
        })
        return {"phase": result.name, "epochs": result.epochs_run, "final_loss": final}

    def _phase_state(self, key: str, node: Node) -> tuple[dict[str, Any], dict[str, Any]]:
        """Weights and history of a stored phase (recomputing the previous phase if damaged)."""
        prev = next((n for n in self.plan.phases if n.key == key), None)
        for attempt in range(2):
            try:
                self.store.verify("phases", key)
                group = self.store.open_group("phases", key)
                return artifacts.read_state_dict(group), dict(group.attrs.get("history", {}))
            except (KeyError, ValueError, OSError, RuntimeError, CorruptArtifact) as exc:
                if prev is None or attempt:
                    raise PipelineError(f"model {key[:12]} (start of '{node.name}') cannot be read: {exc}") from exc
                self._damaged(prev, exc)
                self.ensure(prev, force=True)
        raise AssertionError("unreachable")

    def _compute_embedding(self, node: Node, writer: Any) -> dict[str, Any]:
        model_key = node.payload["model"]
        model_node = next((n for n in self.plan.phases if n.key == model_key), None)
        if model_node is not None:
            self.readable(model_node)
        summary, _ = embed_into(self.store, self.dask, model_key, self.dataset_location("main"), writer,
                                data_fingerprint=node.payload["data"], method=node.payload["method"],
                                progress=self.progress, training_items=self.plan.n_items)
        return summary

    def _compute_report(self, node: Node, writer: Any) -> dict[str, Any]:
        from paradime_core import metrics

        embedding_node = self.plan.nodes[node.deps[0]]
        self.readable(embedding_node)
        embedding = np.asarray(self.store.open_group("embeddings", embedding_node.key)["embedding"][...])
        arrays = self.arrays()
        labels = arrays.get("y")
        if labels is not None and labels.ndim != 1:
            labels = None
        options = {"k": 10, "sample": 5000, "seed": 0, **node.payload.get("metrics", {})}
        options["k"] = min(int(options["k"]), (len(embedding) - 1) // 2)  # the measures need k < n / 2
        X = arrays["main"].reshape(len(arrays["main"]), -1)
        values = metrics.evaluate(X, embedding, labels, **options) if options["k"] >= 1 else {}
        values = {k: float(v) for k, v in values.items()}
        png = plot_png(embedding, labels, title=self.spec.name or "embedding")
        writer.group.attrs.update({"metrics": values, "metric_options": options,
                                   "embedding": embedding_node.key})
        if png is not None:
            artifacts.write_rows(writer.group, "plot_png", np.frombuffer(png, dtype=np.uint8))
        return {"metrics": values}


def plot_png(embedding: np.ndarray, labels: np.ndarray | None, title: str = "") -> bytes | None:
    """The embedding scatter plot as PNG bytes (None if plotting is unavailable)."""
    try:
        from paradime_core import plotting
    except ImportError:  # pragma: no cover - plotting is part of the core
        return None
    figure = plotting.scatter(embedding, labels, title=title)
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=100)
    return buffer.getvalue()


def embed_into(store: ArtifactStore, dask: DaskManager, model_key: str, source: Any, writer: Any, *,
               data_fingerprint: str | None, method: str = "embed", progress: bool = True,
               training_items: int | None = None, extra_attrs: dict[str, Any] | None = None,
               source_name: str | None = None) -> tuple[dict[str, Any], str]:
    """Embed the Zarr array ``source`` with phase ``model_key``'s model into ``writer``'s group.

    Writes array ``embedding`` (dims ``sample``, ``component``) with provenance attributes:
    model key, spec hash, data fingerprint. With ``data_fingerprint=None`` the rows are
    fingerprinted in the same pass (blocks of 65,536 rows). Rows of another width than the
    model's input and non-finite results are refused (``source_name`` names the data in the
    error). Returns (summary, fingerprint).
    """
    import torch
    import zarr

    from pipelines.fingerprint import BLOCK_ROWS, combine_block_digests

    routine = artifacts.load_routine(store, model_key)
    model = routine.model_
    group = writer.group
    src = zarr.open_array(source, mode="r")
    n = int(src.shape[0])
    if getattr(model, "input_key", None) == "index":  # a direct model has no map for new rows
        if training_items is None or n != training_items:
            raise errors.DataError("a direct (non-parametric) model embeds only its training items")
        from paradime_core.batch import call_model_method

        with torch.no_grad():
            out = call_model_method(model, method, torch.arange(n)).cpu().numpy()
        artifacts.write_rows(group, "embedding", out, dims=["sample", "component"])
        if data_fingerprint is None:
            from pipelines.fingerprint import array_fingerprint

            data_fingerprint = array_fingerprint(src)
    else:
        _check_width(src, routine, model_key, source_name)
        probe = embed_rows(model, np.asarray(src[:2]), method)
        d = int(probe.shape[1]) if probe.ndim > 1 else 1
        rows = BLOCK_ROWS if data_fingerprint is None else int(src.chunks[0])
        if data_fingerprint is not None and rows < 8192:  # tiny source chunks: fewer, larger tasks
            rows = int(rows * max(1, 16384 // rows))
        rows = min(rows, max(n, 1))
        group.create_array("embedding", shape=(n, d), chunks=(rows, d), dtype=probe.dtype,
                           dimension_names=["sample", "component"])
        threads = torch.get_num_threads()
        try:
            _, digests = embed_to_zarr(dask, source, (store.url, model_key),
                                       writer.location_of("embedding"), method, progress,
                                       block_rows=rows, hash_rows=data_fingerprint is None)
        finally:
            torch.set_num_threads(threads)
        if data_fingerprint is None:
            data_fingerprint = combine_block_digests(src.dtype, tuple(src.shape), digests or [])
    stage_checks.check_rows(group["embedding"], n, f"embedding of {source_name or 'the data'}")
    spec_hash = spec_id(routine.spec, routine.seed, routine.out_dim)
    group.attrs.update({"model_key": model_key, "spec_hash": spec_hash, "data_fingerprint": data_fingerprint,
                        "method": method, **(extra_attrs or {})})
    return {"n_items": n, "model_key": model_key, "data_fingerprint": data_fingerprint}, data_fingerprint


def _check_width(src: Any, routine: Any, model_key: str, source_name: str | None) -> None:
    """Refuse rows whose feature count differs from the model's input width (before any work)."""
    expected = (getattr(routine, "model_spec_", None) and routine.model_spec_.options.get("in_dim"))
    width = int(np.prod(src.shape[1:], dtype=np.int64)) if len(src.shape) > 1 else 1
    if expected is not None and width != int(expected):
        raise errors.DataError(f"{source_name or 'data'}: rows have {width} feature(s) but model "
                               f"{model_key[:12]} takes {int(expected)}")
