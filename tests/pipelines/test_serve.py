"""`paradime serve`: the HTTP embedding service.

The fast tests drive the application in process (Starlette's test client); the slow ones
start a real `paradime serve` process on 127.0.0.1 and a free port, compare its answers with
`paradime embed`, and stop it with SIGTERM.
"""

from __future__ import annotations

import http.client
import io
import json
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
import warnings

import numpy as np
import pytest
from typer.testing import CliRunner

from pipelines.cli import app as cli_app
from pipelines.flows import resolve_model
from pipelines.serving.app import create_app
from pipelines.serving.embedder import Embedder
from pipelines.store import ArtifactStore

TOKEN = "s3cret-token"
WIDTH = 6


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    """A saved routine (6 -> 2) imported into a store, rows to embed, and `paradime embed`'s answer."""
    from paradime_core import ParametricUMAP

    folder = tmp_path_factory.mktemp("serve")
    rng = np.random.default_rng(0)
    X = rng.normal(size=(120, WIDTH)).astype(np.float32)
    routine_file = folder / "umap.pt"
    ParametricUMAP(epochs=1, batches_per_epoch=2, init="random", random_state=0).fit(X).save(routine_file)
    rows = rng.normal(size=(300, WIDTH))
    np.save(folder / "rows.npy", rows)
    store = str(folder / "store")
    done = CliRunner().invoke(cli_app, ["embed", str(routine_file), "--data", str(folder / "rows.npy"), "--store",
                                        store, "--no-prefect", "--no-progress", "--out", str(folder / "ref.npy")])
    assert done.exit_code == 0, done.output
    key = resolve_model(str(routine_file), ArtifactStore(store))
    return {"folder": folder, "store": store, "key": key, "file": str(routine_file), "rows": rows,
            "reference": np.load(folder / "ref.npy")}


@pytest.fixture(scope="module")
def client(served):
    with warnings.catch_warnings():  # Starlette asks for httpx2; httpx is what Prefect installs
        warnings.filterwarnings("ignore", message=".*httpx.*")
        from starlette.testclient import TestClient

    embedder = Embedder(ArtifactStore(served["store"]), served["key"], torch_threads=1)
    with TestClient(create_app(embedder, token=TOKEN, max_request_bytes=200_000)) as test_client:
        yield test_client
    embedder.close()


AUTH = {"Authorization": f"Bearer {TOKEN}"}


def _npy(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, array)
    return buffer.getvalue()


BAD_BODIES = [
    ('{"rows": []}', 422, "no rows"),
    ('{"rows": [[1, 2]]}', 422, f"hold {WIDTH} numbers"),
    ('{"rows": [[1, 2, 3, 4, 5, 6], [1]]}', 422, "equally long"),
    ('{"rows": [["a", "b", "c", "d", "e", "f"]]}', 422, "numbers only"),
    ('{"rows": [[1, 2, null, 4, 5, 6]]}', 422, "numbers only"),
    ('{"rows": [1, 2, 3, 4, 5, 6]}', 422, "2-D"),
    ('{"rows": [[1, 2, 3, 4, 5, 1e999]]}', 400, "not valid JSON"),
    ('{"rows": [[1, 2, 3, 4, 5, NaN]]}', 400, "not valid JSON"),
    ('{"data": [[1, 2, 3, 4, 5, 6]]}', 422, '{"rows"'),
    ("[[1, 2, 3, 4, 5, 6]]", 422, '{"rows"'),
    ("not json", 400, "not valid JSON"),
]


def test_health_and_embed_in_process(client, served):
    health = client.get("/health", headers=AUTH).json()
    assert health["model"] == served["key"] and health["input_width"] == WIDTH and health["output_width"] == 2
    answer = client.post("/embed", json={"rows": served["rows"].tolist()}, headers=AUTH)
    assert answer.status_code == 200 and answer.headers["content-type"] == "application/json"
    assert np.array_equal(np.asarray(answer.json()["embedding"], dtype=np.float32), served["reference"])
    answer = client.post("/embed", content=_npy(served["rows"]),
                         headers={**AUTH, "Content-Type": "application/x-npy"})
    assert answer.headers["content-type"] == "application/x-npy"
    assert np.array_equal(np.load(io.BytesIO(answer.content)), served["reference"])


@pytest.mark.parametrize(("body", "status", "message"), BAD_BODIES)
def test_bad_rows_are_a_json_4xx(client, body, status, message):
    answer = client.post("/embed", content=body, headers={**AUTH, "Content-Type": "application/json"})
    assert answer.status_code == status and message in answer.json()["error"], answer.text
    assert client.get("/health", headers=AUTH).status_code == 200


def test_bad_npy_rows_name_the_row(client):
    rows = np.ones((5, WIDTH))
    rows[3, 1] = np.inf
    answer = client.post("/embed", content=_npy(rows), headers={**AUTH, "Content-Type": "application/x-npy"})
    assert answer.status_code == 422 and answer.json() == {"error": "row 3 contains NaN or inf"}
    answer = client.post("/embed", content=b"\x93NUMPY broken", headers={**AUTH, "Content-Type": "application/x-npy"})
    assert answer.status_code == 400
    answer = client.post("/embed", content=b"1,2", headers={**AUTH, "Content-Type": "text/csv"})
    assert answer.status_code == 415


def test_token_and_size_limit_in_process(client):
    assert client.get("/health").status_code == 401
    assert client.get("/health", headers={"Authorization": f"Bearer {TOKEN}x"}).status_code == 401
    refused = client.post("/embed", json={"rows": [[0.0] * WIDTH]})
    assert refused.status_code == 401 and refused.headers["www-authenticate"] == "Bearer"
    too_big = client.post("/embed", content=b" " * 200_001, headers={**AUTH, "Content-Type": "application/json"})
    assert too_big.status_code == 413 and "limit of 200000 bytes" in too_big.json()["error"]
    chunked = client.post("/embed", content=iter([b" " * 100_000] * 3), headers={**AUTH, "Content-Type": "application/json"})
    assert chunked.status_code == 413


def test_serve_user_mistakes_are_one_line(served):
    runner = CliRunner()
    result = runner.invoke(cli_app, ["serve", "0123456789abcdef", "--store", served["store"]])
    assert result.exit_code == 1 and "model '0123456789abcdef'" in result.output
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        result = runner.invoke(cli_app, ["serve", served["key"], "--store", served["store"], "--port", str(port)])
    assert result.exit_code == 1 and f"cannot listen on 127.0.0.1:{port}" in result.output
    assert "Traceback" not in result.output


# --------------------------------------------------------------------------- a real process
def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _request(url: str, body: bytes | None = None, headers: dict[str, str] | None = None
             ) -> tuple[int, dict[str, str], bytes]:
    request = urllib.request.Request(url, data=body, headers=headers or {}, method="POST" if body is not None else "GET")
    try:
        with urllib.request.urlopen(request, timeout=60) as answer:
            return answer.status, dict(answer.headers), answer.read()
    except urllib.error.HTTPError as error:
        return error.code, dict(error.headers), error.read()


class Service:
    """A `paradime serve` process on 127.0.0.1 and a free port (stopped by the fixture)."""

    def __init__(self, model: str, store: str, *options: str):
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.process = subprocess.Popen(
            [sys.executable, "-m", "pipelines.cli", "serve", model, "--store", store, "--port", str(self.port),
             "--torch-threads", "1", *options],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise AssertionError(f"paradime serve ended: {self.process.communicate()}")
            try:
                status, _, _ = _request(f"{self.url}/health")
                if status in (200, 401):
                    return
            except (urllib.error.URLError, ConnectionError):
                time.sleep(0.2)
        raise AssertionError("paradime serve did not answer within 180 s")

    def stop(self) -> tuple[int, str, str, float]:
        start = time.monotonic()
        self.process.send_signal(signal.SIGTERM)
        out, err = self.process.communicate(timeout=60)
        return self.process.returncode, out, err, time.monotonic() - start


@pytest.fixture(scope="module")
def service(served):
    process = Service(served["file"], served["store"], "--token", TOKEN, "--max-request-mb", "0.25")
    yield process
    if process.process.poll() is None:
        process.process.kill()
        process.process.wait()


@pytest.mark.slow
def test_service_answers_as_paradime_embed(service, served):
    status, _, body = _request(f"{service.url}/health", headers=AUTH)
    assert status == 200
    health = json.loads(body)
    assert (health["model"], health["input_width"], health["output_width"]) == (served["key"], WIDTH, 2)
    status, headers, body = _request(f"{service.url}/embed", json.dumps({"rows": served["rows"].tolist()}).encode(),
                                     {**AUTH, "Content-Type": "application/json"})
    assert status == 200 and headers["content-type"] == "application/json"
    assert np.array_equal(np.asarray(json.loads(body)["embedding"], dtype=np.float32), served["reference"])
    status, headers, body = _request(f"{service.url}/embed", _npy(served["rows"]),
                                     {**AUTH, "Content-Type": "application/x-npy"})
    assert status == 200 and np.array_equal(np.load(io.BytesIO(body)), served["reference"])


@pytest.mark.slow
def test_service_refuses_bad_requests_and_stays_up(service):
    for body, status, message in BAD_BODIES:
        answer = _request(f"{service.url}/embed", body.encode(), {**AUTH, "Content-Type": "application/json"})
        assert answer[0] == status and message in json.loads(answer[2])["error"], answer
    assert _request(f"{service.url}/health")[0] == 401
    assert _request(f"{service.url}/health", headers={"Authorization": "Bearer wrong"})[0] == 401
    assert _request(f"{service.url}/embed", b'{"rows": [[0, 0, 0, 0, 0, 0]]}', {"Content-Type": "application/json"})[0] == 401
    big = json.dumps({"rows": np.zeros((20_000, WIDTH)).tolist()}).encode()  # over 0.25 MiB
    status, _, body = _request(f"{service.url}/embed", big, {**AUTH, "Content-Type": "application/json"})
    assert status == 413 and "exceeds the limit of 262144 bytes" in json.loads(body)["error"]
    connection = http.client.HTTPConnection("127.0.0.1", service.port, timeout=60)
    connection.request("POST", "/embed", body=iter([b" " * 100_000] * 4), encode_chunked=True,
                       headers={**AUTH, "Content-Type": "application/json", "Transfer-Encoding": "chunked"})
    assert connection.getresponse().status == 413
    connection.close()
    connection = http.client.HTTPConnection("127.0.0.1", service.port, timeout=60)  # refused before sending
    connection.putrequest("POST", "/embed")
    for name, value in {**AUTH, "Content-Type": "application/json", "Content-Length": str(10**9),
                        "Expect": "100-continue"}.items():
        connection.putheader(name, value)
    connection.endheaders()
    answer = connection.getresponse()
    assert answer.status == 413 and "of 1000000000 bytes" in json.loads(answer.read())["error"]
    connection.close()
    assert _request(f"{service.url}/health", headers=AUTH)[0] == 200
    assert service.process.poll() is None


@pytest.mark.slow
def test_sigterm_stops_the_service_cleanly(served):
    service = Service(served["key"], served["store"])
    status, _, body = _request(f"{service.url}/health")
    assert status == 200 and json.loads(body)["model"] == served["key"]  # no token: open
    code, out, err, seconds = service.stop()
    assert code == 0, err
    assert "Traceback" not in out + err and f"127.0.0.1:{service.port}" in out
    assert seconds < 10
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", service.port), timeout=2).close()


def test_version():
    result = CliRunner().invoke(cli_app, ["--version"])
    assert result.exit_code == 0 and result.stdout.startswith("paradime ")
