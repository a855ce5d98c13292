"""Deployments of the fit, retrain and embed flows: served by ``paradime schedule`` or run by a
work pool's workers (``paradime deploy``).

``schedule`` runs one deployment in the calling process: Prefect's scheduler creates a flow
run at every cron tick and this process executes it. ``deploy`` registers a deployment with
a work pool: any ``prefect worker start --pool NAME`` started in an environment where
paradime is installed executes its runs (on a schedule, from the UI, or with ``prefect
deployment run``), loading the flow from this installation's source folder.

Both need a Prefect server that outlives the command (``prefect server start`` and
``PREFECT_API_URL``): Prefect's temporary server of ephemeral mode keeps no schedules and
no worker can reach it. Both store absolute locations (spec file, data, store), fixed at
creation (:mod:`pipelines.schedules.deployed`), and validate parameters against the flow's
schema. Each run re-reads the data: unchanged data makes every stage a cache hit, new data
makes a new dataset version of its lineage and retrains from the previous version's model.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from pipelines.errors import PipelineError

START_SERVER_HINT = ("start one with `prefect server start` and export "
                     "PREFECT_API_URL=http://127.0.0.1:4200/api")


def prefect_api_url() -> str:
    """The URL of a reachable Prefect API (``PREFECT_API_URL``); a one-line error otherwise."""
    import httpx
    from prefect.settings import PREFECT_API_URL

    url = os.environ.get("PREFECT_API_URL") or PREFECT_API_URL.value()
    if not url:
        raise PipelineError(f"no Prefect API is set (PREFECT_API_URL): {START_SERVER_HINT}")
    try:
        response = httpx.get(f"{url.rstrip('/')}/health", timeout=5.0)
        response.raise_for_status()
    except (httpx.HTTPError, OSError) as exc:
        raise PipelineError(f"the Prefect API at {url} is not reachable ({type(exc).__name__}): "
                            f"{START_SERVER_HINT}") from None
    return url


def cron_schedule(cron: str, timezone: str | None) -> Any:
    """A Prefect cron schedule; a one-line error for a malformed expression or time zone."""
    from prefect.schedules import Cron

    try:
        return Cron(cron, timezone=timezone) if timezone else Cron(cron)
    except (ValueError, TypeError) as exc:
        raise PipelineError(f"invalid cron schedule '{cron}': {exc}") from None


def absolute(location: str | None) -> str | None:
    """A local path made absolute (a run may start in another folder); URLs and names unchanged."""
    if location is None or "://" in location or location.startswith("datasets/"):
        return location
    path = Path(location).expanduser()
    if path.exists() or os.sep in location or location.startswith("."):
        return str(path.resolve())
    return location  # a bundled spec or dataset name


def deployment_parameters(flow_kind: str, target: str, data: str, store: str, **options: Any) -> dict[str, Any]:
    """The parameters of a ``flow_kind`` deployment: absolute locations, then the options given.

    ``target`` is the spec (fit, retrain) or the model (embed); options left at None are
    omitted (the flow's defaults apply).
    """
    from pipelines.schedules.deployed import DEPLOYED_FLOWS

    if flow_kind not in DEPLOYED_FLOWS:
        raise PipelineError(f"--flow: unknown flow '{flow_kind}' (one of {', '.join(DEPLOYED_FLOWS)})")
    first = "model" if flow_kind == "embed" else "spec"
    parameters = {first: absolute(target), "data": absolute(data), "store": absolute(store)}
    accepted = DEPLOYED_FLOWS[flow_kind].parameters.properties
    parameters.update({k: (absolute(v) if k == "out" else v) for k, v in options.items()
                       if v is not None and k in accepted})
    return parameters


def _describe(flow_kind: str, parameters: dict[str, Any], cron: str | None) -> str:
    target = parameters.get("spec") or parameters.get("model")
    when = f" ({cron})" if cron else ""
    return f"paradime {flow_kind} of {target} on {parameters['data']} into {parameters['store']}{when}"


def default_name(flow_kind: str, target: str) -> str:
    stem = Path(target).stem if "\n" not in target else "spec"
    return f"{flow_kind}-{stem}"


def build_deployment(flow_kind: str, target: str, data: str, store: str, *, cron: str | None = None,
                     name: str | None = None, timezone: str | None = None, **options: Any) -> Any:
    """A ``RunnerDeployment`` for ``paradime schedule`` (served by the calling process)."""
    from pipelines.schedules.deployed import DEPLOYED_FLOWS

    parameters = deployment_parameters(flow_kind, target, data, store, **options)
    schedules = [cron_schedule(cron, timezone)] if cron else []
    return DEPLOYED_FLOWS[flow_kind].to_deployment(
        name=name or default_name(flow_kind, target), schedules=schedules, parameters=parameters,
        tags=["paradime", flow_kind], description=_describe(flow_kind, parameters, cron),
        enforce_parameter_schema=True)


def serve_deployments(*deployments: Any) -> None:
    """Serve the deployments until interrupted (blocking)."""
    from prefect import serve

    serve(*deployments)


def source_folder() -> Path:
    """The folder holding the ``pipelines`` package of this installation (a worker loads the
    deployed flows from it)."""
    import pipelines

    return Path(pipelines.__file__).resolve().parent.parent


def deploy_to_pool(flow_kind: str, target: str, data: str, store: str, *, pool: str, cron: str | None = None,
                   name: str | None = None, timezone: str | None = None, **options: Any) -> str:
    """Register a ``flow_kind`` deployment with work pool ``pool``; returns its id.

    The pool must exist (``prefect work-pool create NAME --type process``). Its workers run
    the flow from :func:`source_folder` in their own environment.
    """
    from prefect import flow as prefect_flow
    from prefect.client.orchestration import get_client
    from prefect.exceptions import ObjectNotFound

    with get_client(sync_client=True) as client:
        try:
            client.read_work_pool(pool)
        except ObjectNotFound:
            raise PipelineError(f"work pool '{pool}' does not exist: create it with "
                                f"`prefect work-pool create {pool} --type process`") from None
    parameters = deployment_parameters(flow_kind, target, data, store, **options)
    entrypoint = f"pipelines/schedules/deployed.py:deployed_{flow_kind}"
    loaded = prefect_flow.from_source(source=str(source_folder()), entrypoint=entrypoint)
    schedules = [cron_schedule(cron, timezone)] if cron else None
    deployment_id = loaded.deploy(
        name=name or default_name(flow_kind, target), work_pool_name=pool, parameters=parameters,
        schedules=schedules, tags=["paradime", flow_kind], description=_describe(flow_kind, parameters, cron),
        enforce_parameter_schema=True, build=False, push=False, print_next_steps=False)
    return str(deployment_id)
