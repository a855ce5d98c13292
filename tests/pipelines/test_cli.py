"""The `paradime` command line: one red line and exit status 1 for user mistakes; cache tools."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest
from _pipeline_specs import tiny_spec
from typer.testing import CliRunner

from pipelines.cli import app
from pipelines.store import ArtifactStore

runner = CliRunner()


def _error_line(result) -> str:
    text = (result.stderr or "") + (result.stdout or "")
    assert result.exit_code == 1, text
    assert "Traceback" not in text
    lines = [line for line in text.splitlines() if line.strip()]
    assert len(lines) == 1, lines
    assert lines[0].startswith("error: ")
    return lines[0]


def test_user_mistakes_are_one_line(tmp_path, data_dir, spec_file):
    store = str(tmp_path / "store")
    line = _error_line(runner.invoke(app, ["run", str(tmp_path / "nope.yaml"), "--data", f"{data_dir}/digits.npz",
                                           "--store", store]))
    assert "spec: file not found" in line
    line = _error_line(runner.invoke(app, ["run", spec_file, "--data", str(tmp_path / "nope.npz"), "--store", store]))
    assert "data not found" in line
    bad = tmp_path / "bad.yaml"
    bad.write_text(open(spec_file).read().replace("components: [emb]", "components: [embx]"))
    line = _error_line(runner.invoke(app, ["run", str(bad), "--data", f"{data_dir}/digits.npz", "--store", store]))
    assert "training_phases[1].loss.components[0]" in line and "embx" in line
    line = _error_line(runner.invoke(app, ["run", "no-such-bundled-spec", "--data", f"{data_dir}/digits.npz"]))
    assert "neither a spec file nor a bundled spec" in line
    line = _error_line(runner.invoke(app, ["embed", "0123456789abcdef", "--data", f"{data_dir}/digits.npz",
                                           "--store", store]))
    assert "model '0123456789abcdef'" in line
    line = _error_line(runner.invoke(app, ["cache", "rm", "feedbeef", "--store", store]))
    assert "no stored stage matches" in line
    line = _error_line(runner.invoke(app, ["schedule", spec_file, "--data", f"{data_dir}/digits.npz", "--cron", "61 * *"]))
    assert "invalid cron" in line


@pytest.mark.parametrize("old, new, expected", [
    ("options: {n_neighbors: 10, method: faiss_exact}", "options: {n_neighbors: ten, method: faiss_exact}",
     "error: relations[0].options.n_neighbors: expected an integer >= 1 or null, got 'ten'"),
    ("options: {hidden_dims: [16]}", "options: {hidden_dims: [16], dropout: 1.5}",
     "error: model.options.dropout: expected a number >= 0 and < 1, got 1.5"),
])
def test_a_bad_option_value_is_one_line_naming_its_path(tmp_path, data_dir, spec_file, old, new, expected):
    """Option types come from the blocks' annotations; the CLI reports them before any work."""
    bad = tmp_path / "bad.yaml"
    text = open(spec_file).read()
    assert old in text
    bad.write_text(text.replace(old, new))
    result = runner.invoke(app, ["run", str(bad), "--data", f"{data_dir}/digits.npz", "--store", str(tmp_path / "store")])
    assert _error_line(result) == expected


def test_bad_data_inside_the_flow_is_one_line(tmp_path, spec_file, prefect_server):
    """NaN rows are found by the ingest task inside Prefect: still no traceback on the console."""
    X = np.ones((20, 4))
    X[5, 2] = np.nan
    np.savez(tmp_path / "nan.npz", X=X)
    env = {**os.environ, "PREFECT_API_URL": prefect_server}
    done = subprocess.run([sys.executable, "-m", "pipelines.cli", "run", spec_file, "--data",
                           str(tmp_path / "nan.npz"), "--store", str(tmp_path / "store"), "--no-progress"],
                          capture_output=True, text=True, env=env, timeout=300)
    text = done.stdout + done.stderr
    assert done.returncode == 1, text
    assert "Traceback" not in text
    errors = [line for line in text.splitlines() if line.startswith("error:")]
    assert errors == [f"error: {tmp_path / 'nan.npz'}: array 'main' row 5, column 2: NaN (a missing value)"]


def test_run_cache_and_specs_commands(tmp_path, data_dir, spec_file, prefect_server):
    store = str(tmp_path / "store")
    first = runner.invoke(app, ["run", spec_file, "--data", f"{data_dir}/digits.npz", "--store", store,
                                "--no-progress", "--json"])
    assert first.exit_code == 0, first.output
    second = runner.invoke(app, ["run", spec_file, "--data", f"{data_dir}/digits.npz", "--store", store,
                                 "--no-progress"])
    assert second.exit_code == 0 and "computed" not in second.stdout and "cached" in second.stdout
    listing = runner.invoke(app, ["cache", "ls", "--store", store])
    assert listing.exit_code == 0 and "phases" in listing.stdout and "8 stage(s)" in listing.stdout
    key = ArtifactStore(store).list("reports")[0].key
    removed = runner.invoke(app, ["cache", "rm", f"reports/{key[:8]}", "--store", store])
    assert removed.exit_code == 0 and ArtifactStore(store).list("reports") == []
    os.makedirs(os.path.join(store, ".tmp", "phases-crashed"))
    gc = runner.invoke(app, ["cache", "gc", "--store", store])
    assert gc.exit_code == 0 and "phases-crashed" in gc.stdout
    specs = runner.invoke(app, ["specs"])
    assert specs.exit_code == 0


def test_specs_lists_yaml_files_of_spec_folders(tmp_path, monkeypatch, spec_file):
    folder = tmp_path / "myspecs"
    folder.mkdir()
    (folder / "mine.yaml").write_text(open(spec_file).read())
    monkeypatch.setenv("PARADIME_SPECS", str(folder))
    result = runner.invoke(app, ["specs"])
    assert result.exit_code == 0 and "mine" in result.stdout and "two-phase UMAP-like" in result.stdout
    from pipelines.bundled import load_spec_argument

    assert load_spec_argument("mine").name == "tiny-umap"


def test_deployment_has_the_cron_schedule_absolute_locations_and_options(spec_file, data_dir, tmp_path,
                                                                          monkeypatch):
    from pipelines.schedules.deploy import build_deployment

    monkeypatch.chdir(data_dir)
    deployment = build_deployment("retrain", spec_file, "digits.npz", "/tmp/x", cron="*/5 * * * *",
                                  label_column="y", torch_threads=1, device="cpu", lineage="feed", refit_front=None)
    assert deployment.name == "retrain-tiny" and deployment.enforce_parameter_schema
    assert deployment.schedules[0].schedule.cron == "*/5 * * * *"
    assert deployment.parameters == {"spec": spec_file, "data": f"{data_dir}/digits.npz", "store": "/tmp/x",
                                     "label_column": "y", "torch_threads": 1, "device": "cpu", "lineage": "feed"}


def test_schedule_and_deploy_refuse_to_start_without_a_prefect_api(spec_file, data_dir, monkeypatch):
    import socket

    with socket.socket() as sock:  # a port nothing listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    monkeypatch.setenv("PREFECT_API_URL", f"http://127.0.0.1:{port}/api")
    for command in (["schedule", spec_file], ["deploy", spec_file, "--pool", "p"]):
        result = runner.invoke(app, [*command, "--data", f"{data_dir}/digits.npz"])
        line = _error_line(result)
        assert f"127.0.0.1:{port}" in line and "prefect server start" in line and "PREFECT_API_URL" in line


def test_a_deployment_run_cannot_move_its_locations():
    from pipelines.errors import PipelineError
    from pipelines.schedules.deployed import check_pinned

    fixed = {"spec": "/s.yaml", "data": "/d.npz", "store": "/store", "seed": 0}
    check_pinned({"spec": "/s.yaml", "data": "/d.npz", "store": "/store"}, fixed)
    check_pinned({"spec": "/other.yaml", "data": "/d.npz", "store": "/x"}, None)  # not a deployment run
    with pytest.raises(PipelineError, match="parameter 'store'.*fixes it to '/store'"):
        check_pinned({"spec": "/s.yaml", "data": "/d.npz", "store": "/elsewhere"}, fixed)


def test_deployed_flows_validate_their_parameters(spec_file, data_dir, tmp_path, prefect_server):
    from prefect.exceptions import ParameterTypeError

    from pipelines.schedules.deployed import deployed_retrain

    for bad in ({"seed": -1}, {"out_dim": 0}, {"device": "cpu; rm -rf /"}, {"torch_threads": 0}):
        with pytest.raises(ParameterTypeError):
            deployed_retrain(spec_file, f"{data_dir}/digits.npz", str(tmp_path / "store"), **bad)
    schema = deployed_retrain.parameters.properties
    assert schema["seed"]["minimum"] == 0 and "pattern" in str(schema["device"])


@pytest.mark.parametrize("command", [[], ["run"], ["embed"], ["retrain"], ["serve"], ["schedule"], ["deploy"], ["cache"], ["cache", "ls"],
                                     ["specs"]])
def test_help_everywhere(command):
    result = runner.invoke(app, [*command, "--help"])
    assert result.exit_code == 0 and "Usage" in result.stdout


def test_cache_ls_names_the_specs_and_datasets_of_each_stage(tmp_path, data_dir):
    """Two specs sharing a relation recipe on one dataset, then an embedding of new rows (read
    where they lie: named by their file, not stored as a dataset)."""
    store = str(tmp_path / "store")
    first = tmp_path / "first.yaml"
    first.write_text(tiny_spec(main_epochs=1).replace("name: tiny-umap", "name: first"))
    second = tmp_path / "second.yaml"
    second.write_text(tiny_spec(main_epochs=1, relation_name="r").replace("name: tiny-umap", "name: second"))
    for spec in (first, second):
        done = runner.invoke(app, ["run", str(spec), "--data", f"{data_dir}/digits.npz", "--store", store,
                                   "--no-prefect", "--no-progress"])
        assert done.exit_code == 0, done.output
    done = runner.invoke(app, ["embed", str(first), "--data", f"{data_dir}/digits_new.npz", "--store", store,
                               "--no-prefect", "--no-progress"])
    assert done.exit_code == 0, done.output
    listing = runner.invoke(app, ["cache", "ls", "--store", store, "--json"])
    assert listing.exit_code == 0, listing.output
    stages = json.loads(listing.stdout)["stages"]
    datasets = {s["name"]: s["key"] for s in stages if s["kind"] == "datasets"}
    assert set(datasets) == {"digits"}

    def owners(kind: str, name: str | None = None) -> list[tuple[list[str], list[str]]]:
        return sorted((s["specs"], [d["name"] for d in s["datasets"]]) for s in stages
                      if s["kind"] == kind and (name is None or s["name"] == name))

    assert owners("knn") == [(["first", "second"], ["digits"])]  # one kNN graph shared by both specs
    assert owners("phases", "main") == [(["first"], ["digits"]), (["second"], ["digits"])]
    assert owners("embeddings", "embed") == [(["first"], ["digits_new"])]
    assert owners("datasets") == [(["first", "second"], ["digits"])]
    table = runner.invoke(app, ["cache", "ls", "knn", "--store", store])
    assert table.exit_code == 0 and all(word in table.stdout for word in ("first", "second", "digits"))
