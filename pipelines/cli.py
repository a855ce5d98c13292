"""The ``paradime`` command line: run specs as Prefect flows, embed, retrain, export, serve over HTTP,
schedule and deploy them, manage the cache.

Every command takes ``--store`` (default ``$PARADIME_STORE`` or ``./.paradime/store``).
How a command ends (:mod:`pipelines.command_endings`):

- a user mistake (bad path, bad spec, bad data, unknown model): one red ``error:`` line,
  exit status 1, never a traceback;
- an unexpected internal error: one ``error: internal error`` line naming a log file that
  holds the traceback (:mod:`pipelines.crash_log`), exit status 2; ``--verbose`` also shows
  the traceback;
- SIGINT (Ctrl-C) or SIGTERM: one ``interrupted`` line within seconds, exit status 130 or
  143, no process left behind (:mod:`pipelines.lifetime`); completed stages stay stored.

Heavy modules (torch, prefect, dask) are imported inside the commands, so ``--help`` and
``specs`` answer at once.
"""

from __future__ import annotations

import json
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

import pipelines  # noqa: F401  (Prefect's offline defaults)
from pipelines.command_endings import (
    errors,
    one_line,
    quiet_prefect_console,
    say_interrupted,
    user_errors,
)

app = typer.Typer(help="paradime: parametric dimensionality reduction as cached Prefect flows.",
                  no_args_is_help=True, add_completion=False, pretty_exceptions_enable=False)
cache_app = typer.Typer(help="Inspect and clean the artifact store.", no_args_is_help=True)
app.add_typer(cache_app, name="cache")

console = Console()

STORE_HELP = "Artifact store root: a folder or fsspec URL (default: $PARADIME_STORE or ./.paradime/store)."
DASK_HELP = "Address of a running Dask scheduler (default: a local cluster sized to this machine)."
LINEAGE_HELP = "Lineage the data is a version of (default: its source path); retraining warm-starts within it."
REFIT_HELP = "On a warm start, refit the front layers (PCA) on the new version, or keep the stored ones."
STATUS_STYLE = {"cached": "green", "computed": "yellow", "recomputed": "magenta"}


def _version(value: bool) -> None:
    if value:
        from importlib.metadata import PackageNotFoundError, version

        try:
            number = version("paradime")
        except PackageNotFoundError:  # a source tree on sys.path, not installed
            from paradime_core import __version__ as number
        console.print(f"paradime {number}")
        raise typer.Exit()


@app.callback()
def _options(
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True,
                                 help="Print the installed version and exit."),
) -> None:
    """paradime: parametric dimensionality reduction as cached Prefect flows."""


def _print_result(result: Any, as_json: bool) -> None:
    if as_json:
        console.print_json(json.dumps(result.to_dict(), default=str))
        return
    table = Table(title=f"paradime {result.flow}", show_lines=False)
    for column in ("stage", "name", "status", "seconds", "key"):
        table.add_column(column, justify="right" if column == "seconds" else "left")
    for record in result.records:
        style = STATUS_STYLE.get(record.status, "white")
        table.add_row(record.kind, record.name, f"[{style}]{record.status}[/{style}]", f"{record.seconds:.2f}",
                      record.key[:12])
    console.print(table)
    for label, value in (("dataset", result.dataset_key), ("model", result.model_key),
                         ("embedding", result.embedding_key), ("output", result.output)):
        if value:
            console.print(f"{label:>10}: {value}")
    if result.dataset_version:
        console.print(f"{'version':>10}: {result.dataset_version} of lineage {result.lineage}")
    if result.start is not None:
        console.print(f"{'start':>10}: {result.start.describe()}")
    if result.metrics:
        console.print(f"{'metrics':>10}: " + ", ".join(f"{k} {v:.4f}" for k, v in result.metrics.items()))
    console.print(f"{'store':>10}: {result.store}   ({result.seconds:.1f} s)")


def _check_spec(spec: str, store: str | None, seed: int, out_dim: int) -> None:
    """Fail early (before Prefect starts) on a bad spec; a spec text run before is not re-parsed."""
    from pipelines.bundled import SpecHandle
    from pipelines.store import ArtifactStore

    SpecHandle(spec).validate(ArtifactStore(store), seed, out_dim)


def _check_out(out: str, overwrite: bool, inputs: list[str], store: str | None) -> None:
    """Fail early (before any work) on an output that would replace user data."""
    from pipelines.outputs import check_output
    from pipelines.store import ArtifactStore

    st = ArtifactStore(store)
    check_output(out, overwrite=overwrite, inputs=inputs, store_root=st.root if st.is_local else None)


def _check_exports(formats: list[str], out: str | None) -> None:
    """``--export`` names known formats and comes with ``--out``."""
    from pipelines.errors import PipelineError
    from pipelines.exporting import FORMATS

    unknown = [f for f in formats if f not in FORMATS]
    if unknown:
        raise PipelineError(f"--export must be one of {', '.join(FORMATS)}, got '{unknown[0]}'")
    if formats and not out:
        raise PipelineError("--export needs --out (the folder the exports go to)")


def _write_outputs(result: Any, out: str | None, overwrite: bool, inputs: list[str], store: str | None,
                   exports: list[str]) -> None:
    """A fit's ``--out`` folder: the embedding, its plot and the ``--export`` formats."""
    if not out:
        return
    from pipelines.flows import export_run
    from pipelines.store import ArtifactStore

    result.output = ", ".join(export_run(ArtifactStore(store), result, out, overwrite, inputs,
                                         exports=tuple(dict.fromkeys(exports))))


def _check_data(data: str) -> None:
    """Fail early (before Prefect starts) on data that does not exist."""
    from pipelines.ingest import probe

    if not data.startswith("datasets/"):
        probe(data)


# --------------------------------------------------------------------------- commands
@app.command()
def run(
    spec: str = typer.Argument(..., help="Spec file (YAML/JSON) or the name of a bundled spec (see `paradime specs`)."),
    data: str = typer.Option(..., "--data", "-d", help="Data: .npz .npy .csv .parquet .zarr .nc, a folder of parts, or a stored dataset key."),
    store: str | None = typer.Option(None, "--store", help=STORE_HELP),
    dask_address: str | None = typer.Option(None, "--dask-address", help=DASK_HELP),
    seed: int = typer.Option(0, help="Seed of model initialisation and sampling."),
    out_dim: int = typer.Option(2, "--out-dim", help="Embedding dimension of the default model."),
    label_column: str | None = typer.Option(None, "--label-column", help="Label column of a table (default: y/label/target/class)."),
    device: str = typer.Option("cpu", help="Torch device for training (cpu, cuda)."),
    torch_threads: int | None = typer.Option(None, "--torch-threads", help="Torch threads while training (default $PARADIME_TORCH_THREADS, else all cores)."),
    prefect: bool = typer.Option(True, "--prefect/--no-prefect", help="Run as a Prefect flow (default) or as plain Python."),
    progress: bool = typer.Option(True, "--progress/--no-progress", help="Progress bars."),
    as_json: bool = typer.Option(False, "--json", help="Print the run record as JSON."),
    verbose: bool = typer.Option(False, "--verbose", "-v", help="Show Prefect's logs and the traceback of an internal error."),
    out: str | None = typer.Option(None, "--out", "-o", help="Also write embedding.npy and embedding.png to this folder."),
    lineage: str | None = typer.Option(None, "--lineage", help=LINEAGE_HELP),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace an existing --out that paradime wrote (never anything else)."),
    export: list[str] = typer.Option([], "--export", help="Also export the model into --out: onnx (model.onnx), web (web/); repeatable."),
) -> None:
    """Fit SPEC on DATA: ingest, relations, derived data, phases, embedding, report (cached stages)."""
    with user_errors(verbose):
        _check_spec(spec, store, seed, out_dim)  # spec mistakes surface before Prefect starts
        _check_data(data)
        inputs = [data, spec]
        _check_exports(export, out)
        if out:
            _check_out(out, overwrite, inputs, store)
        kwargs = dict(store=store, dask_address=dask_address, seed=seed, out_dim=out_dim,
                      label_column=label_column, progress=progress, device=device, torch_threads=torch_threads,
                      lineage=lineage)
        result = _launch("fit", prefect, verbose, spec=spec, data=data, **kwargs)
        _write_outputs(result, out, overwrite, inputs, store, export)
        _print_result(result, as_json)


@app.command()
def retrain(
    spec: str = typer.Argument(..., help="Spec file or bundled spec name."),
    data: str = typer.Option(..., "--data", "-d", help="The (updated) data: a file or a folder of part files."),
    warm_start: bool = typer.Option(True, "--warm-start/--cold", help="Start from the spec's latest model on an earlier version of the same lineage."),
    lineage: str | None = typer.Option(None, "--lineage", help=LINEAGE_HELP),
    refit_front: bool | None = typer.Option(None, "--refit-front/--keep-front", help=REFIT_HELP),
    store: str | None = typer.Option(None, "--store", help=STORE_HELP),
    dask_address: str | None = typer.Option(None, "--dask-address", help=DASK_HELP),
    seed: int = typer.Option(0, help="Seed of model initialisation and sampling."),
    out_dim: int = typer.Option(2, "--out-dim", help="Embedding dimension of the default model."),
    label_column: str | None = typer.Option(None, "--label-column", help="Label column of a table."),
    device: str = typer.Option("cpu", help="Torch device for training."),
    torch_threads: int | None = typer.Option(None, "--torch-threads", help="Torch threads while training (default $PARADIME_TORCH_THREADS, else all cores)."),
    prefect: bool = typer.Option(True, "--prefect/--no-prefect", help="Run as a Prefect flow (default) or as plain Python."),
    progress: bool = typer.Option(True, "--progress/--no-progress", help="Progress bars."),
    as_json: bool = typer.Option(False, "--json", help="Print the run record as JSON."),
    verbose: bool = typer.Option(False, "--verbose", "-v", help="Show Prefect's logs and the traceback of an internal error."),
    out: str | None = typer.Option(None, "--out", "-o", help="Also write embedding.npy and embedding.png to this folder."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace an existing --out that paradime wrote (never anything else)."),
    export: list[str] = typer.Option([], "--export", help="Also export the retrained model into --out: onnx (model.onnx), web (web/); repeatable."),
) -> None:
    """Retrain SPEC on the current DATA (a new dataset version when it changed)."""
    with user_errors(verbose):
        _check_spec(spec, store, seed, out_dim)
        _check_data(data)
        inputs = [data, spec]
        _check_exports(export, out)
        if out:
            _check_out(out, overwrite, inputs, store)
        result = _launch("retrain", prefect, verbose, spec=spec, data=data, store=store,
                         dask_address=dask_address, warm_start=warm_start, seed=seed, out_dim=out_dim,
                         label_column=label_column, progress=progress, device=device,
                         torch_threads=torch_threads, lineage=lineage,
                         **({} if refit_front is None else {"refit_front": refit_front}))
        _write_outputs(result, out, overwrite, inputs, store, export)
        _print_result(result, as_json)


@app.command()
def embed(
    model: str = typer.Argument(..., help="A stored model key (prefix), a routine file (.pt), or a spec (its latest model)."),
    data: str = typer.Option(..., "--data", "-d", help="Rows to embed: any ingest format, a Zarr array, or a stored dataset key."),
    out: str | None = typer.Option(None, "--out", "-o", help="Also write the embedding to .zarr/.npy/.csv/.parquet."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace an existing --out that paradime wrote (never anything else)."),
    store: str | None = typer.Option(None, "--store", help=STORE_HELP),
    dask_address: str | None = typer.Option(None, "--dask-address", help=DASK_HELP),
    method: str = typer.Option("embed", help="Model method to apply (embed, classify, encode...)."),
    seed: int = typer.Option(0, help="With a spec as MODEL: the seed it was fitted with."),
    out_dim: int = typer.Option(2, "--out-dim", help="With a spec as MODEL: the embedding dimension it was fitted with."),
    label_column: str | None = typer.Option(None, "--label-column", help="Label column of a table."),
    prefect: bool = typer.Option(True, "--prefect/--no-prefect", help="Run as a Prefect flow (default) or as plain Python."),
    progress: bool = typer.Option(True, "--progress/--no-progress", help="Progress bars."),
    as_json: bool = typer.Option(False, "--json", help="Print the run record as JSON."),
    verbose: bool = typer.Option(False, "--verbose", "-v", help="Show Prefect's logs and the traceback of an internal error."),
) -> None:
    """Embed DATA with a trained MODEL (map_blocks over Zarr row chunks; flat memory)."""
    with user_errors(verbose):
        _check_data(data)
        if out:
            _check_out(out, overwrite, [data, model], store)
        from pipelines.flows import verified_model
        from pipelines.store import ArtifactStore

        model_key = verified_model(model, ArtifactStore(store), seed, out_dim)  # mistakes before Prefect
        result = _launch("embed", prefect, verbose, model=model_key, data=data, store=store,
                         dask_address=dask_address, out=out, method=method, label_column=label_column,
                         progress=progress, overwrite=overwrite)
        _print_result(result, as_json)


FLOW_HELP = "Which flow the deployment runs: retrain (default), fit, or embed (SPEC's latest model on DATA)."
# Options shared by `schedule` and `deploy` (those of run/retrain, as flow parameters).
DeployData = Annotated[str, typer.Option("--data", "-d", help="Data path each run reads (a file or a folder of parts).")]
DeployFlow = Annotated[str, typer.Option("--flow", help=FLOW_HELP)]
DeployName = Annotated[str | None, typer.Option(help="Deployment name (default: <flow>-<spec>).")]
TimeZone = Annotated[str | None, typer.Option(help="Time zone of the cron schedule (default UTC).")]
WarmStart = Annotated[bool, typer.Option("--warm-start/--cold", help="Warm-start each retraining within the lineage.")]
Lineage = Annotated[str | None, typer.Option("--lineage", help=LINEAGE_HELP)]
RefitFront = Annotated[bool | None, typer.Option("--refit-front/--keep-front", help=REFIT_HELP)]
Store = Annotated[str | None, typer.Option("--store", help=STORE_HELP)]
DaskAddress = Annotated[str | None, typer.Option("--dask-address", help=DASK_HELP)]
Seed = Annotated[int, typer.Option(help="Seed of model initialisation and sampling.")]
OutDim = Annotated[int, typer.Option("--out-dim", help="Embedding dimension of the default model.")]
LabelColumn = Annotated[str | None, typer.Option("--label-column", help="Label column of a table.")]
Device = Annotated[str, typer.Option(help="Torch device for training (cpu, cuda).")]
TorchThreads = Annotated[int | None, typer.Option("--torch-threads", help="Torch threads while training.")]
EmbedOut = Annotated[str | None, typer.Option("--out", "-o", help="With --flow embed: also write the embedding here.")]


@app.command()
def serve(
    model: str = typer.Argument(..., help="A stored model key (prefix), a routine file (.pt), or a spec (its latest model)."),
    host: str = typer.Option("127.0.0.1", help="Address to listen on (0.0.0.0: every interface)."),
    port: int = typer.Option(8000, help="TCP port (0: a free port, announced at start)."),
    token: str | None = typer.Option(None, "--token", envvar="PARADIME_SERVE_TOKEN",
                                     help="Require 'Authorization: Bearer TOKEN' on every request (or $PARADIME_SERVE_TOKEN)."),
    max_request_mb: float = typer.Option(64.0, "--max-request-mb", help="Largest request body in MiB (larger: HTTP 413)."),
    store: str | None = typer.Option(None, "--store", help=STORE_HELP),
    method: str = typer.Option("embed", help="Model method to apply (embed, classify, encode...)."),
    seed: int = typer.Option(0, help="With a spec as MODEL: the seed it was fitted with."),
    out_dim: int = typer.Option(2, "--out-dim", help="With a spec as MODEL: the embedding dimension it was fitted with."),
    torch_threads: int | None = typer.Option(None, "--torch-threads", help="Torch threads for the model (default $PARADIME_TORCH_THREADS, else all cores)."),
    access_log: bool = typer.Option(False, "--access-log/--no-access-log", help="Log every request."),
) -> None:
    """Serve MODEL over HTTP: GET /health, POST /embed (JSON or NPY rows) until SIGTERM or Ctrl-C."""
    with user_errors():
        from pipelines.serving.server import ServeOptions, exit_at_once, serve_model

        options = ServeOptions(host=host, port=port, token=token or None,
                               max_request_bytes=int(max_request_mb * 2**20), method=method,
                               torch_threads=torch_threads, access_log=access_log)

        def announce(info: Any, url: str) -> None:
            console.print(f"serving model {info.key[:12]} ({info.spec or 'no spec name'}, "
                          f"{info.input_width} -> {info.output_width}) at {url}"
                          f"{' (bearer token required)' if options.token else ''}; "
                          "POST /embed, GET /health; SIGTERM or Ctrl-C stops it", soft_wrap=True)

        serve_model(model, store, options, seed=seed, out_dim=out_dim, announce=announce)
        errors.print("stopped")
        exit_at_once(0)


@app.command("export")
def export_command(
    model: str = typer.Argument(..., help="A stored model key (prefix), a routine file (.pt), or a spec (its latest model)."),
    fmt: str = typer.Option("onnx", "--format", "-f", help="onnx: one .onnx file; web: a static page folder that embeds in the browser."),
    out: str = typer.Option(..., "--out", "-o", help="The .onnx file or the page folder to write."),
    store: str | None = typer.Option(None, "--store", help=STORE_HELP),
    method: str = typer.Option("embed", help="Model method to export (embed, classify, encode, decode; ONNX only)."),
    data: str | None = typer.Option(None, "--data", "-d", help="Training rows to draw and take bounds from (default: the model's own dataset)."),
    label_column: str | None = typer.Option(None, "--label-column", help="Label column of a table given with --data."),
    seed: int = typer.Option(0, help="With a spec as MODEL: the seed it was fitted with."),
    out_dim: int = typer.Option(2, "--out-dim", help="With a spec as MODEL: the embedding dimension it was fitted with."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace an earlier export of paradime's at --out."),
    runtime: str | None = typer.Option(None, "--runtime", help="Folder with onnxruntime-web's files (default: $PARADIME_WEB_RUNTIME, else the user cache, filled once from the npm registry)."),
    title: str | None = typer.Option(None, help="Title of the web page."),
    as_json: bool = typer.Option(False, "--json", help="Print what was written as JSON."),
) -> None:
    """Export MODEL as ONNX (any runtime) or as a self-contained web page (embeds new rows in the browser)."""
    with user_errors():
        from pipelines.exporting import export_model

        written = export_model(model, fmt, out, store, method=method, data=data, label_column=label_column,
                               seed=seed, out_dim=out_dim, overwrite=overwrite, runtime_dir=runtime, title=title)
        if as_json:
            console.print_json(json.dumps(written))
        else:
            console.print(f"wrote {written['format']} export of model {written['model'][:12]} to {written['path']}")


@app.command()
def schedule(
    spec: str = typer.Argument(..., help="Spec file or bundled spec name."),
    data: DeployData = ..., cron: str = typer.Option("0 3 * * *", help="Cron schedule (default: daily at 03:00)."),
    flow_kind: DeployFlow = "retrain", name: DeployName = None, timezone: TimeZone = None,
    warm_start: WarmStart = True, lineage: Lineage = None, refit_front: RefitFront = None, store: Store = None,
    dask_address: DaskAddress = None, seed: Seed = 0, out_dim: OutDim = 2, label_column: LabelColumn = None,
    device: Device = "cpu", torch_threads: TorchThreads = None, out: EmbedOut = None,
) -> None:
    """Run SPEC on DATA on a cron schedule, executed by this process until stopped (needs a Prefect server)."""
    with user_errors():
        options = _deployment_options(spec, data, store, flow_kind, seed, out_dim, locals())
        from pipelines.schedules.deploy import (
            build_deployment,
            cron_schedule,
            prefect_api_url,
            serve_deployments,
        )

        cron_schedule(cron, timezone)
        api = prefect_api_url()
        quiet_prefect_console(verbose=True)
        deployment = build_deployment(flow_kind, spec, data, cron=cron, name=name, timezone=timezone, **options)
        console.print(f"serving deployment [bold]{deployment.name}[/bold] (cron '{cron}') on {api}; "
                      f"Ctrl-C stops it. Runs appear in the Prefect UI under flow 'paradime-{flow_kind}'.")
        serve_deployments(deployment)


@app.command()
def deploy(
    spec: str = typer.Argument(..., help="Spec file or bundled spec name (with --flow embed: the model, as `embed` takes it)."),
    data: DeployData = ...,
    pool: str = typer.Option(..., "--pool", help="Work pool whose workers run the deployment (`prefect work-pool create NAME --type process`)."),
    cron: str | None = typer.Option(None, help="Cron schedule (default: none; runs start from the UI or `prefect deployment run`)."),
    flow_kind: DeployFlow = "retrain", name: DeployName = None, timezone: TimeZone = None,
    warm_start: WarmStart = True, lineage: Lineage = None, refit_front: RefitFront = None, store: Store = None,
    dask_address: DaskAddress = None, seed: Seed = 0, out_dim: OutDim = 2, label_column: LabelColumn = None,
    device: Device = "cpu", torch_threads: TorchThreads = None, out: EmbedOut = None,
) -> None:
    """Register SPEC on DATA with a work pool: `prefect worker start --pool NAME` executes its runs."""
    with user_errors():
        options = _deployment_options(spec, data, store, flow_kind, seed, out_dim, locals())
        from pipelines.schedules.deploy import (
            cron_schedule,
            default_name,
            deploy_to_pool,
            prefect_api_url,
        )

        if cron:
            cron_schedule(cron, timezone)
        api = prefect_api_url()
        deployment_id = deploy_to_pool(flow_kind, spec, data, pool=pool, cron=cron, name=name, timezone=timezone,
                                       **options)
        full_name = f"paradime-{flow_kind}/{name or default_name(flow_kind, spec)}"
        console.print(f"deployment [bold]{full_name}[/bold] ({deployment_id}) on {api}, work pool '{pool}'"
                      + (f", cron '{cron}'" if cron else ""))
        console.print(f"start a worker:  prefect worker start --pool {pool}\n"
                      f"run it now:      prefect deployment run '{full_name}'", highlight=False)


def _deployment_options(spec: str, data: str, store: str | None, flow_kind: str, seed: int, out_dim: int,
                        given: dict[str, Any]) -> dict[str, Any]:
    """Check a deployment's spec (or model) and data now; its options as flow parameters."""
    from pipelines.settings import store_url

    if flow_kind == "embed":  # a spec names its latest model when a run starts; a key or file must exist now
        from pipelines.bundled import load_spec_argument
        from pipelines.flows import resolve_model
        from pipelines.store import ArtifactStore

        try:
            load_spec_argument(spec)
        except Exception:  # noqa: BLE001 - not a spec: a model key or a routine file
            resolve_model(spec, ArtifactStore(store), seed, out_dim)
    else:
        _check_spec(spec, store, seed, out_dim)
    _check_data(data)
    names = ("warm_start", "lineage", "refit_front", "dask_address", "seed", "out_dim", "label_column", "device",
             "torch_threads", "out")
    return {"store": store_url(store), **{k: given[k] for k in names}}


@app.command("specs")
def specs_command() -> None:
    """List the bundled specs (usable by name: `paradime run umap --data ...`)."""
    with user_errors():
        from pipelines.bundled import list_specs, spec_dirs

        found = list_specs()
        if not found:
            console.print("no bundled specs found (searched: "
                          + (", ".join(str(d) for d in spec_dirs()) or "no spec folders") + ")")
            return
        table = Table(title="bundled specs")
        table.add_column("name")
        table.add_column("description")
        table.add_column("path")
        for spec in found:
            table.add_row(spec.name, spec.description, str(spec.path))
        console.print(table)


# --------------------------------------------------------------------------- cache
@cache_app.command("ls")
def cache_ls(
    kind: str | None = typer.Argument(None, help="Only this kind: datasets knn relations derived phases embeddings reports."),
    store: str | None = typer.Option(None, "--store", help=STORE_HELP),
    as_json: bool = typer.Option(False, "--json", help="Print the stages as JSON (with full keys)."),
) -> None:
    """List stored stages with the specs and datasets they belong to."""
    with user_errors():
        from pipelines.errors import PipelineError
        from pipelines.stage_owners import describe_stages
        from pipelines.store import STAGE_KINDS, ArtifactStore

        if kind is not None and kind not in STAGE_KINDS:
            raise PipelineError(f"unknown stage kind '{kind}' (one of {', '.join(STAGE_KINDS)})")
        st = ArtifactStore(store)
        stages = describe_stages(st, st.list(kind))
        if as_json:
            console.print_json(json.dumps({"store": st.url, "stages": stages}))
            return
        table = Table(title=f"store {st.url}")
        for column in ("kind", "key", "name", "spec", "dataset", "size", "created", "state"):
            table.add_column(column, justify="right" if column == "size" else "left",
                             no_wrap=column in ("kind", "key", "size"), overflow="fold")
        for stage in stages:
            datasets = ", ".join(f"{d['name'] or '?'} {d['key'][:8]}" for d in stage["datasets"])
            table.add_row(stage["kind"], stage["key"][:12], stage["name"], ", ".join(stage["specs"]) or "-",
                          datasets or "-", _size(stage["size"]), stage["created"][:16].replace("T", " "),
                          "[green]complete[/green]" if stage["complete"] else "[red]incomplete[/red]")
        console.print(table)
        console.print(f"{len(stages)} stage(s), {_size(sum(s['size'] for s in stages))}")


@cache_app.command("rm")
def cache_rm(
    targets: list[str] = typer.Argument(None, help="Stage key prefixes of at least 6 characters (optionally kind/prefix); with --all, nothing or stage kinds."),
    remove_all: bool = typer.Option(False, "--all", help="Remove every stage (of the kinds named, if any)."),
    dry_run: bool = typer.Option(False, "--dry-run", help="Only list what would be removed."),
    store: str | None = typer.Option(None, "--store", help=STORE_HELP),
) -> None:
    """Remove stages (later runs recompute them); lists each one removed."""
    with user_errors():
        from pipelines.cache_commands import select_stages
        from pipelines.store import ArtifactStore

        st = ArtifactStore(store)
        chosen = select_stages(st, targets or [], remove_all)
        verb = "would remove" if dry_run else "removed"
        for info in chosen:
            if not dry_run:
                st.remove(info.kind, info.key)
            console.print(f"{verb} {info.kind}/{info.key} ({_size(info.size)})")
        console.print(f"{len(chosen)} stage(s) " + ("would be removed (dry run)" if dry_run else "removed"))


@cache_app.command("gc")
def cache_gc(
    older_than: float | None = typer.Option(None, "--older-than", help="Also remove complete stages older than this many days."),
    dry_run: bool = typer.Option(False, "--dry-run", help="Only list what would be removed."),
    store: str | None = typer.Option(None, "--store", help=STORE_HELP),
) -> None:
    """Remove temporary leftovers of crashed runs and incomplete stages (never a stage a live process is writing)."""
    with user_errors():
        from pipelines.store import ArtifactStore

        removed = ArtifactStore(store).gc(older_than, dry_run=dry_run)
        verb = "would remove" if dry_run else "removed"
        for path in removed:
            console.print(f"{verb} {path}")
        console.print(f"{len(removed)} item(s) " + ("would be removed (dry run)" if dry_run else "removed"))


@cache_app.command("verify")
def cache_verify(
    targets: list[str] = typer.Argument(None, help="Stages to check (kind/key-prefix or key prefix); default: the whole store and its index records."),
    store: str | None = typer.Option(None, "--store", help=STORE_HELP),
) -> None:
    """Check every file of the stored stages against its checksum; exit 1 naming each damaged one."""
    with user_errors():
        from pipelines.cache_commands import verify_store
        from pipelines.store import ArtifactStore

        st = ArtifactStore(store)
        checked, damaged = verify_store(st, targets or [])
        for problem in damaged:
            errors.print(f"[bold red]damaged:[/bold red] [red]{escape(one_line(problem))}[/red]", highlight=False,
                         soft_wrap=True)
        console.print(f"{checked} item(s) checked, {len(damaged)} damaged")
        if damaged:
            raise typer.Exit(1)


def _size(n: int) -> str:
    value = float(n)
    for unit in ("B", "KB", "MB", "GB"):
        if value < 1024 or unit == "GB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{n} B"


# --------------------------------------------------------------------------- launching
def _launch(flow: str, prefect: bool, verbose: bool, **kwargs: Any) -> Any:
    """Run a flow through Prefect, or its plain-Python twin with ``--no-prefect``."""
    from pipelines import flows

    if prefect:
        from pipelines.lifetime import guard_ephemeral_server

        guard_ephemeral_server()
        quiet_prefect_console(verbose)
        target = {"fit": flows.fit_flow, "retrain": flows.retrain_flow, "embed": flows.embed_flow}[flow]
        return target(**kwargs)
    if flow == "embed":
        model, data = kwargs.pop("model"), kwargs.pop("data")
        return flows.run_embed(model, data, kwargs.pop("store"), **kwargs)
    spec, data, store = kwargs.pop("spec"), kwargs.pop("data"), kwargs.pop("store")
    return flows.run_spec(spec, data, store, flow_name=flow, **kwargs)


def main() -> None:  # pragma: no cover - console script entry (tests run it as a process)
    """The ``paradime`` command: the app under :func:`pipelines.lifetime.handle_signals`.

    An interrupted command ends once it has unwound and its ``atexit`` handlers ran, without
    the interpreter's slow teardown.
    """
    from pipelines.lifetime import announce_interrupt, exit_after_cleanup, handle_signals

    with handle_signals(say_interrupted) as state:
        try:
            app()
        except SystemExit:
            if state is not None and state.first is not None:
                announce_interrupt(state.first, say_interrupted)  # if stopped outside a command
                exit_after_cleanup(128 + state.first)
            raise


if __name__ == "__main__":  # pragma: no cover
    main()
