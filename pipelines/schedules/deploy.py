"""The retrain flow as a Prefect deployment on a cron schedule (``paradime serve``).

``serve`` runs the deployment in this process: Prefect's scheduler creates a flow run at
every cron tick and this process executes it. Each run re-reads the data path; unchanged
data makes every stage a cache hit (a run of a few seconds), new data (a changed file, or a
new part file in a folder) makes a new dataset version, recomputes its relations and
retrains, warm-starting from the previous model unless ``warm_start`` is off. A Prefect
server (``prefect server start``, ``PREFECT_API_URL``) keeps the schedule and shows the
runs in its UI; without one Prefect starts a temporary local server for the process.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pipelines.errors import PipelineError


def build_deployment(spec: str, data: str, *, cron: str = "0 3 * * *", name: str | None = None,
                     store: str | None = None, warm_start: bool = True, dask_address: str | None = None,
                     seed: int = 0, out_dim: int = 2, timezone: str | None = None) -> Any:
    """A ``RunnerDeployment`` of the retrain flow with a cron schedule and fixed parameters."""
    from prefect.schedules import Cron

    from pipelines.flows import retrain_flow

    try:
        schedule = Cron(cron, timezone=timezone) if timezone else Cron(cron)
    except (ValueError, TypeError) as exc:
        raise PipelineError(f"invalid cron schedule '{cron}': {exc}") from None
    parameters = {"spec": spec, "data": data, "store": store, "dask_address": dask_address,
                  "warm_start": warm_start, "seed": seed, "out_dim": out_dim, "progress": False}
    stem = Path(spec).stem if "\n" not in spec else "spec"
    return retrain_flow.to_deployment(
        name=name or f"retrain-{stem}",
        schedules=[schedule],
        parameters=parameters,
        tags=["paradime", "retrain"],
        description=f"Retrain {stem} on {data} ({cron}); warm start: {warm_start}",
    )


def serve_deployments(*deployments: Any) -> None:
    """Serve the deployments until interrupted (blocking)."""
    from prefect import serve

    serve(*deployments)
