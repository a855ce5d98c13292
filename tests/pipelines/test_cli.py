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


def test_deployment_has_the_cron_schedule(spec_file, data_dir):
    from pipelines.schedules.deploy import build_deployment

    deployment = build_deployment(spec_file, f"{data_dir}/digits.npz", cron="*/5 * * * *", store="/tmp/x")
    assert deployment.name == "retrain-tiny"
    assert deployment.schedules[0].schedule.cron == "*/5 * * * *"
    assert deployment.parameters["warm_start"] is True and deployment.parameters["data"].endswith("digits.npz")


@pytest.mark.parametrize("command", [[], ["run"], ["embed"], ["retrain"], ["serve"], ["cache"], ["cache", "ls"],
                                     ["specs"]])
def test_help_everywhere(command):
    result = runner.invoke(app, [*command, "--help"])
    assert result.exit_code == 0 and "Usage" in result.stdout


def test_cache_ls_names_the_specs_and_datasets_of_each_stage(tmp_path, data_dir):
    """Two specs sharing a relation recipe on one dataset, then an embedding of new rows."""
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
    assert set(datasets) == {"digits", "digits_new"}

    def owners(kind: str, name: str | None = None) -> list[tuple[list[str], list[str]]]:
        return sorted((s["specs"], [d["name"] for d in s["datasets"]]) for s in stages
                      if s["kind"] == kind and (name is None or s["name"] == name))

    assert owners("knn") == [(["first", "second"], ["digits"])]  # one kNN graph shared by both specs
    assert owners("phases", "main") == [(["first"], ["digits"]), (["second"], ["digits"])]
    assert owners("embeddings", "embed") == [(["first"], ["digits_new"])]
    assert owners("datasets") == [(["first"], ["digits_new"]), (["first", "second"], ["digits"])]
    table = runner.invoke(app, ["cache", "ls", "knn", "--store", store])
    assert table.exit_code == 0 and all(word in table.stdout for word in ("first", "second", "digits"))
