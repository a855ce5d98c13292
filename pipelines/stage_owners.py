"""Which specs and datasets each stored stage belongs to (what ``paradime cache ls`` shows).

Stages are shared: one kNN graph can serve several specs, one dataset many runs. Ownership
is therefore read from the store's records rather than from the stages themselves:

- every run log (``runs/*.json``) lists the stages the run used, its dataset (an embedding
  run: the dataset it ingested) and its model;
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


def stage_owners(store: ArtifactStore) -> dict[tuple[str, str], Owners]:
    """``(kind, key)`` -> :class:`Owners` for every stage a recorded run used."""
    specs_of_model = model_specs(store)
    owners: dict[tuple[str, str], Owners] = {}
    for run in _json_files(store, "runs"):
        spec = specs_of_model.get(run.get("model_key") or "")
        used = {(r.get("kind"), r.get("key")) for r in run.get("records", []) if isinstance(r, dict)}
        datasets = {run["dataset_key"]} if run.get("dataset_key") else {key for kind, key in used if kind == "datasets"}
        for stage in used:
            entry = owners.setdefault(stage, Owners())
            if spec:
                entry.specs.add(spec)
            entry.datasets.update(datasets)
    return owners


def describe_stages(store: ArtifactStore, infos: list[StageInfo]) -> list[dict[str, Any]]:
    """One record per stage: kind, key, name, size, created, complete, specs, datasets.

    ``datasets`` holds ``{"key", "name"}`` of each dataset (a dataset stage lists itself).
    """
    owners = stage_owners(store)
    dataset_names = {info.key: info.name for info in store.list("datasets")}
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
