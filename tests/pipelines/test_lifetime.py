"""The interrupt contract in-process: after its one "interrupted" line a command logs nothing.

The real-process signal chains are in tests/faults/test_signals.py; this checks the part that a
race decides there (a library logging a traceback while the interrupted command tears down).
"""

from __future__ import annotations

import logging
import signal

from pipelines.lifetime import announce_interrupt, handle_signals


class _Collect(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


def test_nothing_is_logged_after_the_interrupted_line_and_logging_returns_after_the_block():
    logger = logging.getLogger("paradime.tests.lifetime")
    handler = _Collect()
    logger.addHandler(handler)
    said: list[int] = []
    try:
        with handle_signals(said.append):
            logger.error("before the interrupt")
            announce_interrupt(signal.SIGTERM, said.append)
            logger.error("teardown noise")  # e.g. sqlalchemy's pool during Prefect's shutdown
            announce_interrupt(signal.SIGTERM, said.append)  # a second path ending the command
        logger.error("after the block")
    finally:
        logger.removeHandler(handler)
    assert said == [signal.SIGTERM]
    assert handler.messages == ["before the interrupt", "after the block"]
