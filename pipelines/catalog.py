"""Small records in the store that connect runs: dataset versions, models per spec, run logs.

- dataset versions per lineage: :mod:`pipelines.lineage`.
- ``index/models/<spec id>.json``: per spec (+ seed and embedding size), the final model of
  each dataset it was fitted on, its lineage, and which model a retraining warm-started from.
- ``runs/<time>-<flow>-<id>.json``: what each flow run did (stage records).

Records that grow (lineage versions, models) are read, changed and written back under a lock
(:meth:`~pipelines.store.ArtifactStore.update_json`), so concurrent runs lose none.
"""

from __future__ import annotations

import datetime as _dt
import os
import uuid
from typing import Any

from pipelines.ingest import dataset_ref
from pipelines.store import ArtifactStore, StageRef


def _now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")


def model_record(store: ArtifactStore, spec_key: str) -> dict[str, Any]:
    return store.read_json(f"index/models/{spec_key}.json") or {"spec_id": spec_key, "fits": []}


def record_model(store: ArtifactStore, spec_key: str, dataset_key: str, model_key: str,
                 warm_start: str | None, spec_name: str | None = None, lineage: str | None = None,
                 start: dict[str, Any] | None = None) -> None:
    """Remember that ``spec_key`` fitted on ``dataset_key`` (of ``lineage``) gave ``model_key``
    (latest last), starting from ``warm_start`` (``start``: the full choice, see
    :class:`pipelines.lineage.WarmStart`).

    Read, changed and written under the record's lock (no fit is lost to a concurrent run).
    """
    def add(record: dict[str, Any] | None) -> dict[str, Any]:
        record = record or {"spec_id": spec_key, "fits": []}
        fits = [f for f in record["fits"] if f["dataset"] != dataset_key or f["model"] != model_key]
        fits.append({"dataset": dataset_key, "model": model_key, "warm_start": warm_start, "lineage": lineage,
                     "start": start, "time": _now()})
        record.update({"fits": fits, "name": spec_name})
        return record

    store.update_json(f"index/models/{spec_key}.json", add)


def latest_model(store: ArtifactStore, spec_key: str) -> dict[str, Any] | None:
    fits = model_record(store, spec_key)["fits"]
    return fits[-1] if fits else None


def record_run(store: ArtifactStore, flow: str, result: dict[str, Any]) -> str:
    stamp = _dt.datetime.now(_dt.timezone.utc).strftime("%Y%m%dT%H%M%S")
    path = f"runs/{stamp}-{flow}-{uuid.uuid4().hex[:6]}.json"
    store.write_json(path, result)
    return path


def stored_dataset(store: ArtifactStore, data: str) -> StageRef | None:
    """``data`` given as ``datasets/<key>`` (or a unique key prefix of 8+ characters)."""
    text = str(data)
    key = text.split("/", 1)[1] if text.startswith("datasets/") else text
    if "/" in key or "." in key or len(key) < 8 or os.path.exists(text):
        return None
    matches = [s for s in store.find(key, "datasets") if s.complete]
    return dataset_ref(store, matches[0].key) if len(matches) == 1 else None
