"""Locks in the artifact store: index records and the stages being written.

- Index records (``index/...`` JSON read, changed and written back by several processes)
  are updated under an exclusive file lock beside the record (``<record>.lock``, kept in
  place: deleting a lock file while another process waits on it would break the
  exclusion).
- A stage being written in ``.tmp/<name>/`` is leased by its writer: an exclusive lock on
  ``.tmp/<name>.lock`` held until the stage is published or dropped. The operating system
  releases it when the writer dies (even by SIGKILL), so ``paradime cache gc`` can tell a
  live writer (lock held) from a crashed one (lock free).

Both use ``filelock`` (``flock`` on POSIX) and need a local store. Object stores have no
locks: there an index update is a read and one put (concurrent writers may lose an
update), and a stage's writer leaves ``.tmp/<name>.writer.json`` (process, host, start
time); ``gc`` leaves alone temporary stages younger than :data:`REMOTE_WRITER_MAX_AGE`.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import json
import os
import socket
from collections.abc import Iterator
from typing import Any

from filelock import FileLock, Timeout

from pipelines.errors import PipelineError

INDEX_LOCK_TIMEOUT = 120.0
REMOTE_WRITER_MAX_AGE = _dt.timedelta(days=1)
LOCK_SUFFIX = ".lock"
WRITER_SUFFIX = ".writer.json"


@contextlib.contextmanager
def index_lock(store: Any, relpath: str) -> Iterator[None]:
    """Exclusive access to the index record ``relpath`` (local stores; a no-op elsewhere)."""
    if not store.is_local:
        yield
        return
    path = store.path(relpath) + LOCK_SUFFIX
    os.makedirs(os.path.dirname(path), exist_ok=True)
    try:
        with FileLock(path, timeout=INDEX_LOCK_TIMEOUT):
            yield
    except Timeout:
        raise PipelineError(f"{path}: still locked after {INDEX_LOCK_TIMEOUT:.0f} s by another "
                            "paradime process") from None


class WriterLease:
    """The mark of a live writer on a temporary stage folder (see the module docstring)."""

    def __init__(self, store: Any, tmp_path: str):
        self.store = store
        self.tmp_path = tmp_path.rstrip("/")
        self._lock: FileLock | None = None

    def acquire(self) -> WriterLease:
        if self.store.is_local:
            os.makedirs(os.path.dirname(self.tmp_path), exist_ok=True)
            self._lock = FileLock(self.tmp_path + LOCK_SUFFIX, timeout=0)
            self._lock.acquire()
        else:
            record = {"pid": os.getpid(), "host": socket.gethostname(),
                      "started": _dt.datetime.now(_dt.timezone.utc).isoformat()}
            self.store.fs.pipe_file(self.tmp_path + WRITER_SUFFIX, json.dumps(record).encode())
        return self

    def release(self) -> None:
        if self._lock is not None:
            self._lock.release()
            with contextlib.suppress(OSError):
                os.unlink(self.tmp_path + LOCK_SUFFIX)
            self._lock = None
        elif not self.store.is_local:
            with contextlib.suppress(FileNotFoundError, OSError):
                self.store.fs.rm(self.tmp_path + WRITER_SUFFIX)


def writer_alive(store: Any, tmp_path: str) -> bool:
    """Whether a live process is writing the temporary stage folder ``tmp_path``."""
    tmp_path = tmp_path.rstrip("/")
    if store.is_local:
        lock_path = tmp_path + LOCK_SUFFIX
        if not os.path.exists(lock_path):
            return False
        lock = FileLock(lock_path, timeout=0)
        try:
            lock.acquire()
        except Timeout:
            return True
        lock.release()
        return False
    try:
        record = json.loads(store.fs.cat_file(tmp_path + WRITER_SUFFIX))
        started = _dt.datetime.fromisoformat(record["started"])
    except (FileNotFoundError, OSError, ValueError, KeyError, TypeError):
        return False
    return _dt.datetime.now(_dt.timezone.utc) - started < REMOTE_WRITER_MAX_AGE
