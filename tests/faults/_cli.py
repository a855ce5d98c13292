"""Running the ``paradime`` command as a user does: a real process, its exit status and output."""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path


@dataclass
class CliResult:
    returncode: int
    stdout: str
    stderr: str

    @property
    def text(self) -> str:
        return self.stdout + self.stderr

    def error_lines(self) -> list[str]:
        return [line for line in self.text.splitlines() if line.startswith("error:")]


def run_cli(*args: str, workdir: Path, timeout: float = 300) -> CliResult:
    """``python -m pipelines.cli ARGS`` with a private store and Prefect home under ``workdir``."""
    env = {**os.environ, "PARADIME_STORE": str(workdir / "store"), "PREFECT_HOME": str(workdir / "prefect"),
           "DO_NOT_TRACK": "1", "PREFECT_SERVER_ANALYTICS_ENABLED": "false", "COLUMNS": "400"}
    done = subprocess.run([sys.executable, "-m", "pipelines.cli", *args], capture_output=True, text=True,
                          env=env, timeout=timeout, cwd=workdir)
    return CliResult(done.returncode, done.stdout, done.stderr)


def assert_one_line_error(result: CliResult, *fragments: str) -> str:
    """Exit status 1, no traceback, exactly one ``error:`` line holding every fragment."""
    assert result.returncode == 1, result.text
    assert "Traceback" not in result.text, result.text
    lines = result.error_lines()
    assert len(lines) == 1, result.text
    for fragment in fragments:
        assert fragment in lines[0], (fragment, lines[0])
    return lines[0]
