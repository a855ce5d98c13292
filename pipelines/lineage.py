"""Lineages: the numbered versions of one dataset as it changes, and where a retraining starts.

A dataset belongs to a *lineage*: by default its source (the absolute path or URL it was read
from), or a name given with ``--lineage NAME`` (so data arriving under a new path continues
the same lineage). Each distinct content seen in a lineage is a version, numbered from 1 in
the order it was first seen (``index/lineages/<hash>.json``).

A retraining warm-starts from the latest model of the same spec (same seed and embedding
size) fitted on an earlier version of the same lineage, and from nothing else: a model fitted
on another lineage, or one whose weights do not fit the new data (another width, or a model
whose size depends on the number of items), means a cold start, with the reason recorded.
Rerunning a retraining on a version fitted before makes the same choice as then, so a rerun
reads every stage from the store.
"""

from __future__ import annotations

import datetime as _dt
from dataclasses import asdict, dataclass
from typing import Any

from pipelines.fingerprint import text_fingerprint
from pipelines.store import ArtifactStore

NAMED_PREFIX = "lineage:"


def _now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")


def lineage_id(source_url: str, name: str | None = None) -> str:
    """The lineage of data read from ``source_url``: ``lineage:<name>`` if named, else the source."""
    if name is not None:
        name = name.strip()
        if not name:
            from pipelines.errors import PipelineError

            raise PipelineError("--lineage: the lineage name is empty")
        return NAMED_PREFIX + name
    return source_url


def _path(lineage: str) -> str:
    return f"index/lineages/{text_fingerprint(lineage)}.json"


def record_version(store: ArtifactStore, lineage: str, dataset_key: str, source_url: str) -> tuple[int, bool]:
    """Add ``dataset_key`` to ``lineage``'s versions; returns (version number, whether it is new).

    Read, changed and written under the record's lock (no version is lost to a concurrent run).
    """
    known = [v["key"] for v in versions(store, lineage)]
    if dataset_key in known:  # a version seen before takes no lock
        return known.index(dataset_key) + 1, False
    outcome: list[tuple[int, bool]] = []

    def add(record: dict[str, Any] | None) -> dict[str, Any]:
        record = record or {"lineage": lineage, "versions": []}
        keys = [v["key"] for v in record["versions"]]
        if dataset_key in keys:
            outcome.append((keys.index(dataset_key) + 1, False))
        else:
            record["versions"].append({"key": dataset_key, "source": source_url, "seen": _now()})
            outcome.append((len(record["versions"]), True))
        return record

    store.update_json(_path(lineage), add)
    return outcome[-1]


def versions(store: ArtifactStore, lineage: str) -> list[dict[str, Any]]:
    """The versions of ``lineage`` in order (each ``{"key", "source", "seen"}``)."""
    return list((store.read_json(_path(lineage)) or {}).get("versions", []))


@dataclass
class WarmStart:
    """Where a retraining starts: a stored model (``model``) or nothing (``reason`` says why)."""

    model: str | None
    version: int | None = None
    dataset: str | None = None
    reason: str = ""

    def describe(self) -> str:
        if self.model is None:
            return f"cold start ({self.reason})" if self.reason else "cold start"
        return f"warm start: {self.model}, version {self.version}"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def choose_warm_start(store: ArtifactStore, fits: list[dict[str, Any]], lineage: str, dataset_key: str,
                      fits_new_data: Any) -> WarmStart:
    """The start of a retraining of a spec (its recorded ``fits``) on ``dataset_key`` in ``lineage``.

    Parameters
    ----------
    store : ArtifactStore
        The store holding the lineage's versions.
    fits : list of dict
        The spec's recorded fits (``dataset``, ``model``, ``lineage``, ``start``: the choice of
        a warm-started retraining, None for a fit or a cold retraining), oldest first.
    lineage : str
        The lineage of the new data (see :func:`lineage_id`).
    dataset_key : str
        The new data's dataset key.
    fits_new_data : callable
        ``fits_new_data(model_key) -> str | None``: why the stored model's weights cannot start
        training on the new data, or None if they can.
    """
    for fit in reversed(fits):
        if fit["dataset"] == dataset_key and fit.get("lineage") == lineage and fit.get("start") is not None:
            previous = fit.get("start") or {}
            return WarmStart(previous.get("model"), previous.get("version"), previous.get("dataset"),
                             previous.get("reason", ""))
    numbers = {v["key"]: i + 1 for i, v in enumerate(versions(store, lineage))}
    earlier = [f for f in fits if f.get("lineage") == lineage and f["dataset"] != dataset_key
               and f["dataset"] in numbers]
    if not earlier:
        return WarmStart(None, reason="no earlier model of this spec on this lineage")
    latest = earlier[-1]
    if store.manifest("phases", latest["model"]) is None:
        return WarmStart(None, reason=f"model {latest['model'][:12]} is no longer stored")
    problem = fits_new_data(latest["model"])
    if problem:
        return WarmStart(None, reason=f"model {latest['model'][:12]} does not fit the new data: {problem}")
    return WarmStart(latest["model"], numbers[latest["dataset"]], latest["dataset"])


def weights_mismatch(store: ArtifactStore, model_key: str, spec: Any, seed: int, out_dim: int,
                     n_items: int, width: int) -> str | None:
    """Why model ``model_key``'s weights cannot be loaded into the spec's model for data of
    ``n_items`` rows of ``width`` features (None if every tensor's shape matches)."""
    import numpy as np

    from paradime_core.routine import Routine

    group = store.open_group("phases", model_key)
    stored = {name: tuple(group["weights"][name].shape) for name in group["weights"].attrs["order"]}
    shape_only = {"main": np.broadcast_to(np.zeros(1, dtype=np.float32), (n_items, width))}
    model = Routine(spec, seed=seed, out_dim=out_dim, verbose=False).build_model(shape_only, fit_front=False)
    wanted = {name: tuple(t.shape) for name, t in model.state_dict().items()}
    for name, shape in wanted.items():
        if name not in stored:
            return f"it has no weight '{name}'"
        if stored[name] != shape:
            return f"weight '{name}' has shape {stored[name]}, the new data needs {shape}"
    extra = sorted(set(stored) - set(wanted))
    return f"it has weights the new model lacks ({', '.join(extra[:3])})" if extra else None
