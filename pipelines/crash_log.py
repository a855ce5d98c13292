"""Log files of unexpected errors: the full traceback, where the one-line message points.

An internal error (not a user mistake) ends a command with one line naming the error and a
log file holding its traceback, the command line and the versions involved. Logs go to
``$PARADIME_LOG_DIR``, else ``$XDG_STATE_HOME/paradime/logs`` (``~/.local/state/paradime/logs``),
else, where that cannot be written, ``<temp dir>/paradime-logs``; the newest
:data:`KEEP_LOGS` are kept.
"""

from __future__ import annotations

import os
import platform
import sys
import tempfile
import time
import traceback
from pathlib import Path

LOG_DIR_ENV = "PARADIME_LOG_DIR"
KEEP_LOGS = 50
PREFIX = "crash-"


def log_dirs() -> list[Path]:
    """Where crash logs may go, in order of preference."""
    dirs = []
    if os.environ.get(LOG_DIR_ENV):
        dirs.append(Path(os.environ[LOG_DIR_ENV]).expanduser())
    state = os.environ.get("XDG_STATE_HOME") or os.path.join(os.path.expanduser("~"), ".local", "state")
    dirs.append(Path(state) / "paradime" / "logs")
    dirs.append(Path(tempfile.gettempdir()) / "paradime-logs")
    return dirs


def write_crash_log(exc: BaseException, argv: list[str] | None = None) -> Path | None:
    """Write ``exc``'s traceback to a new log file and return its path (None if nowhere writable).

    Parameters
    ----------
    exc : BaseException
        The unexpected error, with its traceback.
    argv : list of str, optional
        The command line (default ``sys.argv``).
    """
    stamp = time.strftime("%Y%m%d-%H%M%S", time.gmtime())
    text = "".join([
        f"command: {' '.join(argv if argv is not None else sys.argv)}\n",
        f"time (UTC): {time.strftime('%Y-%m-%d %H:%M:%S', time.gmtime())}\n",
        f"paradime {_version()}, Python {platform.python_version()}, {platform.platform()}\n\n",
        *traceback.format_exception(type(exc), exc, exc.__traceback__),
    ])
    for folder in log_dirs():
        try:
            folder.mkdir(parents=True, exist_ok=True)
            path = folder / f"{PREFIX}{stamp}-{os.getpid()}.log"
            path.write_text(text, encoding="utf-8")
        except OSError:
            continue
        _prune(folder)
        return path
    return None


def _prune(folder: Path) -> None:
    """Keep the newest :data:`KEEP_LOGS` logs (names sort by time)."""
    for old in sorted(folder.glob(f"{PREFIX}*.log"))[:-KEEP_LOGS]:
        try:
            old.unlink()
        except OSError:
            pass


def _version() -> str:
    try:
        from importlib.metadata import version

        return version("paradime")
    except Exception:  # noqa: BLE001 - the log is written whatever the installation
        return "(unknown version)"


__all__ = ["LOG_DIR_ENV", "log_dirs", "write_crash_log"]
