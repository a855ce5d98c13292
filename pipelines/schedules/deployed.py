"""The flows that deployments run: fit, retrain and embed with validated, pinned parameters.

A deployment (``paradime schedule`` or ``paradime deploy``) fixes its *locations* when it is
created: the spec (or model), the data, the store and, for embedding, the output. Every
other parameter is typed and bounded (``seed >= 0``, ``out_dim`` 1-1024, ``torch_threads``
>= 1, a device name such as ``cpu`` or ``cuda:0``), so Prefect refuses a run whose
parameters do not fit the schema when it is created (deployments are made with
``enforce_parameter_schema=True``) and the flow validates them again when it starts
(``validate_parameters=True``). A run that asks for other locations than the deployment's
(``prefect deployment run ... --param store=/elsewhere``) fails before it reads or writes
anything: the flow compares its locations with the deployment's own parameters.

The flows carry the names of the interactive ones (``paradime-fit``, ``paradime-retrain``,
``paradime-embed``), so the UI shows deployed and interactive runs together.
"""

from __future__ import annotations

from typing import Annotated, Any

from prefect import flow
from pydantic import Field

from pipelines.errors import PipelineError
from pipelines.flows import REFIT_FRONT_DEFAULT, RunResult, run_embed, run_spec

PINNED = ("spec", "model", "data", "store", "out")
"""Parameters a run of a deployment may not change."""

Seed = Annotated[int, Field(ge=0, le=2**32 - 1)]
OutDim = Annotated[int, Field(ge=1, le=1024)]
Threads = Annotated[int, Field(ge=1, le=4096)]
Device = Annotated[str, Field(pattern=r"^(cpu|cuda(:\d+)?|mps|xpu(:\d+)?)$")]
Location = Annotated[str, Field(min_length=1, max_length=4096)]
Name = Annotated[str, Field(min_length=1, max_length=200)]
Method = Annotated[str, Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]*$", max_length=100)]


def deployment_parameters() -> dict[str, Any] | None:
    """The parameters the current flow run's deployment was created with (None outside one)."""
    from prefect.client.orchestration import get_client
    from prefect.runtime import deployment

    deployment_id = deployment.id
    if deployment_id is None:
        return None
    with get_client(sync_client=True) as client:
        return dict(client.read_deployment(deployment_id).parameters or {})


def check_pinned(given: dict[str, Any], fixed: dict[str, Any] | None) -> None:
    """Refuse a run whose locations differ from those its deployment fixed.

    Parameters
    ----------
    given : dict
        The run's parameters.
    fixed : dict or None
        The deployment's parameters (None: not a deployment run, nothing is pinned).
    """
    if fixed is None:
        return
    for name in PINNED:
        if name in given and given.get(name) != fixed.get(name):
            raise PipelineError(f"parameter '{name}': this deployment fixes it to {fixed.get(name)!r}; "
                                f"a run cannot set it to {given.get(name)!r} (create another deployment)")


@flow(name="paradime-fit", validate_parameters=True)
def deployed_fit(spec: Location, data: Location, store: Location, seed: Seed = 0, out_dim: OutDim = 2,
                 label_column: Name | None = None, device: Device = "cpu", torch_threads: Threads | None = None,
                 lineage: Name | None = None, dask_address: Location | None = None) -> RunResult:
    """Fit ``spec`` on ``data`` into ``store`` (the locations the deployment fixed)."""
    check_pinned({"spec": spec, "data": data, "store": store}, deployment_parameters())
    return run_spec(spec, data, store, dask_address=dask_address, seed=seed, out_dim=out_dim,
                    label_column=label_column, progress=False, device=device, flow_name="fit",
                    torch_threads=torch_threads, lineage=lineage)


@flow(name="paradime-retrain", validate_parameters=True)
def deployed_retrain(spec: Location, data: Location, store: Location, warm_start: bool = True,
                     refit_front: bool = REFIT_FRONT_DEFAULT, seed: Seed = 0, out_dim: OutDim = 2,
                     label_column: Name | None = None, device: Device = "cpu",
                     torch_threads: Threads | None = None, lineage: Name | None = None,
                     dask_address: Location | None = None) -> RunResult:
    """Retrain ``spec`` on the current contents of ``data`` (a new version of its lineage)."""
    check_pinned({"spec": spec, "data": data, "store": store}, deployment_parameters())
    return run_spec(spec, data, store, dask_address=dask_address, seed=seed, out_dim=out_dim,
                    label_column=label_column, progress=False, device=device, warm_start=warm_start,
                    flow_name="retrain", torch_threads=torch_threads, lineage=lineage, refit_front=refit_front)


@flow(name="paradime-embed", validate_parameters=True)
def deployed_embed(model: Location, data: Location, store: Location, out: Location | None = None,
                   method: Method = "embed", seed: Seed = 0, out_dim: OutDim = 2, label_column: Name | None = None,
                   dask_address: Location | None = None) -> RunResult:
    """Embed ``data`` with ``model`` (a stored key, a ``.pt`` file, or a spec's latest model)."""
    check_pinned({"model": model, "data": data, "store": store, "out": out}, deployment_parameters())
    return run_embed(model, data, store, dask_address=dask_address, out=out, method=method,
                     label_column=label_column, progress=False, seed=seed, out_dim=out_dim)


DEPLOYED_FLOWS = {"fit": deployed_fit, "retrain": deployed_retrain, "embed": deployed_embed}
