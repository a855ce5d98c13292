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

Publication. A stage is written into ``.tmp/<name>`` (leased by its writer, see
:mod:`pipelines.locks`) and then moved to ``<kind>/<key>``. The *manifest*
(``attributes.paradime`` of the group's ``zarr.json``: every file's size and BLAKE2b
checksum, the stage's inputs and summary, and a seal over the manifest and the group's
attributes, see :mod:`pipelines.integrity`) marks a stage as complete. On a local disk the
manifest is written before the move, which is one atomic ``rename``; on object stores
(where a move is a copy) it is written after the copy. A crash therefore leaves either
nothing or a group without manifest, which is never trusted.

Checking. :meth:`ArtifactStore.check` is cheap (one small read and a listing: seal and file
sizes) and is what a cached run does; :meth:`ArtifactStore.verify` also hashes every file
(each file once per process while it is unchanged) and is done before a stage's content
is read. Index records (``index/...``) carry their own digest; a damaged one is reported
with a :class:`~pipelines.errors.CacheWarning` and treated as absent.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import json
import os
import shutil
import uuid
import warnings
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import fsspec

from pipelines import integrity
from pipelines.errors import CacheWarning, CorruptArtifact, PipelineError
from pipelines.locks import LOCK_SUFFIX, WRITER_SUFFIX, WriterLease, index_lock, writer_alive
from pipelines.settings import store_url

STAGE_KINDS = ("datasets", "knn", "relations", "derived", "phases", "embeddings", "reports")
MANIFEST_ATTR = "paradime"
TMP_DIR = ".tmp"
INDEX_DIRS = ("index", "runs")


def _now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")


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
        """What ``zarr.open_group``/``zarr.open_array`` accept for ``path`` in this store.

        A path inside a stage being written gets a store that records the digest of every
        file written (:class:`~pipelines.hashing_store.HashingStore`).
        """
        writing = path.startswith(self.path(TMP_DIR) + "/")
        if self.is_local and not writing:
            return path
        import zarr

        if self.is_local:
            inner = zarr.storage.LocalStore(path)
        else:
            inner = zarr.storage.FsspecStore.from_url(self.fs.unstrip_protocol(path),
                                                      storage_options=self.storage_options or None)
        if not writing:
            return inner
        from pipelines.hashing_store import HashingStore

        return HashingStore(inner, path)

    def open_group(self, kind: str, key: str, mode: str = "r") -> Any:
        """The published stage's Zarr group."""
        import zarr

        return zarr.open_group(self.zarr_location(self.stage_path(kind, key)), mode=mode, zarr_format=3)

    # ------------------------------------------------------------------ small JSON records
    def read_json(self, relpath: str) -> Any | None:
        """A JSON record under the root (None if absent or unreadable; a record whose digest
        does not match is reported with a :class:`CacheWarning` and treated as absent)."""
        try:
            return self.check_json(relpath)
        except CorruptArtifact as exc:
            warnings.warn(CacheWarning(f"{exc}; ignoring it"), stacklevel=2)
            return None

    def check_json(self, relpath: str) -> Any | None:
        """A JSON record under the root (None if absent); raises :class:`CorruptArtifact` if damaged."""
        try:
            with self.fs.open(self.path(relpath), "rb") as handle:
                data = handle.read()
        except (FileNotFoundError, IsADirectoryError):
            return None
        try:
            value = json.loads(data)
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise CorruptArtifact(f"record {relpath} is not valid JSON ({exc})") from None
        return integrity.open_record(value, f"record {relpath}")

    def write_json(self, relpath: str, value: Any) -> None:
        """Write a JSON record with its digest, atomically (rename on local disks, one put elsewhere)."""
        record = integrity.sealed_record(value)
        self._write_bytes(self.path(relpath), json.dumps(record, indent=1, default=str).encode())

    def update_json(self, relpath: str, change: Callable[[Any | None], Any]) -> Any:
        """Read, change and write back a record under the record's lock; returns the new value.

        ``change`` receives the current value (None if absent or damaged) and returns the new
        one. With a local store no concurrent update is lost (see :mod:`pipelines.locks`).
        """
        with index_lock(self, relpath):
            value = change(self.read_json(relpath))
            self.write_json(relpath, value)
        return value

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

    def records(self) -> list[str]:
        """Relative paths of every JSON record (``index/...``, ``runs/...``)."""
        found = []
        for top in INDEX_DIRS:
            base = self.path(top)
            if not self.fs.exists(base):
                continue
            prefix = self.root + "/"
            for path in self.fs.find(base):
                path = self.fs._strip_protocol(path)
                if path.endswith(".json"):
                    found.append(path[len(prefix):] if path.startswith(prefix) else path)
        return sorted(found)

    # ------------------------------------------------------------------ stage state
    def _group_meta(self, kind: str, key: str) -> dict[str, Any] | None:
        """The stage's parsed ``zarr.json``; None if there is none; CorruptArtifact if unreadable."""
        try:
            with self.fs.open(self.stage_path(kind, key) + "/zarr.json", "rb") as handle:
                data = handle.read()
        except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
            return None
        try:
            meta = json.loads(data)
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise CorruptArtifact(f"{kind}/{key}: zarr.json is not valid JSON ({exc})") from None
        return meta if isinstance(meta, dict) else {}

    def manifest(self, kind: str, key: str) -> dict[str, Any] | None:
        """The stage's manifest if it is published and complete, else None (cheap: one small read)."""
        try:
            meta = self._group_meta(kind, key)
        except CorruptArtifact:
            return None
        manifest = ((meta or {}).get("attributes") or {}).get(MANIFEST_ATTR)
        return manifest if isinstance(manifest, dict) and "files" in manifest else None

    def exists(self, kind: str, key: str) -> bool:
        """Whether anything (complete or not) lies at the stage's path."""
        return self.fs.exists(self.stage_path(kind, key))

    def check(self, kind: str, key: str) -> dict[str, Any] | None:
        """The manifest of a published stage after the cheap checks (seal, file sizes; no file
        is read), or None if nothing lies at the stage's path.

        Raises :class:`CorruptArtifact` for a stage that is there but damaged or incomplete.
        """
        label = f"{kind}/{key}"
        meta = self._group_meta(kind, key)
        if meta is None:
            if not self.exists(kind, key):
                return None
            raise CorruptArtifact(f"{label}: zarr.json is missing (an incomplete or damaged stage)")
        manifest = _sealed_parts(label, meta, "an incomplete or damaged stage")
        integrity.check_sizes(label, manifest, self._listing(self.stage_path(kind, key)))
        return manifest

    def verify(self, kind: str, key: str) -> dict[str, Any]:
        """The manifest after checking the seal and every file's size and checksum.

        Each file is hashed once per process while unchanged. Raises :class:`CorruptArtifact`
        naming the first problem.
        """
        label = f"{kind}/{key}"
        meta = self._group_meta(kind, key)
        if meta is None:
            raise CorruptArtifact(f"{label}: no manifest (missing or incomplete stage)")
        manifest = _sealed_parts(label, meta, "missing or incomplete stage")
        base = self.stage_path(kind, key)
        integrity.verify_files(self.fs, base, label, manifest, self._listing(base))
        return manifest

    def _listing(self, base: str) -> dict[str, tuple[int, Any]]:
        """Relative path -> (size, modification time) of every file under ``base`` (the root
        zarr.json excluded)."""
        found = self.fs.find(base, detail=True)
        out = {}
        prefix = base.rstrip("/") + "/"
        for path, info in found.items():
            path = self.fs._strip_protocol(path)
            rel = path[len(prefix):] if path.startswith(prefix) else path
            if rel == "zarr.json" or rel.endswith(".tmp"):
                continue
            out[rel] = (int(info.get("size") or 0), _modified(info))
        return out

    def remove(self, kind: str, key: str) -> bool:
        """Delete a stage (complete or not); True if something was removed.

        On a local disk the stage is first renamed into ``.tmp/`` (one atomic step), so no
        reader sees half of it.
        """
        base = self.stage_path(kind, key)
        if not self.fs.exists(base):
            return False
        if self.is_local:
            trash = self.path(TMP_DIR, f"removed-{kind}-{key[:12]}-{uuid.uuid4().hex[:8]}")
            os.makedirs(os.path.dirname(trash), exist_ok=True)
            try:
                os.rename(base, trash)
            except FileNotFoundError:
                return False
            shutil.rmtree(trash, ignore_errors=True)
        else:
            self.fs.rm(base, recursive=True)
        return True

    # ------------------------------------------------------------------ writing
    @contextlib.contextmanager
    def begin(self, kind: str, key: str, name: str = "", meta: Mapping[str, Any] | None = None,
              replace: bool = False) -> Iterator[StageWriter]:
        """Write a stage into a temporary group; publish it atomically when the block ends.

        An exception inside the block removes the temporary group and publishes nothing.
        With ``replace`` a stage already published under the key (a damaged copy) is
        replaced; otherwise a valid one published meanwhile by another process is kept.
        """
        self.stage_path(kind, key)  # validates the kind
        tmp = self.path(TMP_DIR, f"{kind}-{key[:12]}-{uuid.uuid4().hex[:8]}")
        lease = WriterLease(self, tmp).acquire()
        writer = StageWriter(self, kind, key, tmp, name, dict(meta or {}))
        writer.replace = replace
        try:
            writer.group  # noqa: B018 - visible under .tmp/ while the stage is computed
            yield writer
            if not writer.discarded:
                writer.publish()
        finally:
            if self.fs.exists(tmp):
                self._rmtree(tmp)
            integrity.take_recorded(tmp)
            lease.release()

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

    def gc(self, older_than_days: float | None = None, dry_run: bool = False) -> list[str]:
        """Remove temporary leftovers of dead writers and incomplete stages; with
        ``older_than_days`` also complete stages created longer ago. A temporary stage whose
        writer is alive is left alone. Returns the removed (or, with ``dry_run``, the
        removable) paths."""
        removed = []
        tmp = self.path(TMP_DIR)
        if self.fs.exists(tmp):
            for entry in self.fs.ls(tmp, detail=False):
                path = self.fs._strip_protocol(entry).rstrip("/")
                name = path.rsplit("/", 1)[-1]
                mark = next((m for m in (LOCK_SUFFIX, WRITER_SUFFIX) if name.endswith(m)), None)
                folder = path[:-len(mark)] if mark else path
                if writer_alive(self, folder):
                    continue
                if mark is not None:  # a dead writer's mark goes (with its folder, if any)
                    if not dry_run:
                        with contextlib.suppress(FileNotFoundError, OSError):
                            self.fs.rm(path)
                    continue
                if not dry_run:
                    self._rmtree(path)
                removed.append(f"{TMP_DIR}/{name}")
        cutoff = None
        if older_than_days is not None:
            cutoff = _dt.datetime.now(_dt.timezone.utc) - _dt.timedelta(days=older_than_days)
        for info in self.list():
            stale = not info.complete
            if cutoff is not None and info.complete and info.created:
                stale = _dt.datetime.fromisoformat(info.created) < cutoff
            if stale and (dry_run or self.remove(info.kind, info.key)):
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
        self.replace = False

    def discard(self) -> None:
        """Publish nothing when the block ends (the temporary group is removed)."""
        self.discarded = True

    @property
    def location(self) -> Any:
        """The temporary group's location for ``zarr.open_*`` (workers may write regions)."""
        return self.store.zarr_location(self.tmp_path)

    def location_of(self, name: str) -> Any:
        """The location of member ``name`` of the temporary group."""
        return self.store.zarr_location(f"{self.tmp_path}/{name}")

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
        listing = store._listing(self.tmp_path)
        files = {rel: size for rel, (size, _) in listing.items()}
        manifest = {
            "kind": self.kind, "key": self.key, "name": self.name, "created": _now(),
            "files": files, "checksums": integrity.checksums(store.fs, self.tmp_path, files),
            "summary": self.summary, **self.meta,
        }
        if not self.replace and self._valid_copy_exists():  # someone else published it meanwhile
            return
        final = store.stage_path(self.kind, self.key)
        store.remove(self.kind, self.key)  # a damaged copy, or an incomplete leftover of a crashed run
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

    def _valid_copy_exists(self) -> bool:
        try:
            return self.store.check(self.kind, self.key) is not None
        except CorruptArtifact:
            return False


def _set_manifest(store: ArtifactStore, group_path: str, manifest: dict[str, Any]) -> None:
    meta = json.loads(store.fs.cat_file(group_path + "/zarr.json"))
    meta.setdefault("attributes", {}).pop(MANIFEST_ATTR, None)
    sealed = json.loads(json.dumps(manifest, default=str))
    sealed[integrity.SEAL_KEY] = integrity.seal(sealed, json.loads(json.dumps(meta, default=str)))
    meta["attributes"][MANIFEST_ATTR] = sealed
    store._write_bytes(group_path + "/zarr.json", json.dumps(meta, indent=1, default=str).encode())


def _modified(info: Mapping[str, Any]) -> Any:
    """A file's modification time from an fsspec listing (None if the file system has none)."""
    for name in ("mtime", "LastModified", "last_modified", "updated", "created"):
        if info.get(name) is not None:
            return info[name]
    return None


def _sealed_parts(label: str, meta: dict[str, Any], missing: str) -> dict[str, Any]:
    """The manifest of a stage's parsed ``zarr.json`` after checking its seal."""
    rest = dict(meta)
    attributes = dict(rest.get("attributes") or {})
    manifest = attributes.pop(MANIFEST_ATTR, None)
    rest["attributes"] = attributes
    if not isinstance(manifest, dict) or not isinstance(manifest.get("files"), dict):
        raise CorruptArtifact(f"{label}: no manifest ({missing})")
    integrity.check_seal(label, manifest, rest)
    return manifest


def _protocols(fs: Any) -> tuple[str, ...]:
    protocol = fs.protocol
    return tuple(protocol) if isinstance(protocol, (tuple, list)) else (protocol,)
