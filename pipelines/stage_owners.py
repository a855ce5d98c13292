"""Which specs and datasets each stored stage belongs to (what ``paradime cache ls`` shows).

Stages are shared: one kNN graph can serve several specs, one dataset many runs. Ownership
is therefore read from the store's records rather than from the stages themselves:

- every run log (``runs/*.json``) lists the stages the run used, its dataset (an embedding
  run: the stored dataset it embedded, or the rows it read where they lie, named by their
  content fingerprint and file name) and its model;
- the model catalog (``index/models/*.json``) names the spec that fitted each model.

A stage belongs to the spec of every run that used it (found through the run's model) and
to that run's dataset: a model belongs to the data it was trained on, an embedding of new
rows to the spec of its model and to those rows. A stage that no recorded run used (a run that crashed, or a store
copied without its ``runs/`` folder) belongs to nothing known.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from pipelines.store import ArtifactStore, StageInfo


@dataclass
class Owners:
    """The specs (names) and datasets (keys) one stage belongs to."""

    specs: set[str] = field(default_factory=set)
    datasets: set[str] = field(default_factory=set)


def _run_datasets(run: dict[str, Any], used: set[tuple[Any, Any]]) -> set[str]:
    """The dataset keys a run read: its dataset, the datasets among its stages, or the rows an
    embed run read where they lie (their fingerprint)."""
    if run.get("dataset_key"):
        return {run["dataset_key"]}
    rows = run.get("embedded_rows")
    if isinstance(rows, dict) and rows.get("key"):
        return {rows["key"]}
    return {key for kind, key in used if kind == "datasets"}


def _json_files(store: ArtifactStore, folder: str) -> list[Any]:
    base = store.path(folder)
    if not store.fs.exists(base):
        return []
    records = []
    for entry in sorted(store.fs.ls(base, detail=False)):
        name = str(entry).rstrip("/").rsplit("/", 1)[-1]
        if name.endswith(".json"):
            record = store.read_json(f"{folder}/{name}")
            if isinstance(record, dict):
                records.append(record)
    return records


def model_specs(store: ArtifactStore) -> dict[str, str]:
    """Model (final phase) key -> the name of the spec that fitted it (its id if unnamed)."""
    names: dict[str, str] = {}
    for record in _json_files(store, "index/models"):
        label = record.get("name") or str(record.get("spec_id", ""))[:12] or "?"
        for fit in record.get("fits", []):
            if isinstance(fit, dict) and fit.get("model"):
                names[fit["model"]] = label
    return names


def stage_owners(store: ArtifactStore, runs: list[Any] | None = None) -> dict[tuple[str, str], Owners]:
    """``(kind, key)`` -> :class:`Owners` for every stage a recorded run used (``runs``: the
    run logs, read from the store if not given)."""
    specs_of_model = model_specs(store)
    owners: dict[tuple[str, str], Owners] = {}
    for run in _json_files(store, "runs") if runs is None else runs:
        spec = specs_of_model.get(run.get("model_key") or "")
        used = {(r.get("kind"), r.get("key")) for r in run.get("records", []) if isinstance(r, dict)}
        datasets = _run_datasets(run, used)
        for stage in used:
            entry = owners.setdefault(stage, Owners())
            if spec:
                entry.specs.add(spec)
            entry.datasets.update(datasets)
    return owners


def describe_stages(store: ArtifactStore, infos: list[StageInfo]) -> list[dict[str, Any]]:
    """One record per stage: kind, key, name, size, created, complete, specs, datasets.

    ``datasets`` holds ``{"key", "name"}`` of each dataset (a dataset stage lists itself; rows
    embedded where they lie: their fingerprint and file name).
    """
    runs = _json_files(store, "runs")
    owners = stage_owners(store, runs)
    dataset_names = {rows["key"]: str(rows.get("name", "")) for run in runs
                     if isinstance(rows := run.get("embedded_rows"), dict) and rows.get("key")}
    dataset_names.update({info.key: info.name for info in store.list("datasets")})
    described = []
    for info in infos:
        found = owners.get((info.kind, info.key), Owners())
        datasets = {info.key} if info.kind == "datasets" else found.datasets
        described.append({
            "kind": info.kind, "key": info.key, "name": info.name, "size": info.size, "created": info.created,
            "complete": info.complete, "specs": sorted(found.specs),
            "datasets": [{"key": key, "name": dataset_names.get(key, "")} for key in sorted(datasets)],
        })
    return described
