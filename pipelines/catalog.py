"""Small records in the store that connect runs: dataset versions, models per spec, run logs.

- ``index/versions/<source>.json``: the dataset versions seen at one input path, in order
  (a version is a content fingerprint; a changed file or a new part file makes a new one).
- ``index/models/<spec id>.json``: per spec (+ seed and embedding size), the final model of
  each dataset it was fitted on, and which model a retraining warm-started from.
- ``runs/<time>-<flow>-<id>.json``: what each flow run did (stage records).

Records that grow (versions, models) are read, changed and written back under a lock
(:meth:`~pipelines.store.ArtifactStore.update_json`), so concurrent runs lose none.
"""

from __future__ import annotations

import datetime as _dt
import uuid
from typing import Any

from pipelines.fingerprint import text_fingerprint
from pipelines.store import ArtifactStore


def _now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")


def record_version(store: ArtifactStore, source_url: str, dataset_key: str) -> tuple[int, bool]:
    """Add ``dataset_key`` to the versions of ``source_url``; returns (version number, is new).

    Read, changed and written under the record's lock (no version is lost to a concurrent run).
    """
    path = f"index/versions/{text_fingerprint(source_url)}.json"
    outcome: list[tuple[int, bool]] = []

    def add(record: dict[str, Any] | None) -> dict[str, Any]:
        record = record or {"source": source_url, "versions": []}
        keys = [v["key"] for v in record["versions"]]
        if dataset_key in keys:
            outcome.append((keys.index(dataset_key) + 1, False))
        else:
            record["versions"].append({"key": dataset_key, "seen": _now()})
            outcome.append((len(record["versions"]), True))
        return record

    known = [v["key"] for v in dataset_versions(store, source_url)]
    if dataset_key in known:  # a cached run takes no lock
        return known.index(dataset_key) + 1, False
    store.update_json(path, add)
    return outcome[-1]


def dataset_versions(store: ArtifactStore, source_url: str) -> list[dict[str, Any]]:
    record = store.read_json(f"index/versions/{text_fingerprint(source_url)}.json") or {}
    return list(record.get("versions", []))


def model_record(store: ArtifactStore, spec_key: str) -> dict[str, Any]:
    return store.read_json(f"index/models/{spec_key}.json") or {"spec_id": spec_key, "fits": []}


def record_model(store: ArtifactStore, spec_key: str, dataset_key: str, model_key: str,
                 warm_start: str | None, spec_name: str | None = None) -> None:
    """Remember that ``spec_key`` fitted on ``dataset_key`` gave ``model_key`` (latest last).

    Read, changed and written under the record's lock (no fit is lost to a concurrent run).
    """
    def add(record: dict[str, Any] | None) -> dict[str, Any]:
        record = record or {"spec_id": spec_key, "fits": []}
        fits = [f for f in record["fits"] if f["dataset"] != dataset_key or f["model"] != model_key]
        fits.append({"dataset": dataset_key, "model": model_key, "warm_start": warm_start, "time": _now()})
        record.update({"fits": fits, "name": spec_name})
        return record

    store.update_json(f"index/models/{spec_key}.json", add)


def latest_model(store: ArtifactStore, spec_key: str) -> dict[str, Any] | None:
    fits = model_record(store, spec_key)["fits"]
    return fits[-1] if fits else None


def warm_start_for(store: ArtifactStore, spec_key: str, dataset_key: str) -> str | None:
    """The model a warm-started retraining on ``dataset_key`` starts from.

    If this dataset was fitted before, the same start as then (so rerunning changes nothing);
    otherwise the latest model fitted on another dataset version; None if there is none.
    """
    fits = model_record(store, spec_key)["fits"]
    for fit in reversed(fits):
        if fit["dataset"] == dataset_key:
            return fit.get("warm_start")
    others = [f for f in fits if f["dataset"] != dataset_key]
    return others[-1]["model"] if others else None


def record_run(store: ArtifactStore, flow: str, result: dict[str, Any]) -> str:
    stamp = _dt.datetime.now(_dt.timezone.utc).strftime("%Y%m%dT%H%M%S")
    path = f"runs/{stamp}-{flow}-{uuid.uuid4().hex[:6]}.json"
    store.write_json(path, result)
    return path
