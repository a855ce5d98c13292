"""Deployments against real processes: a Prefect server, a process work pool and its worker,
``paradime deploy`` and ``paradime schedule``, runs triggered through the API (127.0.0.1,
free ports, a private PREFECT_HOME; everything is stopped afterwards)."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

BIN = Path(sys.executable).parent
POOL = "paradime-test-pool"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextlib.contextmanager
def _process(args: list[str], env: dict[str, str], log: Path):
    """A background process in its own process group, stopped (group-wide) on exit."""
    with open(log, "wb") as out:
        proc = subprocess.Popen(args, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        yield proc
    finally:
        for sig, wait in ((signal.SIGTERM, 20), (signal.SIGKILL, 10)):
            if proc.poll() is not None:
                break
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, sig)
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(wait)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)  # the flow-run children of a worker or runner


def _wait(condition, timeout: float, what: str, log: Path | None = None):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(httpx.HTTPError, OSError):
            value = condition()
            if value:
                return value
        time.sleep(1)
    tail = log.read_text(errors="replace")[-3000:] if log and log.exists() else ""
    raise AssertionError(f"timed out waiting for {what}\n{tail}")


def _run(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess:
    done = subprocess.run(args, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    return done


def _deployment_id(api: str, name: str) -> str:
    response = httpx.get(f"{api}/deployments/name/{name}", timeout=10)
    response.raise_for_status()
    return response.json()["id"]


def _start_run(api: str, deployment_id: str, parameters: dict | None = None) -> httpx.Response:
    """Create a flow run; a 503 (the server's "retry": a busy database) is retried, as Prefect's client does."""
    for _ in range(10):
        response = httpx.post(f"{api}/deployments/{deployment_id}/create_flow_run",
                              json={"parameters": parameters or {}}, timeout=10)
        if response.status_code != 503:
            break
        time.sleep(2)
    return response


def _final_state(api: str, run_id: str, timeout: float, log: Path) -> str:
    def finished():
        state = httpx.get(f"{api}/flow_runs/{run_id}", timeout=10).json()["state"]
        return state["type"] if state["type"] in ("COMPLETED", "FAILED", "CRASHED", "CANCELLED") else None

    return _wait(finished, timeout, f"flow run {run_id}", log)


@pytest.fixture(scope="module")
def prefect_api(tmp_path_factory):
    """A real ``prefect server start`` on a free 127.0.0.1 port with a private PREFECT_HOME: (api, env)."""
    home = tmp_path_factory.mktemp("prefect-server")
    port = _free_port()
    api = f"http://127.0.0.1:{port}/api"
    env = {**os.environ, "PREFECT_HOME": str(home / "prefect-home"), "PREFECT_API_URL": api,
           "PREFECT_SERVER_ANALYTICS_ENABLED": "false", "DO_NOT_TRACK": "1", "PREFECT_WORKER_QUERY_SECONDS": "2",
           "PREFECT_RUNNER_POLL_FREQUENCY": "2", "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "90"}
    log = home / "server.log"
    with _process([str(BIN / "prefect"), "server", "start", "--host", "127.0.0.1", "--port", str(port)], env, log):
        _wait(lambda: httpx.get(f"{api}/health", timeout=5).status_code == 200, 180, "the Prefect server", log)
        yield api, env


def _run_id(response: httpx.Response) -> str:
    assert response.status_code < 300, response.text
    return response.json()["id"]


@pytest.mark.slow
def test_work_pool_worker_runs_retrain_and_embed_deployments(prefect_api, tmp_path, data_dir, spec_file):
    api, env = prefect_api
    store, data = tmp_path / "store", f"{data_dir}/digits.npz"
    worker_log = tmp_path / "worker.log"
    _run([str(BIN / "prefect"), "work-pool", "create", POOL, "--type", "process"], env)
    _run([str(BIN / "paradime"), "deploy", spec_file, "--pool", POOL, "--data", data, "--store", str(store),
          "--torch-threads", "1", "--label-column", "y"], env)
    _run([str(BIN / "paradime"), "deploy", spec_file, "--flow", "embed", "--pool", POOL,
          "--data", f"{data_dir}/digits_new.npz", "--store", str(store)], env)
    retrain = _deployment_id(api, "paradime-retrain/retrain-tiny")
    embed = _deployment_id(api, "paradime-embed/embed-tiny")
    deployment = httpx.get(f"{api}/deployments/{retrain}", timeout=10).json()
    assert deployment["enforce_parameter_schema"] and deployment["parameters"]["store"] == str(store)
    assert deployment["parameters"]["torch_threads"] == 1

    assert _start_run(api, retrain, {"seed": -1}).status_code >= 400  # refused by the schema
    with _process([str(BIN / "prefect"), "worker", "start", "--pool", POOL], env, worker_log):
        run = _run_id(_start_run(api, retrain))
        assert _final_state(api, run, 300, worker_log) == "COMPLETED"
        models = list((store / "index" / "models").glob("*.json"))
        assert len(models) == 1 and "fits" in models[0].read_text()
        run = _run_id(_start_run(api, embed))
        assert _final_state(api, run, 300, worker_log) == "COMPLETED"
        embeddings = {p.name for p in (store / "embeddings").iterdir()}
        assert len(embeddings) == 2  # the training embedding and the new rows'
        elsewhere = tmp_path / "elsewhere"
        run = _run_id(_start_run(api, retrain, {"store": str(elsewhere)}))
        assert _final_state(api, run, 300, worker_log) == "FAILED"
        assert not elsewhere.exists()
        assert "fixes it to" in worker_log.read_text(errors="replace")


@pytest.mark.slow
def test_schedule_serves_its_deployment_until_stopped(prefect_api, tmp_path, data_dir, spec_file):
    api, env = prefect_api
    store = tmp_path / "store"
    log = tmp_path / "schedule.log"
    with _process([str(BIN / "paradime"), "schedule", spec_file, "--data", f"{data_dir}/digits.npz",
                   "--store", str(store), "--name", "nightly", "--cron", "0 3 * * *", "--torch-threads", "1"],
                  env, log) as proc:
        nightly = _wait(lambda: _deployment_id(api, "paradime-retrain/nightly"), 180, "the scheduled deployment", log)
        deployment = httpx.get(f"{api}/deployments/{nightly}", timeout=10).json()
        assert deployment["schedules"][0]["schedule"]["cron"] == "0 3 * * *"
        assert deployment["parameters"]["store"] == str(store) and deployment["enforce_parameter_schema"]
        run = _run_id(_start_run(api, nightly))
        assert _final_state(api, run, 300, log) == "COMPLETED", log.read_text(errors="replace")[-3000:]
        assert proc.poll() is None  # still serving
    assert len(list((store / "index" / "models").glob("*.json"))) == 1
