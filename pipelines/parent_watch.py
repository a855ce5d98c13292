"""Run a Python module as a child that ends when its parent process is gone.

``python -m pipelines.parent_watch PARENT_PID -m MODULE ARGS...`` runs ``MODULE`` as
``__main__`` (as ``python -m MODULE ARGS...`` would) beside a daemon thread that checks
every :data:`POLL_SECONDS` whether this process's parent is still ``PARENT_PID``. Once it is
not (the parent exited or was killed, even by SIGKILL, and the child was re-parented), the
thread sends SIGTERM to this process (a server shuts down gracefully) and, if the process is
still alive :data:`GRACE_SECONDS` later, ends it at once.

Polling the parent pid works on every POSIX system and does not depend on which thread of
the parent started the child (Linux's ``PR_SET_PDEATHSIG`` fires when that *thread* ends).
"""

from __future__ import annotations

import os
import runpy
import signal
import sys
import threading
import time

POLL_SECONDS = 0.2
GRACE_SECONDS = 3.0


def watch_parent(parent_pid: int, poll: float = POLL_SECONDS, grace: float = GRACE_SECONDS) -> None:
    """Block until the parent is no longer ``parent_pid``, then end this process."""
    while os.getppid() == parent_pid:
        time.sleep(poll)
    os.kill(os.getpid(), signal.SIGTERM)
    time.sleep(grace)
    os._exit(1)


def main(argv: list[str]) -> None:
    """``PARENT_PID -m MODULE ARGS...``: run MODULE while the parent lives."""
    if len(argv) < 3 or argv[1] != "-m":
        sys.exit("usage: python -m pipelines.parent_watch PARENT_PID -m MODULE [ARGS...]")
    parent_pid, module, args = int(argv[0]), argv[2], argv[3:]
    threading.Thread(target=watch_parent, args=(parent_pid,), name="parent-watch", daemon=True).start()
    sys.argv = [module, *args]
    runpy.run_module(module, run_name="__main__", alter_sys=True)


if __name__ == "__main__":
    main(sys.argv[1:])
