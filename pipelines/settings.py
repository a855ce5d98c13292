"""Process-wide settings of the pipelines layer: Prefect's offline defaults and the store root.

Prefect reads its settings when it is first imported, so :func:`apply_prefect_defaults` runs
when ``pipelines`` is imported (before any module here imports prefect) and only fills in
variables the user has not set:

- ``PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS=90``: the temporary local server takes
  7-19 s to start on two busy cores (Prefect's default limit is 20 s);
- ``PREFECT_SERVER_ANALYTICS_ENABLED=false`` and ``DO_NOT_TRACK=1``: no telemetry (offline,
  a failing DNS lookup otherwise logs errors).

Training phases run with ``--torch-threads`` / ``$PARADIME_TORCH_THREADS`` torch threads,
by default every available core (:func:`torch_threads`; the previous setting is restored
afterwards). Embedding tasks on Dask workers use one thread each.

The artifact store root is ``--store`` if given, else ``$PARADIME_STORE``, else
``./.paradime/store``; any fsspec URL works (``s3://bucket/prefix``, ``memory://x``).
"""

from __future__ import annotations

import os
from pathlib import Path

PREFECT_DEFAULTS: dict[str, str] = {
    "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "90",
    "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
    "DO_NOT_TRACK": "1",
}
STORE_ENV = "PARADIME_STORE"
TORCH_THREADS_ENV = "PARADIME_TORCH_THREADS"
DEFAULT_STORE = Path(".paradime") / "store"


def apply_prefect_defaults() -> None:
    """Set Prefect's offline defaults in ``os.environ`` where the user has not set them."""
    for name, value in PREFECT_DEFAULTS.items():
        os.environ.setdefault(name, value)


def store_url(explicit: str | os.PathLike[str] | None = None) -> str:
    """The store root: ``explicit``, else ``$PARADIME_STORE``, else ``./.paradime/store``.

    Local paths are made absolute (Dask workers and later runs may have another cwd).
    """
    url = str(explicit) if explicit else os.environ.get(STORE_ENV) or str(DEFAULT_STORE)
    if "://" not in url:
        url = str(Path(url).expanduser().resolve())
    return url


def available_cores() -> int:
    """The cores this process may run on (its CPU affinity where the OS tells it)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)


def torch_threads(explicit: int | None = None) -> int:
    """Torch threads of a training phase: ``explicit``, else ``$PARADIME_TORCH_THREADS``, else
    every available core (a phase runs alone in its process; embedding tasks on Dask workers
    use one thread each instead)."""
    if explicit is not None:
        return max(1, int(explicit))
    try:
        return max(1, int(os.environ.get(TORCH_THREADS_ENV, "") or available_cores()))
    except ValueError:
        return available_cores()
