"""The web page: its folder and data (fast), and the page itself in headless Chromium (slow)."""

from __future__ import annotations

import functools
import http.server
import json
import threading
from pathlib import Path

import numpy as np
import pytest

from paradime_core.errors import DataError
from paradime_core.export import web, web_runtime


@pytest.fixture
def fake_runtime(tmp_path, monkeypatch) -> Path:
    """A runtime folder of stand-in files whose checksums are declared as pinned."""
    import hashlib

    folder = tmp_path / "runtime"
    folder.mkdir()
    pinned = {}
    for name in web_runtime.FILES:
        data = f"stand-in for {name}".encode()
        (folder / name).write_bytes(data)
        pinned[name] = hashlib.sha256(data).hexdigest()
    monkeypatch.setattr(web_runtime, "FILES", pinned)
    return folder


def test_points_document_subsamples_and_keeps_labels():
    embedding = np.arange(50, dtype=np.float32).reshape(25, 2)
    labels = np.arange(25) % 3
    doc = web.points_document(embedding, labels, np.zeros((2, 4)), np.ones((2, 2)), input_width=4,
                              feature_names=list("abcd"), max_points=10)
    assert len(doc["train"]["points"]) == 10 and doc["train"]["total"] == 25
    kept = [int(p[0]) // 2 for p in doc["train"]["points"]]
    assert doc["train"]["labels"] == [k % 3 for k in kept]
    assert doc["feature_names"] == list("abcd") and doc["input_width"] == 4
    with pytest.raises(DataError, match="3 labels for 25 training points"):
        web.points_document(embedding, labels[:3], np.zeros((1, 4)), np.ones((1, 2)), input_width=4)


def test_write_web_page_folder(tmp_path, fake_runtime):
    model = tmp_path / "m.onnx"
    model.write_bytes(b"onnx")
    doc = web.points_document(None, None, np.zeros((1, 3)), np.zeros((1, 2)), input_width=3)
    out = web.write_web_page(tmp_path / "site", model, doc, fake_runtime)
    names = sorted(p.name for p in out.iterdir())
    assert names == sorted([".paradime-web", "index.html", "model.onnx", "paradime-web.js", "points.json",
                            *web_runtime.FILES])
    html = (out / "index.html").read_text()
    assert 'id="selfcheck"' in html and "https://" not in html and "http://" not in html
    assert json.loads((out / "points.json").read_text())["input_width"] == 3
    with pytest.raises(DataError, match="pass --overwrite"):
        web.write_web_page(out, model, doc, fake_runtime)
    web.write_web_page(out, model, doc, fake_runtime, overwrite=True)
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".site")]  # no leftovers


def test_altered_runtime_is_refused(tmp_path, fake_runtime):
    (fake_runtime / "ort.wasm.min.js").write_text("tampered")
    assert web_runtime.check_runtime(fake_runtime)[0].endswith("checksum differs)")
    with pytest.raises(DataError, match="checksum differs"):
        web_runtime.ensure_runtime(fake_runtime)


class _Quiet(http.server.SimpleHTTPRequestHandler):
    extensions_map = {**http.server.SimpleHTTPRequestHandler.extensions_map,
                      ".mjs": "text/javascript", ".wasm": "application/wasm", ".js": "text/javascript"}

    def log_message(self, *args):
        pass


@pytest.fixture
def served(tmp_path):
    """Serve a folder over HTTP on 127.0.0.1 (a free port); yields a function folder -> URL."""
    servers = []

    def serve(folder: Path) -> str:
        handler = functools.partial(_Quiet, directory=str(folder))
        server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
        return f"http://127.0.0.1:{server.server_address[1]}/index.html"

    yield serve
    for server in servers:
        server.shutdown()
        server.server_close()


@pytest.mark.slow
def test_page_in_headless_chromium(tmp_path, served):
    """`paradime run --export web`, then the page: self-check ok, a dropped CSV's points appear
    at the coordinates `paradime embed` gives, a bad paste is one message."""
    import subprocess
    import sys

    from _chromium import Browser, chromium_path
    from sklearn.datasets import load_digits

    executable = chromium_path()
    if executable is None:
        pytest.fail("Debian's chromium is not installed: `make browser` (or apt-get install chromium)")
    web_runtime.ensure_runtime()  # fetched once per machine, checked against the pinned checksums

    X, y = load_digits(return_X_y=True)
    X, y = X.astype(np.float32), y.astype(np.int64)
    np.savez(tmp_path / "digits.npz", X=X[:400], y=y[:400])
    sys.path.insert(0, str(Path(__file__).parent / "pipelines"))
    from _pipeline_specs import tiny_spec

    (tmp_path / "tiny.yaml").write_text(tiny_spec())
    cli = [sys.executable, "-m", "pipelines.cli"]
    store, out = str(tmp_path / "store"), tmp_path / "out"
    subprocess.run([*cli, "run", str(tmp_path / "tiny.yaml"), "--data", str(tmp_path / "digits.npz"), "--store",
                    store, "--no-prefect", "--no-progress", "--out", str(out), "--export", "web"],
                   check=True, timeout=600, capture_output=True)
    site = out / "web"
    assert (site / "index.html").is_file()

    new_rows = X[1000:1005]
    header = ",".join(f"x{i}" for i in range(X.shape[1]))
    csv = tmp_path / "new.csv"
    csv.write_text(header + "\n" + "\n".join(",".join(f"{v:g}" for v in row) for row in new_rows) + "\n")
    np.save(tmp_path / "new.npy", new_rows)
    subprocess.run([*cli, "embed", str(tmp_path / "tiny.yaml"), "--data", str(tmp_path / "new.npy"), "--out",
                    str(tmp_path / "new_emb.npy"), "--store", store, "--no-prefect", "--no-progress"],
                   check=True, timeout=600, capture_output=True)
    expected = np.load(tmp_path / "new_emb.npy")

    with Browser(executable) as browser:
        browser.open(served(site))
        check = browser.wait_for("(t => t.startsWith('ok') || t.startsWith('FAILED') ? t : null)"
                                 "(document.getElementById('selfcheck').textContent)", timeout=120)
        assert check.startswith("ok"), check
        assert float(check.split("max_abs_diff=")[1].split()[0]) <= 1e-4
        assert browser.evaluate("window.paradime.state.doc.train.points.length") == 400

        browser.set_files("#file", [str(csv)])
        browser.wait_for("document.getElementById('new-count').textContent === '5'")
        got = np.array(browser.evaluate("window.paradime.state.newPoints"))
        np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-4)

        browser.evaluate("document.getElementById('rows').value = '1,2,3'; "
                         "document.getElementById('embed-button').click(); true")
        status = browser.wait_for("(s => s.includes('expects') ? s : null)"
                                  "(document.getElementById('status').textContent)")
        assert "row 1: 3 values, the model expects 64" in status
        assert browser.evaluate("document.getElementById('new-count').textContent") == "5"
        browser.screenshot(str(tmp_path / "page.png"))
    assert (tmp_path / "page.png").stat().st_size > 10_000
