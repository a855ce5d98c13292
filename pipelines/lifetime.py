"""A command's lifetime: SIGINT and SIGTERM end it within seconds, and no child outlives it.

Signals. :func:`handle_signals` makes SIGTERM unwind like Ctrl-C: both raise
:class:`Interrupted` (a ``KeyboardInterrupt``) in the main thread, so Prefect marks the run
crashed, the stage being written is removed (``ArtifactStore.begin``) and the Dask cluster
closes; completed stages stay published and the next run resumes from them. A watchdog
thread, woken through :func:`signal.set_wakeup_fd` even while the main thread is inside a
long native call, ends the process with the same status if unwinding takes longer than
:data:`GRACE_SECONDS`; a second signal ends it at once. The exit status is ``128 + signal``
(130 for SIGINT, 143 for SIGTERM).

Children. Prefect's temporary server (ephemeral mode, no ``PREFECT_API_URL``) is a child
process. :func:`guard_ephemeral_server` makes Prefect start it

- in its own session, so a terminal's Ctrl-C (sent to the whole foreground process group)
  reaches only the command, which can still report the crashed run to the server and then
  stop it, and
- under :mod:`pipelines.parent_watch`, which ends the server as soon as its parent is gone,
  whatever killed the parent (SIGKILL included).

The local Dask cluster runs its workers as threads of the command's process (see
:mod:`pipelines.parallel`), so they end with it.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from typing import Any

GRACE_SECONDS = 8.0
"""How long an interrupted command may take to unwind before it is ended without clean-up."""

HANDLED_SIGNALS = (signal.SIGINT, signal.SIGTERM)


class Interrupted(KeyboardInterrupt):
    """The command was asked to stop by a signal (SIGINT or SIGTERM).

    Parameters
    ----------
    signum : int
        The signal's number; the command's exit status is ``128 + signum``.
    """

    def __init__(self, signum: int = signal.SIGINT):
        super().__init__(signal.Signals(signum).name)
        self.signum = int(signum)


def signal_of(exc: BaseException) -> int | None:
    """The signal that ``exc`` reports, or None if it is no interrupt.

    :class:`Interrupted` carries its signal, a plain ``KeyboardInterrupt`` is SIGINT, and a
    termination exception of another library (a ``BaseException`` with an integer ``signal``,
    as Prefect raises for SIGTERM during a flow run) carries its own.
    """
    if isinstance(exc, Interrupted):
        return exc.signum
    if isinstance(exc, KeyboardInterrupt):
        return int(signal.SIGINT)
    number = getattr(exc, "signal", None)
    if not isinstance(exc, Exception) and isinstance(number, int) and number in HANDLED_SIGNALS:
        return int(number)
    return None


class _SignalState:
    """What the handlers of one command share: the first signal and whether the line was shown."""

    def __init__(self, announce: Callable[[int], None]):
        self.announce = announce
        self.first: int | None = None
        self.announced = False
        self.lock = threading.Lock()

    def say_once(self, signum: int) -> None:
        with self.lock:
            if self.announced:
                return
            self.announced = True
        with contextlib.suppress(Exception):
            self.announce(signum)
        # After its one line an interrupted command says nothing more: the libraries' teardown
        # (a cancelled database connection of Prefect's temporary server) may log tracebacks.
        logging.disable(logging.CRITICAL)

    def force_exit(self, signum: int) -> None:
        self.say_once(signum)
        with contextlib.suppress(Exception):
            sys.stderr.flush()
            sys.stdout.flush()
        os._exit(128 + signum)


_STATE: _SignalState | None = None


def announce_interrupt(signum: int, announce: Callable[[int], None]) -> None:
    """Show the command's one "interrupted" line: once per command, whichever path ends it.

    Parameters
    ----------
    signum : int
        The signal that interrupted the command.
    announce : callable
        Prints the line; used when no :func:`handle_signals` block is active.
    """
    if _STATE is not None:
        _STATE.say_once(signum)
    else:
        announce(signum)


@contextlib.contextmanager
def handle_signals(announce: Callable[[int], None], grace: float = GRACE_SECONDS
                   ) -> Iterator[_SignalState | None]:
    """Within the block, SIGINT and SIGTERM raise :class:`Interrupted` in the main thread.

    Yields the block's signal state (``state.first``: the first signal received, if any), or
    None outside the main thread, where signal handlers cannot be set.

    Parameters
    ----------
    announce : callable
        Prints the "interrupted" line for a signal number; called exactly once.
    grace : float
        Seconds the command may unwind after the first signal before it is ended at once.
    """
    global _STATE
    if threading.current_thread() is not threading.main_thread():
        yield None
        return
    state = _SignalState(announce)
    _STATE = state

    def on_signal(signum: int, frame: Any) -> None:
        if state.first is not None:
            state.force_exit(state.first)
        state.first = signum
        raise Interrupted(signum)

    previous_logging = logging.root.manager.disable
    previous = {sig: signal.signal(sig, on_signal) for sig in HANDLED_SIGNALS}
    read_fd, write_fd = os.pipe()
    os.set_blocking(write_fd, False)
    previous_fd = signal.set_wakeup_fd(write_fd, warn_on_full_buffer=False)
    threading.Thread(target=_watchdog, args=(state, read_fd, grace), name="paradime-signal-watchdog",
                     daemon=True).start()
    try:
        yield state
    finally:
        _STATE = None
        logging.disable(previous_logging)
        signal.set_wakeup_fd(previous_fd)
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        os.close(write_fd)


def exit_after_cleanup(status: int) -> None:
    """End an interrupted process: run the ``atexit`` handlers, then exit without teardown.

    The handlers stop what the process started (Prefect's temporary server, its log and event
    services); the interpreter's own teardown (a full garbage collection over every loaded
    module) is skipped: it can take seconds with torch loaded and frees nothing the OS does not.
    """
    import atexit

    try:
        logging.shutdown()  # first: log handlers may still send to a server that an atexit handler stops
        logging.disable(logging.CRITICAL)  # the handlers' teardown must not print after the one line
        atexit._run_exitfuncs()
    finally:
        for stream in (sys.stdout, sys.stderr):
            with contextlib.suppress(Exception):
                stream.flush()
        os._exit(status)


def _force_exit(state: _SignalState, signum: int) -> None:
    state.force_exit(state.first or signum)


def _watchdog(state: _SignalState, read_fd: int, grace: float) -> None:
    """Read signal numbers from the wake-up pipe; ``grace`` s after the first SIGINT or SIGTERM,
    end the process if it is still running.

    The wake-up byte arrives even while the main thread runs native code that never returns to
    the interpreter, where the Python-level handler cannot run. The pipe is read until the
    :func:`handle_signals` block closes its write end.
    """
    timer = None
    try:
        while True:
            data = os.read(read_fd, 64)
            if not data:
                return
            received = [number for number in data if number in HANDLED_SIGNALS]
            if timer is None and received:
                timer = threading.Timer(grace, _force_exit, args=(state, received[0]))
                timer.daemon = True
                timer.start()
    except OSError:
        return
    finally:
        os.close(read_fd)


# --------------------------------------------------------------------------- Prefect's server
class _GuardedSubprocess:
    """``subprocess`` as Prefect's server module sees it: ``Popen`` ties the server to us.

    The temporary server is started as ``python -m uvicorn ...``; it becomes ``python -m
    pipelines.parent_watch <our pid> -m uvicorn ...`` in a new session. Every other name is
    the real :mod:`subprocess`'s.
    """

    def __getattr__(self, name: str) -> Any:
        return getattr(subprocess, name)

    @staticmethod
    def Popen(args: Any, **kwargs: Any) -> subprocess.Popen[Any]:  # noqa: N802 - mirrors subprocess
        args = list(args)
        if len(args) >= 3 and args[1] == "-m":
            args = [args[0], "-m", "pipelines.parent_watch", str(os.getpid()), *args[1:]]
        kwargs["start_new_session"] = True
        return subprocess.Popen(args, **kwargs)


def guard_ephemeral_server() -> bool:
    """Make Prefect start its temporary server in its own session, ended when we end.

    Only in ephemeral mode (no ``PREFECT_API_URL``); a no-op when a server is configured or
    when Prefect's server module no longer starts the server through ``subprocess.Popen``.
    Returns whether the guard is in place.
    """
    if os.environ.get("PREFECT_API_URL") or os.name != "posix":
        return False
    try:
        from prefect.server.api import server
    except ImportError:  # pragma: no cover - prefect without its server
        return False
    if getattr(server, "subprocess", None) is subprocess and hasattr(server, "SubprocessASGIServer"):
        server.subprocess = _GuardedSubprocess()
    return isinstance(getattr(server, "subprocess", None), _GuardedSubprocess)


__all__ = ["GRACE_SECONDS", "Interrupted", "announce_interrupt", "exit_after_cleanup", "guard_ephemeral_server",
           "handle_signals", "signal_of"]
