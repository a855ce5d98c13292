"""The artifact store: one Zarr v3 group per stage under a root URL, published atomically.

Layout (browse it with ``zarr``/``xarray``; every group's attributes say what it holds)::

    <root>/datasets/<key>/      ingested arrays, ``sample`` dimension chunked by rows
    <root>/knn/<key>/           kNN ``indices``/``distances`` (n, k)
    <root>/relations/<key>/     a global relation after its transforms
    <root>/derived/<key>/       one derived-data array
    <root>/phases/<key>/        model weights, optimizer state, loss history of a phase
    <root>/embeddings/<key>/    an (n, d) embedding with provenance attributes
    <root>/reports/<key>/       metrics and the embedding plot
    <root>/index/...            small JSON records: file fingerprints, catalog of models
    <root>/runs/...             one JSON report per flow run
    <root>/.tmp/                stages being written

Publication. A stage is written into ``.tmp/<uuid>`` and then moved to ``<kind>/<key>``.
The *manifest* (``attributes.paradime`` of the group's ``zarr.json``: every file's size,
a BLAKE2b checksum of each small file, the stage's inputs and summary) marks a stage as
complete. On a local disk the manifest is written before the move, which is one atomic
``rename``; on object stores (where a move is a copy) it is written after the copy. A
crash therefore leaves either nothing or a group without manifest, which is never trusted
(it is removed and recomputed). :meth:`ArtifactStore.verify` re-checks sizes and small-file
checksums, so a missing, truncated or overwritten file is detected without hashing arrays.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import hashlib
import json
import os
import shutil
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import fsspec

from pipelines.errors import CorruptArtifact, PipelineError
from pipelines.settings import store_url

STAGE_KINDS = ("datasets", "knn", "relations", "derived", "phases", "embeddings", "reports")
MANIFEST_ATTR = "paradime"
CHECKSUM_LIMIT = 1 << 20  # files up to 1 MiB carry a checksum in the manifest
TMP_DIR = ".tmp"


def _now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")


def _digest(data: bytes) -> str:
    return hashlib.blake2b(data, digest_size=16).hexdigest()


@dataclass
class StageRef:
    """A small, picklable reference to a published stage (what tasks pass around)."""

    store: str
    kind: str
    key: str
    name: str = ""
    summary: dict[str, Any] = field(default_factory=dict)

    @property
    def path(self) -> str:
        return f"{self.kind}/{self.key}"


@dataclass
class StageInfo:
    """One entry of :meth:`ArtifactStore.list`."""

    kind: str
    key: str
    complete: bool
    size: int
    name: str = ""
    created: str = ""
    summary: dict[str, Any] = field(default_factory=dict)


class ArtifactStore:
    """Stages and small records under one root URL (a local folder or any fsspec URL)."""

    def __init__(self, url: str | os.PathLike[str] | None = None, **storage_options: Any):
        self.url = store_url(url)
        self.storage_options = storage_options
        self.fs, self.root = fsspec.core.url_to_fs(self.url, **storage_options)
        self.root = self.root.rstrip("/")
        self.is_local = "file" in _protocols(self.fs)

    def __repr__(self) -> str:
        return f"ArtifactStore({self.url!r})"

    # ------------------------------------------------------------------ paths
    def path(self, *parts: str) -> str:
        return "/".join([self.root, *[p.strip("/") for p in parts if p]])

    def stage_path(self, kind: str, key: str) -> str:
        if kind not in STAGE_KINDS:
            raise ValueError(f"unknown stage kind {kind!r} (one of {', '.join(STAGE_KINDS)})")
        return self.path(kind, key)

    def zarr_location(self, path: str) -> Any:
        """What ``zarr.open_group``/``zarr.open_array`` accept for ``path`` in this store."""
        if self.is_local:
            return path
        import zarr

        return zarr.storage.FsspecStore.from_url(self.fs.unstrip_protocol(path),
                                                 storage_options=self.storage_options or None)

    def open_group(self, kind: str, key: str, mode: str = "r") -> Any:
        """The published stage's Zarr group."""
        import zarr

        return zarr.open_group(self.zarr_location(self.stage_path(kind, key)), mode=mode, zarr_format=3)

    # ------------------------------------------------------------------ small JSON records
    def read_json(self, relpath: str) -> Any | None:
        """A JSON record under the root (None if absent or unreadable)."""
        try:
            with self.fs.open(self.path(relpath), "rb") as handle:
                return json.loads(handle.read())
        except (FileNotFoundError, json.JSONDecodeError, UnicodeDecodeError, OSError):
            return None

    def write_json(self, relpath: str, value: Any) -> None:
        """Write a JSON record atomically (rename on local disks, one put elsewhere)."""
        self._write_bytes(self.path(relpath), json.dumps(value, indent=1, default=str).encode())

    def _write_bytes(self, path: str, data: bytes) -> None:
        if self.is_local:
            os.makedirs(os.path.dirname(path), exist_ok=True)
            tmp = f"{path}.{uuid.uuid4().hex[:8]}.tmp"
            with open(tmp, "wb") as handle:
                handle.write(data)
            os.replace(tmp, path)
        else:
            self.fs.makedirs(self.fs._parent(path), exist_ok=True)
            self.fs.pipe_file(path, data)

    def remove_json(self, relpath: str) -> None:
        with contextlib.suppress(FileNotFoundError):
            self.fs.rm(self.path(relpath))

    # ------------------------------------------------------------------ stage state
    def manifest(self, kind: str, key: str) -> dict[str, Any] | None:
        """The stage's manifest if it is published and complete, else None (cheap: one small read)."""
        try:
            with self.fs.open(self.stage_path(kind, key) + "/zarr.json", "rb") as handle:
                meta = json.loads(handle.read())
        except (FileNotFoundError, json.JSONDecodeError, UnicodeDecodeError, OSError):
            return None
        manifest = (meta.get("attributes") or {}).get(MANIFEST_ATTR)
        return manifest if isinstance(manifest, dict) and "files" in manifest else None

    def exists(self, kind: str, key: str) -> bool:
        """Whether anything (complete or not) lies at the stage's path."""
        return self.fs.exists(self.stage_path(kind, key))

    def verify(self, kind: str, key: str) -> dict[str, Any]:
        """The manifest after checking every listed file's size and each small file's checksum.

        Raises :class:`CorruptArtifact` naming the first problem.
        """
        base = self.stage_path(kind, key)
        manifest = self.manifest(kind, key)
        if manifest is None:
            raise CorruptArtifact(f"{kind}/{key}: no manifest (missing or incomplete stage)")
        listing = self._listing(base)
        for rel, size in manifest["files"].items():
            actual = listing.get(rel)
            if actual is None:
                raise CorruptArtifact(f"{kind}/{key}: file {rel} is missing")
            if actual != size:
                raise CorruptArtifact(f"{kind}/{key}: file {rel} has {actual} bytes, expected {size}")
        for rel, digest in manifest.get("checksums", {}).items():
            if _digest(self.fs.cat_file(f"{base}/{rel}")) != digest:
                raise CorruptArtifact(f"{kind}/{key}: file {rel} does not match its checksum")
        return manifest

    def _listing(self, base: str) -> dict[str, int]:
        """Relative path -> size of every file under ``base`` (the root zarr.json excluded)."""
        found = self.fs.find(base, detail=True)
        out = {}
        prefix = base.rstrip("/") + "/"
        for path, info in found.items():
            path = self.fs._strip_protocol(path)
            rel = path[len(prefix):] if path.startswith(prefix) else path
            if rel == "zarr.json" or rel.endswith(".tmp"):
                continue
            out[rel] = int(info.get("size") or 0)
        return out

    def remove(self, kind: str, key: str) -> bool:
        """Delete a stage (complete or not); True if something was removed."""
        base = self.stage_path(kind, key)
        if not self.fs.exists(base):
            return False
        if self.is_local:
            shutil.rmtree(base, ignore_errors=True)
        else:
            self.fs.rm(base, recursive=True)
        return True

    # ------------------------------------------------------------------ writing
    @contextlib.contextmanager
    def begin(self, kind: str, key: str, name: str = "", meta: Mapping[str, Any] | None = None,
              ) -> Iterator[StageWriter]:
        """Write a stage into a temporary group; publish it atomically when the block ends.

        An exception inside the block removes the temporary group and publishes nothing.
        """
        self.stage_path(kind, key)  # validates the kind
        tmp = self.path(TMP_DIR, f"{kind}-{key[:12]}-{uuid.uuid4().hex[:8]}")
        writer = StageWriter(self, kind, key, tmp, name, dict(meta or {}))
        try:
            writer.group  # noqa: B018 - visible under .tmp/ while the stage is computed
            yield writer
            if not writer.discarded:
                writer.publish()
        finally:
            if self.fs.exists(tmp):
                self._rmtree(tmp)

    def _rmtree(self, path: str) -> None:
        if self.is_local:
            shutil.rmtree(path, ignore_errors=True)
        else:
            with contextlib.suppress(FileNotFoundError):
                self.fs.rm(path, recursive=True)

    # ------------------------------------------------------------------ listing / gc
    def list(self, kind: str | None = None) -> list[StageInfo]:
        """Every stage (complete or not) of one kind or of all kinds."""
        infos = []
        for k in ([kind] if kind else STAGE_KINDS):
            base = self.path(k)
            if not self.fs.exists(base):
                continue
            for entry in self.fs.ls(base, detail=False):
                key = self.fs._strip_protocol(entry).rstrip("/").rsplit("/", 1)[-1]
                manifest = self.manifest(k, key)
                size = sum(manifest["files"].values()) if manifest else 0
                infos.append(StageInfo(
                    kind=k, key=key, complete=manifest is not None, size=size,
                    name=(manifest or {}).get("name", ""), created=(manifest or {}).get("created", ""),
                    summary=(manifest or {}).get("summary", {}),
                ))
        return infos

    def find(self, key_prefix: str, kind: str | None = None) -> list[StageInfo]:
        """Stages whose key starts with ``key_prefix`` (or ``kind/key`` prefixes)."""
        if "/" in key_prefix:
            kind, key_prefix = key_prefix.split("/", 1)
            if kind not in STAGE_KINDS:
                raise PipelineError(f"unknown stage kind '{kind}' (one of {', '.join(STAGE_KINDS)})")
        return [s for s in self.list(kind) if s.key.startswith(key_prefix)]

    def gc(self, older_than_days: float | None = None) -> list[str]:
        """Remove temporary leftovers and incomplete stages; with ``older_than_days`` also
        complete stages created longer ago. Returns the removed paths."""
        removed = []
        tmp = self.path(TMP_DIR)
        if self.fs.exists(tmp):
            for entry in self.fs.ls(tmp, detail=False):
                self._rmtree(self.fs._strip_protocol(entry))
                removed.append(f"{TMP_DIR}/{entry.rstrip('/').rsplit('/', 1)[-1]}")
        cutoff = None
        if older_than_days is not None:
            cutoff = _dt.datetime.now(_dt.timezone.utc) - _dt.timedelta(days=older_than_days)
        for info in self.list():
            stale = not info.complete
            if cutoff is not None and info.complete and info.created:
                stale = _dt.datetime.fromisoformat(info.created) < cutoff
            if stale and self.remove(info.kind, info.key):
                removed.append(f"{info.kind}/{info.key}")
        return removed


class StageWriter:
    """The temporary group a stage is written into (see :meth:`ArtifactStore.begin`)."""

    def __init__(self, store: ArtifactStore, kind: str, key: str, tmp_path: str, name: str,
                 meta: dict[str, Any]):
        self.store = store
        self.kind = kind
        self.key = key
        self.tmp_path = tmp_path
        self.name = name
        self.meta = meta
        self.summary: dict[str, Any] = {}
        self._group: Any = None
        self.discarded = False

    def discard(self) -> None:
        """Publish nothing when the block ends (the temporary group is removed)."""
        self.discarded = True

    @property
    def location(self) -> Any:
        """The temporary group's location for ``zarr.open_*`` (workers may write regions)."""
        return self.store.zarr_location(self.tmp_path)

    @property
    def group(self) -> Any:
        """The temporary Zarr v3 group (created on first use)."""
        if self._group is None:
            import zarr

            self._group = zarr.open_group(self.location, mode="w", zarr_format=3)
        return self._group

    def publish(self) -> None:
        store = self.store
        group = self.group  # an empty stage is still a group
        group.attrs.update({"stage": self.kind, "key": self.key, "name": self.name})
        files = store._listing(self.tmp_path)
        checksums = {rel: _digest(store.fs.cat_file(f"{self.tmp_path}/{rel}"))
                     for rel, size in files.items() if size <= CHECKSUM_LIMIT}
        manifest = {
            "kind": self.kind, "key": self.key, "name": self.name, "created": _now(),
            "files": files, "checksums": checksums, "summary": self.summary, **self.meta,
        }
        final = store.stage_path(self.kind, self.key)
        if store.manifest(self.kind, self.key) is not None:  # someone else published it meanwhile
            return
        if store.exists(self.kind, self.key):  # an incomplete leftover of a crashed run
            store.remove(self.kind, self.key)
        if store.is_local:
            _set_manifest(store, self.tmp_path, manifest)
            os.makedirs(os.path.dirname(final), exist_ok=True)
            try:
                os.rename(self.tmp_path, final)
            except OSError:
                if store.manifest(self.kind, self.key) is None:
                    raise
        else:
            store.fs.mv(self.tmp_path, final, recursive=True)
            _set_manifest(store, final, manifest)


def _set_manifest(store: ArtifactStore, group_path: str, manifest: dict[str, Any]) -> None:
    meta = json.loads(store.fs.cat_file(group_path + "/zarr.json"))
    meta.setdefault("attributes", {})[MANIFEST_ATTR] = manifest
    store._write_bytes(group_path + "/zarr.json", json.dumps(meta, indent=1, default=str).encode())


def _protocols(fs: Any) -> tuple[str, ...]:
    protocol = fs.protocol
    return tuple(protocol) if isinstance(protocol, (tuple, list)) else (protocol,)
