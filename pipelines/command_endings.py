"""How a ``paradime`` command ends on the console: one line and an exit status.

- a user mistake: one red ``error:`` line, exit status 1;
- an internal error: one line naming a crash log with the traceback
  (:mod:`pipelines.crash_log`), exit status 2;
- SIGINT or SIGTERM: one ``interrupted`` line, exit status 128 + the signal.

Prefect's console logs are filtered so that none of them repeats the command's own line.
"""

from __future__ import annotations

import contextlib
import logging
import signal
import sys
from collections.abc import Iterator

import typer
from rich.console import Console
from rich.markup import escape

errors = Console(stderr=True)


class ConsoleFilter(logging.Filter):
    """What Prefect's console handler shows from a CLI command.

    The command itself reports how it ended (one line), so tracebacks never reach the console
    through Prefect's logs, and without ``--verbose`` neither do Prefect's info logs nor its
    error logs of the failed or interrupted run (all of them still reach the Prefect API and
    its UI, whose handler is separate). With ``--verbose`` only user mistakes and interrupts
    stay out of the console.
    """

    USER_ERRORS = ("DataError", "SpecError", "PipelineError", "TrainingError", "StageCheckError")
    INTERRUPTS = ("KeyboardInterrupt", "Interrupted", "TerminationSignal")

    def __init__(self, verbose: bool):
        super().__init__()
        self.verbose = verbose

    def filter(self, record: logging.LogRecord) -> bool:
        from pipelines.errors import is_user_error

        from_prefect = record.name.startswith("prefect")
        if not self.verbose and from_prefect and (record.levelno < logging.WARNING or record.levelno >= logging.ERROR):
            return False
        exc = record.exc_info[1] if record.exc_info else None
        if exc is not None and (is_user_error(exc) or isinstance(exc, KeyboardInterrupt) or not self.verbose):
            return False
        if record.levelno >= logging.ERROR and from_prefect:
            text = record.getMessage()
            return not any(name in text for name in self.USER_ERRORS + self.INTERRUPTS)
        return True


def quiet_prefect_console(verbose: bool) -> None:
    """Install :class:`ConsoleFilter` on Prefect's console handlers (set up logging first)."""
    from prefect.logging.configuration import PROCESS_LOGGING_CONFIG, setup_logging

    if not PROCESS_LOGGING_CONFIG:
        setup_logging()
    for handler in logging.getLogger().handlers:
        if not any(isinstance(f, ConsoleFilter) for f in handler.filters):
            handler.addFilter(ConsoleFilter(verbose))


@contextlib.contextmanager
def user_errors(verbose: bool = False) -> Iterator[None]:
    """End the command with one line and its exit status whatever stops it.

    A user mistake: exit status 1. An interrupt (SIGINT, SIGTERM): ``interrupted``, exit status
    128 + the signal. Any other exception: ``internal error`` and the path of a log file with
    its traceback, exit status 2; with ``verbose`` the traceback is also printed.

    Parameters
    ----------
    verbose : bool
        Print the traceback of an internal error on stderr as well.
    """
    try:
        yield
    except (typer.Exit, SystemExit, GeneratorExit):
        raise
    except BaseException as exc:  # noqa: BLE001 - classified below
        from pipelines.errors import is_user_error
        from pipelines.lifetime import announce_interrupt, signal_of

        signum = signal_of(exc)
        if signum is not None:
            announce_interrupt(signum, say_interrupted)
            raise typer.Exit(128 + signum) from None
        if not isinstance(exc, Exception):
            raise
        if is_user_error(exc) or isinstance(exc, (FileNotFoundError, PermissionError, IsADirectoryError)):
            message = str(exc) if is_user_error(exc) else f"{type(exc).__name__}: {exc}"
            _error_line(message)
            raise typer.Exit(1) from None
        _internal_error(exc, verbose)
        raise typer.Exit(2) from None


def _error_line(message: str) -> None:
    errors.print(f"[bold red]error:[/bold red] [red]{escape(one_line(message))}[/red]", highlight=False,
                 soft_wrap=True)


def _internal_error(exc: BaseException, verbose: bool) -> None:
    """One line naming the error and the log file holding its traceback (printed too if verbose)."""
    import traceback

    from pipelines.crash_log import write_crash_log

    if verbose:
        sys.stderr.write("".join(traceback.format_exception(type(exc), exc, exc.__traceback__)))
    log = write_crash_log(exc)
    where = f"the traceback is in {log}" if log else "no log file could be written; rerun with --verbose"
    summary = one_line(f"{type(exc).__name__}: {exc}")
    if len(summary) > 300:
        summary = summary[:297] + "..."
    _error_line(f"internal error ({summary}); {where}")


def say_interrupted(signum: int) -> None:
    name = "" if signum == signal.SIGINT else f" ({signal.Signals(signum).name})"
    errors.print(f"[red]interrupted{name}[/red]", highlight=False, soft_wrap=True)


def one_line(text: str) -> str:
    return " ".join(str(text).split())
