"""Outputs a command writes (``--out``): written whole or not at all, never over what the user owns.

Rules, checked before any work starts and again when the output is written:

- an output is a local path;
- an output that is an input, lies inside one or contains one (or the artifact store) is
  refused;
- an existing output is refused unless ``overwrite`` is given, and even then only an
  output that paradime wrote and that nobody changed since is replaced. paradime marks what
  it writes with a record beside it, ``.<name>.paradime-output.json``, listing every file it
  wrote (the file itself, or each file in the folder) with its size and modification time.
  An output without that record, or with a file the record does not list or whose size or
  modification time changed, is the user's. An existing empty folder holds nothing to lose
  and is used as it is;
- the output is written under a temporary name in the same folder
  (``.<name>.paradime-tmp-<id>``) and renamed into place when complete. A replaced file is
  swapped in one ``rename``; a replaced folder is first renamed aside and deleted only
  after the new one is in place.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import json
import os
import shutil
import uuid
from collections.abc import Iterable, Iterator
from typing import Any

from pipelines.errors import PipelineError

MARKER = ".paradime-output.json"


def marker_of(target: str) -> str:
    """The record beside an output that says paradime wrote it."""
    parent, name = os.path.split(target.rstrip(os.sep))
    return os.path.join(parent, f".{name}{MARKER}")


def _within(path: str, folder: str) -> bool:
    return path == folder or path.startswith(folder.rstrip(os.sep) + os.sep)


def _files(folder: str) -> dict[str, os.stat_result]:
    found = {}
    for parent, _, names in os.walk(folder):
        for name in names:
            path = os.path.join(parent, name)
            found[os.path.relpath(path, folder)] = os.lstat(path)
    return found


def _stamp(info: os.stat_result) -> list[int]:
    return [int(info.st_size), int(info.st_mtime_ns)]


def _found(target: str) -> dict[str, list[int]]:
    if os.path.isdir(target):
        return {rel: _stamp(info) for rel, info in _files(target).items()}
    return {os.path.basename(target): _stamp(os.lstat(target))}


def _not_written_by_paradime(target: str) -> str | None:
    """Why ``target`` is not an unchanged paradime output (None if it is one)."""
    is_dir = os.path.isdir(target)
    marker = marker_of(target)
    try:
        with open(marker, encoding="utf-8") as handle:
            record = json.load(handle)
        recorded = {rel: list(stamp) for rel, stamp in record["files"].items()}
        if record["folder"] != is_dir:
            return f"paradime wrote a {'folder' if record['folder'] else 'file'} there, not this"
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return f"it has no paradime output record ({os.path.basename(marker)} beside it)"
    found = _found(target)
    for rel, stamp in sorted(found.items()):
        if rel not in recorded:
            return f"{os.path.join(target, rel) if is_dir else target} was not written by paradime"
        if recorded[rel] != stamp:
            return f"{os.path.join(target, rel) if is_dir else target} was changed after paradime wrote it"
    missing = sorted(set(recorded) - set(found))
    if missing:
        return f"{missing[0]} that paradime wrote there is missing"
    return None


def check_output(out: str, *, overwrite: bool = False, inputs: Iterable[str | None] = (),
                 store_root: str | None = None) -> str:
    """The absolute output path, after the rules of the module docstring.

    Parameters
    ----------
    out : str
        The ``--out`` argument.
    overwrite : bool
        Whether an existing paradime output may be replaced.
    inputs : iterable of str
        The command's inputs (data paths, spec or model files); names that are not local
        paths are ignored.
    store_root : str, optional
        The artifact store's folder (local stores).

    Raises
    ------
    PipelineError
        One line naming the output and the reason it is refused.
    """
    if "://" in str(out):
        raise PipelineError(f"--out {out}: outputs are written to a local path, not a URL")
    target = os.path.abspath(os.path.expanduser(str(out)))
    real = os.path.realpath(target)
    protected = [(p, "input") for p in inputs if p and "://" not in str(p) and os.path.exists(str(p))]
    if store_root and os.path.isdir(store_root):
        protected.append((store_root, "artifact store"))
    for path, role in protected:
        other = os.path.realpath(os.path.abspath(os.path.expanduser(str(path))))
        if real == other:
            raise PipelineError(f"--out {out} is the {role} {path}; choose another output path")
        if _within(real, other):
            raise PipelineError(f"--out {out} lies inside the {role} {path}; choose another output path")
        if _within(other, real):
            raise PipelineError(f"--out {out} contains the {role} {path}; choose another output path")
    if os.path.islink(target):
        raise PipelineError(f"--out {out} is a symbolic link; paradime does not replace it")
    if not os.path.lexists(target) or (os.path.isdir(target) and not os.listdir(target)):
        return target
    if not overwrite:
        raise PipelineError(f"--out {out} already exists; pass --overwrite to replace it "
                            "(only an output that paradime wrote is replaced)")
    reason = _not_written_by_paradime(target)
    if reason is not None:
        raise PipelineError(f"--out {out} is not replaced: {reason}; paradime replaces only its own "
                            "unchanged outputs (move it away or choose another output path)")
    return target


@contextlib.contextmanager
def staged_output(out: str, *, overwrite: bool = False, inputs: Iterable[str | None] = (),
                  store_root: str | None = None) -> Iterator[str]:
    """A temporary path beside the output to write it to (a file, or a folder the caller
    creates); when the block ends it is marked and renamed into place.

    Parameters are those of :func:`check_output`, which runs first. An exception inside the
    block removes the temporary output and leaves any existing output untouched.
    """
    target = check_output(out, overwrite=overwrite, inputs=inputs, store_root=store_root)
    parent, name = os.path.split(target)
    os.makedirs(parent, exist_ok=True)
    tmp = os.path.join(parent, f".{name}.paradime-tmp-{uuid.uuid4().hex[:8]}")
    try:
        yield tmp
        check_output(out, overwrite=overwrite, inputs=inputs, store_root=store_root)
        _publish(tmp, target)
    finally:
        _remove(tmp)


def _publish(tmp: str, target: str) -> None:
    is_dir = os.path.isdir(tmp)
    old = None
    if os.path.isdir(target) and not os.listdir(target):
        if not is_dir:
            os.rmdir(target)
    elif os.path.lexists(target) and (is_dir or os.path.isdir(target)):
        old = os.path.join(os.path.dirname(target), f".{os.path.basename(target)}.paradime-old-{uuid.uuid4().hex[:8]}")
        os.rename(target, old)
    os.replace(tmp, target)  # one atomic step for a file over a file
    if old is not None:
        _remove(old)
    _write_marker(marker_of(target), _found(target), is_dir)


def _write_marker(path: str, files: dict[str, list[int]], folder: bool) -> None:
    try:
        from importlib.metadata import version

        package = version("paradime")
    except Exception:  # noqa: BLE001 - not installed (running from a checkout)
        package = "unknown"
    record: dict[str, Any] = {
        "written_by": f"paradime {package}",
        "time": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "folder": folder,
        "files": dict(sorted(files.items())),
    }
    tmp = f"{path}.{uuid.uuid4().hex[:8]}.tmp"
    with open(tmp, "w", encoding="utf-8") as handle:
        json.dump(record, handle, indent=1)
    os.replace(tmp, path)


def _remove(path: str) -> None:
    if os.path.isdir(path) and not os.path.islink(path):
        shutil.rmtree(path, ignore_errors=True)
    else:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)
