"""The ``paradime`` command line: run specs as Prefect flows, embed, retrain, serve, manage the cache.

Every command takes ``--store`` (default ``$PARADIME_STORE`` or ``./.paradime/store``). A
user mistake (bad path, bad spec, bad data, unknown model) ends the command with one red
``error:`` line and exit status 1, never a traceback. Heavy modules (torch, prefect, dask)
are imported inside the commands, so ``--help`` and ``specs`` answer at once.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import sys
from collections.abc import Iterator
from typing import Any

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

import pipelines  # noqa: F401  (Prefect's offline defaults)

app = typer.Typer(help="paradime: parametric dimensionality reduction as cached Prefect flows.",
                  no_args_is_help=True, add_completion=False, pretty_exceptions_enable=False)
cache_app = typer.Typer(help="Inspect and clean the artifact store.", no_args_is_help=True)
app.add_typer(cache_app, name="cache")

console = Console()
errors = Console(stderr=True)

STORE_HELP = "Artifact store root: a folder or fsspec URL (default: $PARADIME_STORE or ./.paradime/store)."
DASK_HELP = "Address of a running Dask scheduler (default: a local cluster sized to this machine)."
STATUS_STYLE = {"cached": "green", "computed": "yellow", "recomputed": "magenta"}


class _ConsoleFilter(logging.Filter):
    """What Prefect's console handler shows from a CLI command.

    Tracebacks of user mistakes are dropped (the CLI prints them as one line), and without
    ``--verbose`` so are Prefect's info logs (they still reach the Prefect API and its UI,
    whose handler is separate).
    """

    USER_ERRORS = ("DataError", "SpecError", "PipelineError", "TrainingError")

    def __init__(self, verbose: bool):
        super().__init__()
        self.verbose = verbose

    def filter(self, record: logging.LogRecord) -> bool:
        from pipelines.errors import is_user_error

        if not self.verbose and record.levelno < logging.WARNING and record.name.startswith("prefect"):
            return False
        exc = record.exc_info[1] if record.exc_info else None
        if exc is not None and is_user_error(exc):
            return False
        if record.levelno >= logging.ERROR and record.name.startswith("prefect"):
            text = record.getMessage()
            return not any(name in text for name in self.USER_ERRORS)
        return True


def _quiet_prefect_console(verbose: bool) -> None:
    """Install :class:`_ConsoleFilter` on Prefect's console handlers (set up logging first)."""
    from prefect.logging.configuration import PROCESS_LOGGING_CONFIG, setup_logging

    if not PROCESS_LOGGING_CONFIG:
        setup_logging()
    for handler in logging.getLogger().handlers:
        if not any(isinstance(f, _ConsoleFilter) for f in handler.filters):
            handler.addFilter(_ConsoleFilter(verbose))


@contextlib.contextmanager
def user_errors() -> Iterator[None]:
    """Turn user mistakes into one red line and exit status 1."""
    try:
        yield
    except typer.Exit:
        raise
    except KeyboardInterrupt:
        errors.print("[red]interrupted[/red]")
        raise typer.Exit(130) from None
    except Exception as exc:  # noqa: BLE001 - classified below
        from pipelines.errors import is_user_error

        if is_user_error(exc) or isinstance(exc, (FileNotFoundError, PermissionError, IsADirectoryError)):
            message = str(exc) if is_user_error(exc) else f"{type(exc).__name__}: {exc}"
            errors.print(f"[bold red]error:[/bold red] [red]{escape(_one_line(message))}[/red]", highlight=False,
                         soft_wrap=True)
            raise typer.Exit(1) from None
        raise


def _one_line(text: str) -> str:
    return " ".join(str(text).split())


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
        console.print(f"{'version':>10}: {result.dataset_version}")
    if result.metrics:
        console.print(f"{'metrics':>10}: " + ", ".join(f"{k} {v:.4f}" for k, v in result.metrics.items()))
    console.print(f"{'store':>10}: {result.store}   ({result.seconds:.1f} s)")


def _check_spec(spec: str, store: str | None, seed: int, out_dim: int) -> None:
    """Fail early (before Prefect starts) on a bad spec; a spec text run before is not re-parsed."""
    from pipelines.bundled import SpecHandle
    from pipelines.store import ArtifactStore

    SpecHandle(spec).validate(ArtifactStore(store), seed, out_dim)


def _check_exports(formats: list[str], out: str | None) -> None:
    """``--export`` names known formats and comes with ``--out``."""
    from pipelines.errors import PipelineError
    from pipelines.exporting import FORMATS

    unknown = [f for f in formats if f not in FORMATS]
    if unknown:
        raise PipelineError(f"--export must be one of {', '.join(FORMATS)}, got '{unknown[0]}'")
    if formats and not out:
        raise PipelineError("--export needs --out (the folder the exports go to)")


def _run_exports(formats: list[str], out: str | None, result: Any, store: str | None) -> None:
    """Export the run's model into ``out`` (``model.onnx``, ``web/``), replacing earlier exports of ours."""
    if not formats or out is None:
        return
    from pipelines.exporting import export_model

    targets = {"onnx": os.path.join(out, "model.onnx"), "web": os.path.join(out, "web")}
    written = [export_model(result.model_key, fmt, targets[fmt], store, overwrite=True)["path"]
               for fmt in dict.fromkeys(formats)]
    result.output = ", ".join(filter(None, [getattr(result, "output", None), *written]))


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
    verbose: bool = typer.Option(False, "--verbose", "-v", help="Show Prefect's info logs."),
    out: str | None = typer.Option(None, "--out", "-o", help="Also write embedding.npy and embedding.png to this folder."),
    export: list[str] = typer.Option([], "--export", help="Also export the model into --out: onnx (model.onnx), web (web/); repeatable."),
) -> None:
    """Fit SPEC on DATA: ingest, relations, derived data, phases, embedding, report (cached stages)."""
    with user_errors():
        _check_spec(spec, store, seed, out_dim)  # spec mistakes surface before Prefect starts
        _check_data(data)
        _check_exports(export, out)
        kwargs = dict(store=store, dask_address=dask_address, seed=seed, out_dim=out_dim,
                      label_column=label_column, progress=progress, device=device, torch_threads=torch_threads)
        result = _launch("fit", prefect, verbose, spec=spec, data=data, **kwargs)
        if out:
            from pipelines.flows import export_run
            from pipelines.store import ArtifactStore

            result.output = ", ".join(export_run(ArtifactStore(store), result, out))
        _run_exports(export, out, result, store)
        _print_result(result, as_json)


@app.command()
def retrain(
    spec: str = typer.Argument(..., help="Spec file or bundled spec name."),
    data: str = typer.Option(..., "--data", "-d", help="The (updated) data: a file or a folder of part files."),
    warm_start: bool = typer.Option(True, "--warm-start/--cold", help="Start from the spec's latest model on earlier data."),
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
    verbose: bool = typer.Option(False, "--verbose", "-v", help="Show Prefect's info logs."),
    out: str | None = typer.Option(None, "--out", "-o", help="Folder for the exports of --export."),
    export: list[str] = typer.Option([], "--export", help="Also export the retrained model into --out: onnx (model.onnx), web (web/); repeatable."),
) -> None:
    """Retrain SPEC on the current DATA (a new dataset version when it changed)."""
    with user_errors():
        _check_spec(spec, store, seed, out_dim)
        _check_data(data)
        _check_exports(export, out)
        result = _launch("retrain", prefect, verbose, spec=spec, data=data, store=store,
                         dask_address=dask_address, warm_start=warm_start, seed=seed, out_dim=out_dim,
                         label_column=label_column, progress=progress, device=device,
                         torch_threads=torch_threads)
        _run_exports(export, out, result, store)
        _print_result(result, as_json)


@app.command()
def embed(
    model: str = typer.Argument(..., help="A stored model key (prefix), a routine file (.pt), or a spec (its latest model)."),
    data: str = typer.Option(..., "--data", "-d", help="Rows to embed: any ingest format, a Zarr array, or a stored dataset key."),
    out: str | None = typer.Option(None, "--out", "-o", help="Also write the embedding to .zarr/.npy/.csv/.parquet."),
    store: str | None = typer.Option(None, "--store", help=STORE_HELP),
    dask_address: str | None = typer.Option(None, "--dask-address", help=DASK_HELP),
    method: str = typer.Option("embed", help="Model method to apply (embed, classify, encode...)."),
    seed: int = typer.Option(0, help="With a spec as MODEL: the seed it was fitted with."),
    out_dim: int = typer.Option(2, "--out-dim", help="With a spec as MODEL: the embedding dimension it was fitted with."),
    label_column: str | None = typer.Option(None, "--label-column", help="Label column of a table."),
    prefect: bool = typer.Option(True, "--prefect/--no-prefect", help="Run as a Prefect flow (default) or as plain Python."),
    progress: bool = typer.Option(True, "--progress/--no-progress", help="Progress bars."),
    as_json: bool = typer.Option(False, "--json", help="Print the run record as JSON."),
    verbose: bool = typer.Option(False, "--verbose", "-v", help="Show Prefect's info logs."),
) -> None:
    """Embed DATA with a trained MODEL (map_blocks over Zarr row chunks; flat memory)."""
    with user_errors():
        _check_data(data)
        from pipelines.flows import resolve_model
        from pipelines.store import ArtifactStore

        model_key = resolve_model(model, ArtifactStore(store), seed, out_dim)  # mistakes before Prefect
        result = _launch("embed", prefect, verbose, model=model_key, data=data, store=store,
                         dask_address=dask_address, out=out, method=method, label_column=label_column,
                         progress=progress)
        _print_result(result, as_json)


@app.command()
def serve(
    spec: str = typer.Argument(..., help="Spec file or bundled spec name."),
    data: str = typer.Option(..., "--data", "-d", help="Data path watched by the schedule (a file or a folder of parts)."),
    cron: str = typer.Option("0 3 * * *", help="Cron schedule of the retraining (default: daily at 03:00)."),
    name: str | None = typer.Option(None, help="Deployment name (default: retrain-<spec>)."),
    timezone: str | None = typer.Option(None, help="Time zone of the cron schedule (default UTC)."),
    warm_start: bool = typer.Option(True, "--warm-start/--cold", help="Warm-start each retraining."),
    store: str | None = typer.Option(None, "--store", help=STORE_HELP),
    dask_address: str | None = typer.Option(None, "--dask-address", help=DASK_HELP),
    seed: int = typer.Option(0, help="Seed of model initialisation and sampling."),
    out_dim: int = typer.Option(2, "--out-dim", help="Embedding dimension of the default model."),
) -> None:
    """Serve the retrain flow as a Prefect deployment on a cron schedule (runs until stopped)."""
    with user_errors():
        from pipelines.bundled import load_spec_argument, resolve_spec_path
        from pipelines.settings import store_url

        load_spec_argument(spec)
        _check_data(data)
        path = resolve_spec_path(spec)
        _quiet_prefect_console(verbose=True)
        from pipelines.schedules.deploy import build_deployment, serve_deployments

        deployment = build_deployment(str(path) if path else spec, data, cron=cron, name=name,
                                      store=store_url(store), warm_start=warm_start, dask_address=dask_address,
                                      seed=seed, out_dim=out_dim, timezone=timezone)
        if not os.environ.get("PREFECT_API_URL"):
            errors.print("[yellow]warning:[/yellow] PREFECT_API_URL is not set: Prefect's temporary server "
                         "does not create scheduled runs. Start `prefect server start` and export "
                         "PREFECT_API_URL=http://127.0.0.1:4200/api first.", soft_wrap=True)
        console.print(f"serving deployment [bold]{deployment.name}[/bold] (cron '{cron}'); "
                      "Ctrl-C stops it. Runs appear in the Prefect UI under flow 'paradime-retrain'.")
        serve_deployments(deployment)


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
) -> None:
    """List stored stages."""
    with user_errors():
        from pipelines.errors import PipelineError
        from pipelines.store import STAGE_KINDS, ArtifactStore

        if kind is not None and kind not in STAGE_KINDS:
            raise PipelineError(f"unknown stage kind '{kind}' (one of {', '.join(STAGE_KINDS)})")
        st = ArtifactStore(store)
        infos = st.list(kind)
        table = Table(title=f"store {st.url}")
        for column in ("kind", "key", "name", "size", "created", "state"):
            table.add_column(column, justify="right" if column == "size" else "left")
        for info in infos:
            table.add_row(info.kind, info.key[:16], info.name, _size(info.size), info.created,
                          "[green]complete[/green]" if info.complete else "[red]incomplete[/red]")
        console.print(table)
        console.print(f"{len(infos)} stage(s), {_size(sum(i.size for i in infos))}")


@cache_app.command("rm")
def cache_rm(
    keys: list[str] = typer.Argument(..., help="Stage keys or key prefixes (optionally kind/prefix)."),
    store: str | None = typer.Option(None, "--store", help=STORE_HELP),
) -> None:
    """Remove stages (later runs recompute them)."""
    with user_errors():
        from pipelines.errors import PipelineError
        from pipelines.store import ArtifactStore

        st = ArtifactStore(store)
        for key in keys:
            matches = st.find(key)
            if not matches:
                raise PipelineError(f"no stored stage matches '{key}' in {st.url}")
            for info in matches:
                st.remove(info.kind, info.key)
                console.print(f"removed {info.kind}/{info.key}")


@cache_app.command("gc")
def cache_gc(
    older_than: float | None = typer.Option(None, "--older-than", help="Also remove complete stages older than this many days."),
    store: str | None = typer.Option(None, "--store", help=STORE_HELP),
) -> None:
    """Remove temporary leftovers and incomplete stages of crashed runs."""
    with user_errors():
        from pipelines.store import ArtifactStore

        removed = ArtifactStore(store).gc(older_than)
        for path in removed:
            console.print(f"removed {path}")
        console.print(f"{len(removed)} item(s) removed")


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
        _quiet_prefect_console(verbose)
        target = {"fit": flows.fit_flow, "retrain": flows.retrain_flow, "embed": flows.embed_flow}[flow]
        return target(**kwargs)
    if flow == "embed":
        model, data = kwargs.pop("model"), kwargs.pop("data")
        return flows.run_embed(model, data, kwargs.pop("store"), **kwargs)
    spec, data, store = kwargs.pop("spec"), kwargs.pop("data"), kwargs.pop("store")
    return flows.run_spec(spec, data, store, flow_name=flow, **kwargs)


def main() -> None:  # pragma: no cover - console script entry
    app()


if __name__ == "__main__":  # pragma: no cover
    sys.exit(app())
