"""Checksums of stage files: recorded while a stage is written, checked before it is read.

Every file of a stage has a BLAKE2b-128 digest in the stage's manifest, whatever its size.

Writing. Stage groups are written through :class:`~pipelines.hashing_store.HashingStore`, a Zarr store wrapper that
digests each file's bytes as they are handed to the disk and records the digest in a
table of this process, keyed by the file's path. At publication the manifest takes each
recorded digest whose size matches the file on disk; a file without a record (written by
a Dask worker in another process, or by a direct write) is hashed there, once.

The seal. The group's own ``zarr.json`` holds the manifest, so it cannot carry a checksum
of itself in the manifest. Instead ``manifest["seal"]`` is the digest of the canonical JSON
of the manifest (without the seal) together with the group's other attributes: a changed
byte in the manifest or in an attribute (a phase's loss history, a dataset's fingerprints)
breaks the seal (any byte flip that still parses as JSON).

Reading. :func:`verify_files` hashes files against the manifest. A file that passed keeps
its (size, modification time) in :data:`_VERIFIED`, so each file is hashed at most once per
process while it is unchanged; any later write changes its modification time and makes
it checked again. A file modified within the last :data:`SETTLE_SECONDS` is not remembered
(a write in the same clock tick could keep its time), so it is hashed on each check.
"""

from __future__ import annotations

import hashlib
import json
import threading
import time
from collections.abc import Mapping
from typing import Any

from pipelines.errors import CorruptArtifact

DIGEST_SIZE = 16
READ_BLOCK = 1 << 22
SETTLE_SECONDS = 2.0
SEAL_KEY = "seal"

_WRITTEN: dict[str, tuple[str, int]] = {}
_WRITTEN_LOCK = threading.Lock()
_VERIFIED: dict[str, tuple[int, Any]] = {}


def digest(data: Any) -> str:
    """BLAKE2b-128 hex digest of ``data`` (bytes or any contiguous buffer)."""
    return hashlib.blake2b(data, digest_size=DIGEST_SIZE).hexdigest()


def file_digest(fs: Any, path: str) -> str:
    """Digest of a file, read in blocks of 4 MiB."""
    h = hashlib.blake2b(digest_size=DIGEST_SIZE)
    with fs.open(path, "rb") as handle:
        while block := handle.read(READ_BLOCK):
            h.update(block)
    return h.hexdigest()


def canonical(value: Any) -> bytes:
    """Canonical JSON bytes of ``value`` (sorted keys, no spaces) for digests of records."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), default=str).encode()


def seal(manifest: Mapping[str, Any], group_meta: Mapping[str, Any]) -> str:
    """Digest of a manifest (its seal left out) and the rest of the group's ``zarr.json``."""
    body = {k: v for k, v in manifest.items() if k != SEAL_KEY}
    return digest(canonical({"manifest": body, "group": dict(group_meta)}))


# --------------------------------------------------------------------------- writing
def record(path: str, data: Any) -> None:
    """Remember the digest and size of ``data``, just written to the file ``path``."""
    with _WRITTEN_LOCK:
        _WRITTEN[path] = (digest(data), len(data))


def forget(prefix: str) -> None:
    """Drop what :func:`record` remembered for ``prefix`` and every file under it."""
    with _WRITTEN_LOCK:
        for path in [p for p in _WRITTEN if p == prefix or p.startswith(prefix + "/")]:
            del _WRITTEN[path]


def take_recorded(base: str) -> dict[str, tuple[str, int]]:
    """Remove and return the digests recorded under folder ``base`` (relative path -> (digest, size))."""
    prefix = base.rstrip("/") + "/"
    with _WRITTEN_LOCK:
        found = {p: v for p, v in _WRITTEN.items() if p.startswith(prefix)}
        for path in found:
            del _WRITTEN[path]
    return {p[len(prefix):]: v for p, v in found.items()}


def checksums(fs: Any, base: str, files: Mapping[str, int]) -> dict[str, str]:
    """The digest of every file under ``base`` (relative path -> digest).

    Digests recorded while writing are used where the recorded size matches; the
    remaining files are hashed.
    """
    recorded = take_recorded(base)
    out = {}
    for rel, size in files.items():
        known = recorded.get(rel)
        out[rel] = known[0] if known is not None and known[1] == size else file_digest(fs, f"{base}/{rel}")
    return out


# --------------------------------------------------------------------------- reading
def verify_files(fs: Any, base: str, label: str, manifest: Mapping[str, Any],
                 listing: Mapping[str, tuple[int, Any]]) -> None:
    """Check every file of a stage against its manifest (sizes, then digests).

    Parameters
    ----------
    fs : fsspec.AbstractFileSystem
        The store's file system.
    base : str
        The stage folder.
    label : str
        ``kind/key`` used in error messages.
    manifest : Mapping
        The stage manifest (``files``: sizes, ``checksums``: digests).
    listing : Mapping
        Relative path -> (size, modification time) of the files found under ``base``.

    Raises
    ------
    CorruptArtifact
        Naming the first file that is missing, has another size, or another digest.
    """
    check_sizes(label, manifest, listing)
    for rel, expected in manifest.get("checksums", {}).items():
        path = f"{base}/{rel}"
        stamp = listing[rel]
        if _VERIFIED.get(path) == stamp:
            continue
        if file_digest(fs, path) != expected:
            _VERIFIED.pop(path, None)
            raise CorruptArtifact(f"{label}: file {rel} does not match its checksum")
        if _settled(stamp[1]):
            _VERIFIED[path] = stamp


def _settled(modified: Any) -> bool:
    """Whether a file's modification time is old enough to identify its content.

    A write within the same tick of the file system's clock can leave the time unchanged,
    so a file modified less than :data:`SETTLE_SECONDS` ago (or without a time) is hashed on
    every check.
    """
    if hasattr(modified, "timestamp"):
        modified = modified.timestamp()
    try:
        return float(modified) < time.time() - SETTLE_SECONDS
    except (TypeError, ValueError):
        return False


def check_sizes(label: str, manifest: Mapping[str, Any], listing: Mapping[str, tuple[int, Any]]) -> None:
    """Every file the manifest lists is present with its size (no file is read)."""
    for rel, size in manifest["files"].items():
        found = listing.get(rel)
        if found is None:
            raise CorruptArtifact(f"{label}: file {rel} is missing")
        if found[0] != size:
            raise CorruptArtifact(f"{label}: file {rel} has {found[0]} bytes, expected {size}")


def check_seal(label: str, manifest: Mapping[str, Any], group_meta: Mapping[str, Any]) -> None:
    """The manifest and the rest of the group's ``zarr.json`` are as published (stages
    written without a seal pass)."""
    expected = manifest.get(SEAL_KEY)
    if expected is not None and seal(manifest, group_meta) != expected:
        raise CorruptArtifact(f"{label}: zarr.json (manifest or attributes) was changed")


def sealed_record(value: Any) -> Any:
    """A JSON record with its digest under ``_digest`` (dicts only; other values unchanged)."""
    if not isinstance(value, dict):
        return value
    body = {k: v for k, v in value.items() if k != "_digest"}
    return {**body, "_digest": digest(canonical(body))}


def open_record(value: Any, where: str) -> Any:
    """The record without its digest; raises :class:`CorruptArtifact` if it does not match."""
    if not isinstance(value, dict) or "_digest" not in value:
        return value
    body = {k: v for k, v in value.items() if k != "_digest"}
    if digest(canonical(body)) != value["_digest"]:
        raise CorruptArtifact(f"{where} does not match its checksum")
    return body
