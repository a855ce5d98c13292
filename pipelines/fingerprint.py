"""Content fingerprints of arrays, computed chunk by chunk, and cheap file signatures.

Array fingerprint (independent of file format and of how rows are chunked): rows are cut
into fixed blocks of ``B = 65536`` rows; with ``h`` = BLAKE2b (16-byte digests)::

    fp(A) = h( dtype | shape | h(A[0:B]) | h(A[B:2B]) | ... )

where each block is hashed over its little-endian C-order bytes. The rows may arrive in
any pieces (a CSV reader's chunks, a Zarr array's chunks): :class:`ArrayHasher` cuts them
at block boundaries, so the whole array is never in memory. A dataset's fingerprint hashes
the sorted ``key -> fp`` pairs.

A warm run must not re-hash data. :class:`SourceIndex` keeps, in the store, a small record
per input path: the file's *signature* (size and modification time; for a folder such as a
Zarr array, those of every file in it) and the fingerprints found last time. When the
signature still matches, the recorded fingerprints are used as they are.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np

BLOCK_ROWS = 65536
DIGEST_SIZE = 16


def _h(data: bytes = b"") -> Any:
    return hashlib.blake2b(data, digest_size=DIGEST_SIZE)


def canonical_dtype(dtype: np.dtype) -> np.dtype:
    """The little-endian form of ``dtype`` (how bytes are hashed and stored)."""
    dtype = np.dtype(dtype)
    return dtype.newbyteorder("<") if dtype.byteorder == ">" else dtype


class ArrayHasher:
    """Streaming fingerprint of an array fed as consecutive row pieces (see module doc)."""

    def __init__(self, dtype: np.dtype, row_shape: tuple[int, ...], block_rows: int = BLOCK_ROWS):
        self.dtype = canonical_dtype(dtype)
        if self.dtype.kind in "OUSV":
            raise TypeError(f"cannot fingerprint dtype {self.dtype} (numbers and booleans only)")
        self.row_shape = tuple(int(s) for s in row_shape)
        self.block_rows = int(block_rows)
        self.n_rows = 0
        self._block_digests: list[bytes] = []
        self._current = _h()
        self._in_block = 0

    def update(self, rows: np.ndarray) -> None:
        """Append the next rows (shape ``(m, *row_shape)``)."""
        rows = np.asarray(rows)
        if tuple(rows.shape[1:]) != self.row_shape:
            raise ValueError(f"rows of shape {rows.shape[1:]} fed to a hasher of rows {self.row_shape}")
        rows = np.ascontiguousarray(rows, dtype=self.dtype)
        start = 0
        while start < rows.shape[0]:
            take = min(self.block_rows - self._in_block, rows.shape[0] - start)
            self._current.update(memoryview(rows[start:start + take]).cast("B"))
            self._in_block += take
            start += take
            if self._in_block == self.block_rows:
                self._close_block()
        self.n_rows += rows.shape[0]

    def _close_block(self) -> None:
        self._block_digests.append(self._current.digest())
        self._current = _h()
        self._in_block = 0

    def hexdigest(self) -> str:
        """The fingerprint of everything fed so far."""
        digests = list(self._block_digests)
        if self._in_block:
            digests.append(self._current.copy().digest())
        return combine_block_digests(self.dtype, (self.n_rows, *self.row_shape), digests)


def block_digest(rows: np.ndarray) -> bytes:
    """The digest of one whole block of rows (``BLOCK_ROWS`` rows, or the last rows)."""
    rows = np.ascontiguousarray(rows, dtype=canonical_dtype(rows.dtype))
    return _h(memoryview(rows).cast("B")).digest()


def combine_block_digests(dtype: np.dtype, shape: tuple[int, ...], digests: Iterable[bytes]) -> str:
    """``fp(A)`` from the digests of its consecutive blocks (see the module docstring)."""
    header = json.dumps({"dtype": canonical_dtype(dtype).str, "shape": [int(s) for s in shape]})
    final = _h(header.encode())
    for d in digests:
        final.update(d)
    return final.hexdigest()


def array_fingerprint(array: Any, block_rows: int = BLOCK_ROWS) -> str:
    """Fingerprint of a numpy/memmap/Zarr array, reading ``block_rows`` rows at a time."""
    shape = tuple(array.shape)
    if len(shape) == 0:
        raise ValueError("cannot fingerprint a 0-d array")
    hasher = ArrayHasher(array.dtype, shape[1:], block_rows)
    for start in range(0, shape[0], block_rows):
        hasher.update(np.asarray(array[start:start + block_rows]))
    return hasher.hexdigest()


def combine(fingerprints: Mapping[str, str]) -> str:
    """One fingerprint for named parts (sorted by name)."""
    return _h(json.dumps(dict(sorted(fingerprints.items()))).encode()).hexdigest()


def text_fingerprint(*parts: Any) -> str:
    """Fingerprint of JSON-serialisable values (stage specs, options)."""
    return _h(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()


# --------------------------------------------------------------------------- file signatures
def file_signature(fs: Any, path: str) -> str:
    """``size:mtime`` of a file, or a digest of (relative path, size, mtime) of every file
    under a folder (a Zarr array or a folder of data files)."""
    info = fs.info(path)
    if info.get("type") == "directory":
        entries: Iterable[tuple[str, Any]] = sorted(fs.find(path, detail=True).items())
        prefix = fs._strip_protocol(path).rstrip("/") + "/"
        parts = [(p[len(prefix):] if p.startswith(prefix) else p, i.get("size"), _mtime(i))
                 for p, i in entries]
        return "dir:" + _h(json.dumps(parts, default=str).encode()).hexdigest()
    return f"file:{info.get('size')}:{_mtime(info)}"


def _mtime(info: Mapping[str, Any]) -> Any:
    for name in ("mtime", "LastModified", "last_modified", "updated", "created"):
        if info.get(name) is not None:
            return info[name]
    return None


class SourceIndex:
    """Fingerprints of input paths, remembered by signature (``<store>/index/sources/``)."""

    def __init__(self, store: Any):
        self.store = store

    @staticmethod
    def _record_path(url: str, options: Mapping[str, Any]) -> str:
        return "index/sources/" + text_fingerprint(url, dict(options)) + ".json"

    def lookup(self, url: str, signature: str, options: Mapping[str, Any] | None = None) -> dict[str, Any] | None:
        """The record for ``url`` read with ``options`` if its signature still matches."""
        record = self.store.read_json(self._record_path(url, options or {}))
        if not record or record.get("signature") != signature or record.get("url") != url:
            return None
        return record

    def remember(self, url: str, signature: str, record: Mapping[str, Any],
                 options: Mapping[str, Any] | None = None) -> None:
        self.store.write_json(self._record_path(url, options or {}),
                              {"url": url, "signature": signature, "options": dict(options or {}), **record})


def local_url(path: str | os.PathLike[str]) -> str:
    """An absolute path for local inputs, the URL unchanged otherwise."""
    path = str(path)
    return path if "://" in path else os.path.abspath(os.path.expanduser(path))
