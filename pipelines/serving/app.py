"""The HTTP interface of ``paradime serve``.

``GET /health``
    ``{"status": "ok", "model": key, "method": ..., "input_width": d_in, "output_width": d_out,
    "spec": name}``.
``POST /embed``
    A JSON body ``{"rows": [[...], ...]}`` (``Content-Type: application/json``) answers
    ``{"embedding": [[...], ...]}``; an NPY body (``Content-Type: application/x-npy``, a 2-D
    numeric array as ``numpy.save`` writes it) answers an NPY float32 array. ``Accept``
    chooses the answer's format otherwise (``application/x-npy`` or ``application/json``).
    JSON numbers are the float32 results written exactly (as float64).

Every error is a JSON object ``{"error": "..."}``: 400 (unreadable body), 401 (missing or
wrong bearer token), 413 (body over the size limit, see :func:`read_limited`), 415 (other
content type), 422 (rows that cannot be embedded: none, ragged, not numeric, wrong width,
NaN or inf). With a token set, every path needs ``Authorization: Bearer <token>``
(compared in constant time).
"""

from __future__ import annotations

import hmac
import io
import logging
from typing import Any

import anyio
import numpy as np
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from pipelines.serving.embedder import Embedder, RowsError

NPY = "application/x-npy"
JSON = "application/json"
DEFAULT_MAX_REQUEST_BYTES = 64 * 2**20
DRAIN_FACTOR = 4

log = logging.getLogger("pipelines.serving")


class RequestFailed(Exception):
    """A request answered with ``status`` and ``{"error": message}``."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status
        self.message = message


def create_app(embedder: Embedder, token: str | None = None,
               max_request_bytes: int = DEFAULT_MAX_REQUEST_BYTES, workers: int = 2) -> FastAPI:
    """The FastAPI application serving ``embedder``.

    Parameters
    ----------
    embedder : Embedder
        The loaded model.
    token : str or None
        Bearer token every request must carry; None serves without authentication.
    max_request_bytes : int
        Largest request body accepted (larger ones get 413 before they are read whole).
    workers : int
        Requests whose body is decoded, checked and encoded at the same time; the others
        wait their turn, so a burst of large requests is answered first come, first served
        and holds at most ``workers`` decoded batches in memory.
    """
    app = FastAPI(title="paradime embedding service", docs_url=None, redoc_url=None, openapi_url=None)
    expected = f"Bearer {token}".encode() if token else None
    slots = anyio.CapacityLimiter(max(1, int(workers)))

    async def authenticate(request: Request, call_next: Any) -> Response:
        given = request.headers.get("authorization", "").encode()
        if not hmac.compare_digest(given, expected):
            return JSONResponse({"error": "missing or wrong bearer token"}, status_code=401,
                                headers={"WWW-Authenticate": "Bearer"})
        return await call_next(request)

    if expected is not None:
        app.middleware("http")(authenticate)

    @app.exception_handler(RequestFailed)
    async def request_failed(request: Request, exc: RequestFailed) -> JSONResponse:
        return JSONResponse({"error": exc.message}, status_code=exc.status)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        return JSONResponse({"error": str(exc.detail)}, status_code=exc.status_code, headers=exc.headers)

    @app.exception_handler(Exception)
    async def internal_error(request: Request, exc: Exception) -> JSONResponse:
        log.exception("embedding failed")
        return JSONResponse({"error": f"internal error: {type(exc).__name__}"}, status_code=500)

    @app.get("/health")
    async def health() -> dict[str, Any]:
        return {"status": "ok", **embedder.info.to_dict()}

    @app.post("/embed")
    async def embed(request: Request) -> Response:
        content_type = request.headers.get("content-type", JSON).split(";")[0].strip().lower()
        if content_type not in (JSON, NPY):
            raise RequestFailed(415, f"content type must be {JSON} or {NPY}, got {content_type}")
        body = await read_limited(request, max_request_bytes)
        answer_type = answer_format(request.headers.get("accept", ""), content_type)
        async with slots:
            return Response(await anyio.to_thread.run_sync(answer, body, content_type, answer_type),
                            media_type=answer_type)

    def answer(body: bytes, content_type: str, answer_type: str) -> bytes:
        embedding = embedder.embed(parse_rows(body, content_type, embedder))
        return npy_bytes(embedding) if answer_type == NPY else json_bytes(embedding)

    return app


async def read_limited(request: Request, limit: int) -> bytes:
    """The request body, refused with 413 when it exceeds ``limit`` bytes (declared or sent).

    A client that announced ``Expect: 100-continue`` is refused before it sends the body.
    Otherwise the rest of an oversized body is read and dropped, up to
    :data:`DRAIN_FACTOR` times the limit, so that clients which send the whole body before
    reading the answer (most of them) receive the 413 instead of a reset connection.
    """
    declared = request.headers.get("content-length", "")
    declared_size = int(declared) if declared.isdigit() else None
    if declared_size is not None and declared_size > limit and \
            "100-continue" in request.headers.get("expect", "").lower():
        raise RequestFailed(413, f"request body of {declared_size} bytes exceeds the limit of {limit} bytes")
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size <= limit:
            chunks.append(chunk)
        elif size > DRAIN_FACTOR * limit:
            break
    if size > limit:
        shown = declared_size if declared_size is not None else f"more than {limit}"
        raise RequestFailed(413, f"request body of {shown} bytes exceeds the limit of {limit} bytes")
    return b"".join(chunks)


def parse_rows(body: bytes, content_type: str, embedder: Embedder) -> np.ndarray:
    """The checked rows of a JSON or NPY body (:class:`RequestFailed` 400 or 422 otherwise)."""
    if content_type == NPY:
        try:
            rows: Any = np.load(io.BytesIO(body), allow_pickle=False)
        except (ValueError, OSError, EOFError) as exc:
            raise RequestFailed(400, f"body is not an NPY array ({exc})") from None
    else:
        import orjson

        try:
            document = orjson.loads(body)
        except orjson.JSONDecodeError as exc:
            raise RequestFailed(400, f"body is not valid JSON ({exc})") from None
        if not isinstance(document, dict) or "rows" not in document:
            raise RequestFailed(422, 'body must be a JSON object {"rows": [[...], ...]}')
        rows = document["rows"]
        if not isinstance(rows, list):
            raise RequestFailed(422, '"rows" must be a list of rows')
    try:
        return embedder.check(rows)
    except RowsError as exc:
        raise RequestFailed(422, str(exc)) from None


def answer_format(accept: str, content_type: str) -> str:
    """NPY when the client accepts it explicitly, or sent NPY without asking for JSON."""
    accept = accept.lower()
    if NPY in accept:
        return NPY
    if content_type == NPY and JSON not in accept:
        return NPY
    return JSON


def npy_bytes(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, np.ascontiguousarray(array), allow_pickle=False)
    return buffer.getvalue()


def json_bytes(embedding: np.ndarray) -> bytes:
    import orjson

    return orjson.dumps({"embedding": np.ascontiguousarray(embedding, dtype=np.float64)},
                        option=orjson.OPT_SERIALIZE_NUMPY)
