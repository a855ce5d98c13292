"""Exposure: what paradime starts listens on 127.0.0.1 only, children die with their parent, and
saved models load without pickle."""

from __future__ import annotations

import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil

REPO = Path(__file__).resolve().parents[2]


def _listening(pids: set[int]) -> list[str]:
    return sorted({conn.laddr.ip for conn in psutil.net_connections("tcp")
                   if conn.status == psutil.CONN_LISTEN and conn.pid in pids})


def test_local_dask_cluster_and_dashboards_listen_on_localhost_only():
    from pipelines.parallel import DaskManager

    me = psutil.Process()
    before = _listening({me.pid})
    dask = DaskManager()
    try:
        client = dask.client()
        assert client.submit(sum, [1, 2]).result() == 3
        opened = sorted(set(_listening({me.pid})) - set(before)) or _listening({me.pid})
        assert opened == ["127.0.0.1"], opened
    finally:
        dask.close()


def test_a_watched_child_ends_when_its_parent_is_killed(tmp_path):
    """``pipelines.parent_watch`` (how Prefect's temporary server is started): SIGKILL of the
    parent ends the child within seconds."""
    parent = subprocess.Popen(
        [sys.executable, "-c",
         "import subprocess, sys, time\n"
         "child = subprocess.Popen([sys.executable, '-m', 'pipelines.parent_watch', str(__import__('os').getpid()),"
         " '-m', 'http.server', '0', '--bind', '127.0.0.1'], start_new_session=True)\n"
         "print(child.pid, flush=True)\n"
         "time.sleep(600)\n"],
        stdout=subprocess.PIPE, text=True)
    child = int(parent.stdout.readline())
    try:
        time.sleep(0.5)
        assert psutil.pid_exists(child)
        parent.send_signal(signal.SIGKILL)
        parent.wait(timeout=10)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                if psutil.Process(child).status() == psutil.STATUS_ZOMBIE:
                    break
            except psutil.NoSuchProcess:
                break
            time.sleep(0.05)
        else:
            raise AssertionError("the watched child outlived its killed parent")
    finally:
        for pid in (parent.pid, child):
            try:
                psutil.Process(pid).kill()
            except psutil.NoSuchProcess:
                pass


def test_torch_loads_weights_only_and_torch_is_recent():
    pyproject = (REPO / "pyproject.toml").read_text()
    assert re.search(r'"torch>=2\.(6|[7-9]|\d\d)', pyproject), "torch>=2.6: older weights_only loading can be bypassed"
    calls = []
    for path in [*(REPO / "paradime_core").rglob("*.py"), *(REPO / "pipelines").rglob("*.py")]:
        for match in re.finditer(r"torch\.load\(([^)]*)\)", path.read_text()):
            calls.append((path.name, match.group(1)))
    assert calls, "torch.load is used somewhere"
    assert all("weights_only=True" in args for _, args in calls), calls
