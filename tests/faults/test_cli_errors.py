"""How a real ``paradime`` process ends on an error: a user mistake is one line and exit status
1; an unexpected internal error is one line naming a log file that holds the traceback, exit
status 2; ``--verbose`` shows the traceback. Internal errors are injected by
``inject/sitecustomize.py`` (``PARADIME_FAULT_RAISE``)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from ._processes import start, write_inputs

LINE = re.compile(r"^error: internal error \(RuntimeError: injected fault in a derived stage\); "
                  r"the traceback is in (?P<log>\S+\.log)$")


def _internal_error(tmp_path, prefect: bool, verbose: bool = False):
    spec, data = write_inputs(tmp_path)
    args = ["run", spec, "--data", data, "--store", str(tmp_path / "store")] + (["--verbose"] if verbose else [])
    command = start(args, tmp_path, prefect=prefect, fail="derived")
    try:
        code = command.finish(timeout=600)
    finally:
        command.kill_all()
    assert code == 2, command.text()
    return command


def _check_log(line: str, tmp_path) -> None:
    match = LINE.match(line)
    assert match, line
    log = Path(match["log"])
    assert log.parent == tmp_path / "logs"
    text = log.read_text()
    assert "Traceback (most recent call last)" in text and "RuntimeError: injected fault in a derived stage" in text
    assert "command: " in text and " run " in text


def test_internal_error_is_one_line_with_a_log_file(tmp_path):
    command = _internal_error(tmp_path, prefect=False)
    assert "Traceback" not in command.text()
    lines = command.stderr_lines()
    assert len(lines) == 1, lines
    _check_log(lines[0], tmp_path)


def test_verbose_shows_the_traceback(tmp_path):
    command = _internal_error(tmp_path, prefect=False, verbose=True)
    text = command.err.read_text()
    assert "Traceback (most recent call last)" in text and "RuntimeError: injected fault" in text
    _check_log(command.stderr_lines()[-1], tmp_path)


@pytest.mark.slow
def test_internal_error_inside_a_prefect_flow_is_one_line(tmp_path):
    """Prefect's own error logs of the failed task and flow stay off the console."""
    command = _internal_error(tmp_path, prefect=True)
    text = command.text()
    assert "Traceback" not in text, text
    lines = command.stderr_lines()
    assert len(lines) == 1, lines
    _check_log(lines[0], tmp_path)


def test_user_mistake_is_one_line_and_exit_status_1(tmp_path):
    spec, _ = write_inputs(tmp_path)
    command = start(["run", spec, "--data", str(tmp_path / "missing.npz"), "--store", str(tmp_path / "store")],
                    tmp_path)
    assert command.finish(timeout=120) == 1, command.text()
    assert "Traceback" not in command.text()
    lines = command.stderr_lines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and "missing.npz" in lines[0], lines
    assert not (tmp_path / "logs").exists(), "a user mistake writes no crash log"
