"""Throughput and latency of ``paradime serve`` on the loopback interface.

Starts ``paradime serve`` (a separate process, 127.0.0.1, a free port) with a model of the
MNIST shape (784 -> 100 -> 50 -> 2, ParametricUMAP's default network; the weights do not
change the cost), then sends ``POST /embed`` requests of 1, 100 and 10,000 rows from 1 and
16 concurrent clients (threads, one keep-alive connection each), a bounded number of
requests per case. Prints one JSON line per case (requests/s, rows/s, p50/p99 latency in
ms) and a Markdown table.

    .venv/bin/python benchmarks/serve_throughput.py                    # JSON bodies
    .venv/bin/python benchmarks/serve_throughput.py --formats json npy # NPY bodies as well
    .venv/bin/python benchmarks/serve_throughput.py --model <key|.pt|spec> --store DIR

The clients share the machine with the server: on a small machine they take CPU from it,
so the figures are a lower bound of what the service does for remote clients.
"""

from __future__ import annotations

import argparse
import http.client
import io
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request

import numpy as np

ROWS = (1, 100, 10_000)
CLIENTS = (1, 16)
REQUESTS = {1: 800, 100: 400, 10_000: 16}  # per case, split over the clients
WIDTH = 784


def make_model(folder: str) -> str:
    """A routine file of the MNIST shape (one short fit on random rows)."""
    from paradime_core import ParametricUMAP

    X = np.random.default_rng(0).random((1000, WIDTH), dtype=np.float32)
    path = os.path.join(folder, "umap784.pt")
    ParametricUMAP(epochs=1, batches_per_epoch=2, init="random", random_state=0).fit(X).save(path)
    return path


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_service(model: str, store: str, port: int, threads: int | None) -> subprocess.Popen:
    command = [sys.executable, "-m", "pipelines.cli", "serve", model, "--store", store, "--port", str(port),
               "--max-request-mb", "512"]
    if threads:
        command += ["--torch-threads", str(threads)]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"paradime serve ended: {process.communicate()}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=5) as answer:
                if answer.status == 200:
                    return process
        except OSError:
            time.sleep(0.2)
    process.kill()
    raise SystemExit("paradime serve did not answer within 300 s")


def body_for(rows: np.ndarray, fmt: str) -> tuple[bytes, dict[str, str]]:
    if fmt == "npy":
        buffer = io.BytesIO()
        np.save(buffer, rows.astype(np.float32))
        return buffer.getvalue(), {"Content-Type": "application/x-npy"}
    return json.dumps({"rows": rows.tolist()}).encode(), {"Content-Type": "application/json"}


def client(port: int, body: bytes, headers: dict[str, str], count: int, latencies: list[float],
           failures: list[str]) -> None:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=600)
    for _ in range(count):
        start = time.perf_counter()
        connection.request("POST", "/embed", body=body, headers=headers)
        answer = connection.getresponse()
        answer.read()
        latencies.append(time.perf_counter() - start)
        if answer.status != 200:
            failures.append(str(answer.status))
    connection.close()


def run_case(port: int, n_rows: int, n_clients: int, fmt: str, rng: np.random.Generator) -> dict[str, object]:
    body, headers = body_for(rng.integers(0, 256, size=(n_rows, WIDTH)).astype(np.float64), fmt)
    total = max(REQUESTS[n_rows], n_clients)
    per_client = [total // n_clients + (i < total % n_clients) for i in range(n_clients)]
    latencies: list[float] = []
    failures: list[str] = []
    client(port, body, headers, 1, [], failures)  # warm-up
    threads = [threading.Thread(target=client, args=(port, body, headers, count, latencies, failures))
               for count in per_client]
    start = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    seconds = time.perf_counter() - start
    ms = np.asarray(latencies) * 1000
    return {"bench": "serve", "format": fmt, "rows": n_rows, "clients": n_clients, "requests": len(latencies),
            "failures": len(failures), "body_bytes": len(body), "seconds": round(seconds, 3),
            "requests_per_s": round(len(latencies) / seconds, 1), "rows_per_s": round(len(latencies) * n_rows / seconds),
            "p50_ms": round(float(np.percentile(ms, 50)), 2), "p99_ms": round(float(np.percentile(ms, 99)), 2)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", help="Model to serve (default: a 784 -> 2 routine file made here).")
    parser.add_argument("--store", help="Artifact store (default: a temporary folder).")
    parser.add_argument("--formats", nargs="+", default=["json"], choices=["json", "npy"])
    parser.add_argument("--torch-threads", type=int, help="The service's torch threads (default: all cores).")
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    with tempfile.TemporaryDirectory(prefix="paradime-serve-bench-") as folder:
        model = args.model or make_model(folder)
        store = args.store or os.path.join(folder, "store")
        port = free_port()
        process = start_service(model, store, port, args.torch_threads)
        results = []
        try:
            for fmt in args.formats:
                for n_rows in ROWS:
                    for n_clients in CLIENTS:
                        result = run_case(port, n_rows, n_clients, fmt, rng)
                        print(json.dumps(result), flush=True)
                        results.append(result)
        finally:
            process.send_signal(signal.SIGTERM)
            process.communicate(timeout=60)
    print("\n| body | rows/request | clients | requests | requests/s | rows/s | p50 ms | p99 ms |")
    print("|---|---|---|---|---|---|---|---|")
    for r in results:
        print(f"| {r['format']} | {r['rows']:,} | {r['clients']} | {r['requests']} | {r['requests_per_s']:,} | "
              f"{r['rows_per_s']:,} | {r['p50_ms']} | {r['p99_ms']} |")


if __name__ == "__main__":
    main()
