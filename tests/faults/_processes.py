"""Real ``paradime`` processes for the fault tests: start, watch their children, signal, collect.

Each command runs in its own session (as a shell runs a job), so a SIGINT sent to its process
group is what a terminal's Ctrl-C sends. Prefect runs in ephemeral mode (no
``PREFECT_API_URL``) with a private ``PREFECT_HOME``; ``inject/`` is on the command's
``PYTHONPATH`` for the test-only faults of ``inject/sitecustomize.py``.
"""

from __future__ import annotations

import atexit
import importlib.util
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import psutil

PARADIME = str(Path(sys.executable).with_name("paradime"))
INJECT = str(Path(__file__).with_name("inject"))
_HOME = tempfile.mkdtemp(prefix="paradime-faults-")
atexit.register(shutil.rmtree, _HOME, ignore_errors=True)

STAGE_KINDS = ("datasets", "derived", "knn", "relations", "phases", "embeddings", "reports")



def _tiny_spec(epochs: int) -> str:
    """The pipelines tests' two-phase spec (tests/pipelines/_pipeline_specs.py)."""
    module = sys.modules.get("_pipeline_specs")
    if module is None:
        path = Path(__file__).resolve().parents[1] / "pipelines" / "_pipeline_specs.py"
        loader = importlib.util.spec_from_file_location("_pipeline_specs", path)
        module = importlib.util.module_from_spec(loader)
        loader.loader.exec_module(module)
        sys.modules["_pipeline_specs"] = module
    return module.tiny_spec(main_epochs=epochs)


def write_inputs(folder: Path, epochs: int = 3) -> tuple[str, str]:
    """A spec whose main phase trains ``epochs`` epochs and 300 digits rows; their paths."""
    from sklearn.datasets import load_digits

    X, y = load_digits(return_X_y=True)
    data = folder / "digits.npz"
    np.savez(data, X=X[:300].astype(np.float32), y=y[:300])
    spec = folder / f"faults-{epochs}.yaml"
    spec.write_text(_tiny_spec(epochs))
    return str(spec), str(data)


@dataclass
class Command:
    """A running ``paradime`` command and every descendant process seen while it ran."""

    process: subprocess.Popen
    out: Path
    err: Path
    started: float = field(default_factory=time.monotonic)
    seen: dict[int, psutil.Process] = field(default_factory=dict)
    signalled: float | None = None
    seconds_to_exit: float | None = None
    seconds_to_no_children: float | None = None

    def watch(self) -> None:
        try:
            for child in psutil.Process(self.process.pid).children(recursive=True):
                self.seen.setdefault(child.pid, child)
        except psutil.NoSuchProcess:
            pass

    def children(self) -> list[str]:
        """Command lines of the descendants alive now."""
        lines = []
        for proc in self.seen.values():
            try:
                lines.append(" ".join(proc.cmdline()))
            except psutil.NoSuchProcess:
                pass
        return lines

    def wait_for(self, condition, timeout: float = 300) -> bool:
        """Poll ``condition()`` (and the children) until it holds; False if the command ended first."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.watch()
            if condition():
                return True
            if self.process.poll() is not None:
                return False
            time.sleep(0.05)
        return False

    def send(self, signum: int) -> None:
        """SIGINT as a terminal's Ctrl-C (to the process group); other signals to the process."""
        self.watch()
        self.signalled = time.monotonic()
        if signum == signal.SIGINT:
            os.killpg(self.process.pid, signum)
        else:
            self.process.send_signal(signum)

    def finish(self, timeout: float = 600) -> int:
        try:
            code = self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill_all()
            raise
        if self.signalled is not None:
            self.seconds_to_exit = time.monotonic() - self.signalled
        return code

    def survivors(self, timeout: float = 10) -> list[str]:
        """Descendants still alive ``timeout`` s after the command ended (zombies count as gone)."""
        deadline = time.monotonic() + timeout
        alive: list[psutil.Process] = []
        while True:
            alive = []
            for proc in self.seen.values():
                try:
                    if proc.is_running() and proc.status() != psutil.STATUS_ZOMBIE:
                        alive.append(proc)
                except psutil.NoSuchProcess:
                    pass
            if not alive or time.monotonic() > deadline:
                break
            time.sleep(0.05)
        if not alive and self.signalled is not None:
            self.seconds_to_no_children = time.monotonic() - self.signalled
        return [" ".join(p.cmdline()[:6]) for p in alive]

    def kill_all(self) -> None:
        """Stop whatever is left (a failed test must not leave processes behind).

        psutil checks each process's start time, so a reused pid is never signalled.
        """
        self.watch()
        if self.process.poll() is None:
            self.process.kill()
        for proc in self.seen.values():
            try:
                proc.kill()
            except psutil.Error:
                pass
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            pass

    def stderr_lines(self) -> list[str]:
        return [line for line in self.err.read_text().splitlines() if line.strip()]

    def text(self) -> str:
        return self.out.read_text() + self.err.read_text()

    def result(self) -> dict:
        """The run record printed with ``--json``."""
        text = self.out.read_text()
        return json.loads(text[text.index("{"):])


def start(args: list[str], folder: Path, *, prefect: bool = True, pause: str | None = None,
          fail: str | None = None, name: str = "run") -> Command:
    """Start ``paradime ARGS`` (``--no-prefect`` unless ``prefect``) with optional injected faults."""
    env = {key: value for key, value in os.environ.items() if key != "PREFECT_API_URL"}
    env.update(PREFECT_HOME=os.path.join(_HOME, "prefect-home"), PARADIME_LOG_DIR=str(folder / "logs"),
               PARADIME_FAULT_DIR=str(folder), PARADIME_TORCH_THREADS="1",
               PYTHONPATH=os.pathsep.join(p for p in (INJECT, env.get("PYTHONPATH", "")) if p))
    env.pop("PARADIME_FAULT_PAUSE", None)
    env.pop("PARADIME_FAULT_RAISE", None)
    if pause:
        env["PARADIME_FAULT_PAUSE"] = pause
    if fail:
        env["PARADIME_FAULT_RAISE"] = fail
    out, err = folder / f"{name}.out", folder / f"{name}.err"
    command = [PARADIME, *args, "--no-progress"] + ([] if prefect else ["--no-prefect"])
    with open(out, "w") as stdout, open(err, "w") as stderr:
        process = subprocess.Popen(command, stdout=stdout, stderr=stderr, env=env, start_new_session=True)
    return Command(process, out, err)


def paused(folder: Path, kind: str):
    """A condition: the injected pause of a ``kind`` stage has begun."""
    return lambda: (folder / f"{kind}.paused").exists()


def complete_stages(store: Path) -> dict[str, str]:
    """``kind/key`` -> manifest creation time of every published stage."""
    from pipelines.store import ArtifactStore

    return {f"{info.kind}/{info.key}": info.created for info in ArtifactStore(store).list() if info.complete}


def leftovers(store: Path) -> list[str]:
    tmp = store / ".tmp"
    return sorted(os.listdir(tmp)) if tmp.is_dir() else []
