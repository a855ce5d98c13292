"""Run the embedding service: resolve the model, listen, serve until SIGTERM or Ctrl-C.

The socket is bound before uvicorn starts, so a taken port or a bad host is a one-line user
error, and ``--port 0`` serves on a free port chosen by the system (the announced address
names it). SIGTERM and the first Ctrl-C stop accepting connections, let running requests
finish (at most :data:`GRACEFUL_SECONDS`) and return normally, so the command exits with
status 0; a second Ctrl-C stops at once.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import socket
import sys
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from types import FrameType

import uvicorn

from pipelines.errors import PipelineError
from pipelines.serving.app import DEFAULT_MAX_REQUEST_BYTES, create_app
from pipelines.serving.embedder import Embedder, ModelInfo

GRACEFUL_SECONDS = 10
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


@dataclass(frozen=True)
class ServeOptions:
    """How ``paradime serve`` listens and computes."""

    host: str = "127.0.0.1"
    port: int = 8000
    token: str | None = None
    max_request_bytes: int = DEFAULT_MAX_REQUEST_BYTES
    method: str = "embed"
    torch_threads: int | None = None
    access_log: bool = False


class _Server(uvicorn.Server):
    """uvicorn's server with stop signals that end :meth:`run` normally (no re-raised signal)."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        if threading.current_thread() is not threading.main_thread():
            yield
            return
        previous = {sig: signal.signal(sig, self._stop) for sig in STOP_SIGNALS}
        try:
            yield
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)

    def _stop(self, sig: int, frame: FrameType | None) -> None:
        if self.should_exit and sig == signal.SIGINT:
            self.force_exit = True
        self.should_exit = True


def listen(host: str, port: int) -> socket.socket:
    """A listening TCP socket on ``host:port`` (:class:`PipelineError` if that fails)."""
    try:
        family, kind, proto, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
        sock = socket.socket(family, kind, proto)
    except (OSError, UnicodeError) as exc:
        raise PipelineError(f"cannot listen on {host}:{port}: {exc}") from None
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
        sock.listen(2048)
    except OSError as exc:
        sock.close()
        raise PipelineError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None
    return sock


def serve_model(model: str, store: str | None, options: ServeOptions, seed: int = 0, out_dim: int = 2,
                announce: Callable[[ModelInfo, str], None] | None = None) -> None:
    """Serve ``model`` (a stored key, a ``.pt`` routine file or a spec) until stopped.

    Parameters
    ----------
    model : str
        What ``paradime embed`` accepts as its model (:func:`pipelines.flows.resolve_model`).
    store : str or None
        Artifact store root (default ``$PARADIME_STORE`` or ``./.paradime/store``).
    options : ServeOptions
        Address, token, size limit, model method, torch threads, access log.
    seed : int
        With a spec as ``model``: the seed it was fitted with.
    out_dim : int
        With a spec as ``model``: the embedding dimension it was fitted with.
    announce : callable or None
        Called with the model's description and the service's URL once it is ready.
    """
    from pipelines.flows import resolve_model
    from pipelines.settings import available_cores, torch_threads
    from pipelines.store import ArtifactStore

    st = ArtifactStore(store)
    key = resolve_model(model, st, seed, out_dim)
    if options.max_request_bytes < 1:
        raise PipelineError("the request size limit must be positive")
    sock = listen(options.host, options.port)
    embedder = None
    try:
        embedder = Embedder(st, key, options.method, torch_threads(options.torch_threads))
        app = create_app(embedder, options.token, options.max_request_bytes, workers=available_cores())
        config = uvicorn.Config(app, log_level="warning", access_log=options.access_log, lifespan="off",
                                timeout_graceful_shutdown=GRACEFUL_SECONDS)
        server = _Server(config)
        if announce is not None:
            host, port = sock.getsockname()[:2]
            shown = f"[{host}]" if ":" in host else host
            announce(embedder.info, f"http://{shown}:{port}")
        server.run(sockets=[sock])
    finally:
        sock.close()
        if embedder is not None:
            embedder.close()


def exit_at_once(status: int = 0) -> None:
    """End the process with ``status`` once the service has stopped, skipping the
    interpreter's teardown of torch, prefect and zarr (seconds on a busy machine).

    Only called after :func:`serve_model` returned: the socket is closed, the model's
    worker thread joined and nothing else is being written; the standard streams and the
    logging handlers are flushed first.
    """
    logging.shutdown()
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            stream.flush()
    os._exit(status)
