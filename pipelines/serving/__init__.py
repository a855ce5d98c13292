"""``paradime serve``: a trained model as an HTTP embedding service (FastAPI + uvicorn).

- :mod:`pipelines.serving.embedder`: the model, loaded once, and the checks a batch of rows
  passes before it reaches the model;
- :mod:`pipelines.serving.app`: the HTTP interface (``GET /health``, ``POST /embed``), bearer
  token and request size limit;
- :mod:`pipelines.serving.server`: the listening socket, uvicorn, and a clean stop on
  SIGTERM or Ctrl-C.
"""
