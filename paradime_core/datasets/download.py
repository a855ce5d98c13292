"""Checked, atomic downloads with a progress bar.

A file is streamed into a temporary file beside its destination (hashing while it is
written), checked against its pinned sha256 (of the bytes, or of the gunzipped bytes), and
only then renamed onto the destination with ``os.replace`` (atomic on one file system). A
failed or mismatching download never leaves a file that a later run would trust.
"""

from __future__ import annotations

import gzip
import hashlib
import os
import tempfile
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

from tqdm.auto import tqdm

from paradime_core.datasets.registry import RemoteFile
from paradime_core.errors import DataError

CHUNK_BYTES = 1 << 20
TIMEOUT_S = 60
USER_AGENT = "paradime-data/0.1 (python urllib)"


class DownloadError(DataError):
    """No mirror of a file could be reached (each mirror's reason is in the message)."""


class ChecksumError(DataError):
    """A downloaded (or cached) file's sha256 differs from the pinned value."""


def sha256_file(path: str | Path, *, gunzip: bool = False) -> str:
    """Hex sha256 of a file's bytes, or of its decompressed bytes when ``gunzip``."""
    digest = hashlib.sha256()
    opener = gzip.open if gunzip else open
    with opener(path, "rb") as f:
        while chunk := f.read(CHUNK_BYTES):
            digest.update(chunk)
    return digest.hexdigest()


def publish(tmp: str | Path, dest: str | Path) -> None:
    """Give ``tmp`` the usual permissions (``0o666`` less the umask) and rename it onto ``dest``."""
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o666 & ~umask)
    os.replace(tmp, dest)


def _open_url(url: str):
    """Open ``url`` for streaming (``http(s)://`` or ``file://``); a response-like object."""
    request = urllib.request.Request(url, headers={"User-Agent": USER_AGENT})
    return urllib.request.urlopen(request, timeout=TIMEOUT_S)


def _iter_chunks(response) -> Iterator[bytes]:
    while chunk := response.read(CHUNK_BYTES):
        yield chunk


def check_file(path: Path, remote: RemoteFile, url: str | None = None) -> None:
    """Raise ``ChecksumError`` unless ``path`` matches ``remote``'s pinned hashes."""
    checks = []
    if remote.sha256 is not None:
        checks.append(("sha256", remote.sha256, sha256_file(path)))
    if remote.gunzip_sha256 is not None:
        try:
            actual = sha256_file(path, gunzip=True)
        except (OSError, EOFError) as exc:  # not gzip, or truncated
            actual = f"<cannot gunzip: {exc}>"
        checks.append(("sha256 of the gunzipped content", remote.gunzip_sha256, actual))
    for kind, expected, actual in checks:
        if actual != expected:
            origin = f" downloaded from {url}" if url else ""
            raise ChecksumError(
                f"{remote.filename}{origin}: {kind} mismatch: expected {expected}, got {actual}"
            )


def download_file(remote: RemoteFile, folder: str | Path, *, progress: bool = True) -> Path:
    """Fetch ``remote`` into ``folder`` (or reuse a copy there that passes the check).

    Mirrors are tried in order; unreachable ones are skipped. A checksum mismatch deletes
    the partial file and raises ``ChecksumError`` at once (a wrong file is never retried
    silently from another mirror). Raises ``DownloadError`` when no mirror answered.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    dest = folder / remote.filename
    if dest.exists() and remote.pinned:
        try:
            check_file(dest, remote)
            return dest
        except ChecksumError:
            dest.unlink()  # a stale or corrupt cached copy: fetch it again
    elif dest.exists():
        return dest  # unpinned: the parsed arrays are checked instead

    failures = []
    for url in remote.urls:
        fd, tmp_name = tempfile.mkstemp(dir=folder, prefix=f".{remote.filename}.", suffix=".part")
        tmp = Path(tmp_name)
        try:
            with os.fdopen(fd, "wb") as out, _open_url(url) as response:
                total = response.headers.get("Content-Length")
                with tqdm(
                    total=int(total) if total else None,
                    unit="B",
                    unit_scale=True,
                    unit_divisor=1024,
                    desc=remote.filename,
                    disable=not progress,
                    leave=False,
                ) as bar:
                    for chunk in _iter_chunks(response):
                        out.write(chunk)
                        bar.update(len(chunk))
            check_file(tmp, remote, url)
            publish(tmp, dest)
            return dest
        except ChecksumError:
            tmp.unlink(missing_ok=True)
            raise
        except (urllib.error.URLError, OSError, ValueError) as exc:
            tmp.unlink(missing_ok=True)
            failures.append(f"{url}: {exc}")
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
    raise DownloadError(f"could not download {remote.filename}; tried:\n  " + "\n  ".join(failures))
