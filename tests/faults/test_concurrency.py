"""Concurrency and destructive commands: no lost index record, gc spares live writers,
``cache rm`` needs an explicit target, concurrent runs on one store agree."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from pipelines.cli import app
from pipelines.store import ArtifactStore

from ._store_faults import _ROOT, embedding, write_inputs

runner = CliRunner()
WRITERS, RECORDS = 4, 50
ENV = {**os.environ, "PREFECT_HOME": os.path.join(_ROOT, "prefect-home"), "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
       "DO_NOT_TRACK": "1"}


def _one_error_line(result) -> str:
    text = result.stdout + result.stderr
    assert result.exit_code == 1, text
    lines = [line for line in text.splitlines() if line.strip()]
    assert len(lines) == 1 and "Traceback" not in text, lines
    return lines[0]


# --------------------------------------------------------------------------- index records
WRITER = """
import sys
from pipelines import catalog
from pipelines.store import ArtifactStore
store, writer, n = ArtifactStore(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
for i in range(n):
    catalog.record_model(store, "spec", f"data-{writer}-{i}", f"model-{writer}-{i}", None, "tiny")
    catalog.record_version(store, "/data/parts", f"data-{writer}-{i}")
"""


def test_concurrent_index_writers_lose_no_record(tmp_path):
    store = tmp_path / "store"
    writers = [subprocess.Popen([sys.executable, "-c", WRITER, str(store), str(w), str(RECORDS)], env=ENV,
                                stderr=subprocess.PIPE, text=True) for w in range(WRITERS)]
    for process in writers:
        _, err = process.communicate(timeout=300)
        assert process.returncode == 0, err
    from pipelines import catalog

    st = ArtifactStore(store)
    fits = catalog.model_record(st, "spec")["fits"]
    versions = catalog.dataset_versions(st, "/data/parts")
    expected = {f"data-{w}-{i}" for w in range(WRITERS) for i in range(RECORDS)}
    assert {f["dataset"] for f in fits} == expected and len(fits) == WRITERS * RECORDS
    assert {v["key"] for v in versions} == expected and len(versions) == WRITERS * RECORDS


# --------------------------------------------------------------------------- gc and live writers
HOLDER = """
import sys, time
import numpy as np
from pipelines.store import ArtifactStore
store = ArtifactStore(sys.argv[1])
with store.begin("phases", "f" * 32) as writer:
    writer.group.create_array("w", shape=(4,), dtype="f8")[...] = np.ones(4)
    print(writer.tmp_path, flush=True)
    time.sleep(120)
"""


def test_gc_never_touches_a_stage_a_live_process_is_writing(tmp_path):
    store = tmp_path / "store"
    holder = subprocess.Popen([sys.executable, "-c", HOLDER, str(store)], env=ENV, stdout=subprocess.PIPE, text=True)
    try:
        tmp = Path(holder.stdout.readline().strip())
        assert tmp.is_dir()
        os.makedirs(store / ".tmp" / "knn-crashed")  # a dead writer's leftover (no lock)
        gc = runner.invoke(app, ["cache", "gc", "--store", str(store)])
        assert gc.exit_code == 0 and "knn-crashed" in gc.stdout and tmp.name not in gc.stdout
        assert tmp.is_dir() and not (store / ".tmp" / "knn-crashed").exists()
        holder.send_signal(signal.SIGKILL)  # the writer dies: its lock goes with it
        holder.wait(timeout=30)
        dry = runner.invoke(app, ["cache", "gc", "--dry-run", "--store", str(store)])
        assert dry.exit_code == 0 and f"would remove .tmp/{tmp.name}" in dry.stdout and tmp.is_dir()
        gc = runner.invoke(app, ["cache", "gc", "--store", str(store)])
        assert gc.exit_code == 0 and f"removed .tmp/{tmp.name}" in gc.stdout
        assert os.listdir(store / ".tmp") == []
    finally:
        if holder.poll() is None:
            holder.kill()
            holder.wait()


# --------------------------------------------------------------------------- cache rm
def _stages(store: Path) -> list[str]:
    st = ArtifactStore(store)
    for kind, key in (("knn", "aaaaaa11" * 4), ("knn", "aaaaaa22" * 4), ("relations", "bbbbbb11" * 4),
                      ("phases", "cccccc11" * 4)):
        with st.begin(kind, key) as writer:
            writer.group.create_array("v", shape=(2,), dtype="f8")[...] = 1.0
    return sorted(f"{i.kind}/{i.key}" for i in st.list())


@pytest.mark.parametrize("targets", [[""], [], ["aaaaa"], ["knn/"], ["knn/aaa"], ["--all", "nonsense"]],
                         ids=["empty-string", "nothing", "5-characters", "kind-only", "kind-and-3", "all-of-no-kind"])
def test_cache_rm_without_an_explicit_target_removes_nothing(tmp_path, targets):
    store = tmp_path / "store"
    before = _stages(store)
    line = _one_error_line(runner.invoke(app, ["cache", "rm", *targets, "--store", str(store)]))
    assert line.startswith("error: ")
    assert sorted(f"{i.kind}/{i.key}" for i in ArtifactStore(store).list()) == before


def test_cache_rm_lists_what_it_removes_and_has_a_dry_run(tmp_path):
    store = tmp_path / "store"
    before = _stages(store)
    dry = runner.invoke(app, ["cache", "rm", "aaaaaa", "--dry-run", "--store", str(store)])
    assert dry.exit_code == 0, dry.output
    assert dry.stdout.count("would remove knn/") == 2 and "2 stage(s) would be removed (dry run)" in dry.stdout
    assert sorted(f"{i.kind}/{i.key}" for i in ArtifactStore(store).list()) == before
    one = runner.invoke(app, ["cache", "rm", "knn/aaaaaa22", "--store", str(store)])
    assert one.exit_code == 0 and f"removed knn/{'aaaaaa22' * 4}" in one.stdout
    kind = runner.invoke(app, ["cache", "rm", "--all", "knn", "relations", "--store", str(store)])
    assert kind.exit_code == 0 and "2 stage(s) removed" in kind.stdout
    assert [i.kind for i in ArtifactStore(store).list()] == ["phases"]
    everything = runner.invoke(app, ["cache", "rm", "--all", "--store", str(store)])
    assert everything.exit_code == 0 and f"removed phases/{'cccccc11' * 4}" in everything.stdout
    assert ArtifactStore(store).list() == []


# --------------------------------------------------------------------------- concurrent runs
@pytest.mark.slow
def test_concurrent_runs_on_one_store_agree(tmp_path):
    spec, data = write_inputs(tmp_path / "inputs")
    store = tmp_path / "store"
    runs = [subprocess.Popen([sys.executable, "-m", "pipelines.cli", "run", spec, "--data", data, "--store",
                              str(store), "--no-prefect", "--no-progress", "--json"], env=ENV,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(2)]
    results = []
    for process in runs:
        out, err = process.communicate(timeout=900)
        assert process.returncode == 0, err
        results.append(json.loads(out))
    assert results[0]["model_key"] == results[1]["model_key"]
    assert results[0]["embedding_key"] == results[1]["embedding_key"]
    values = embedding(store, results[0]["embedding_key"])
    assert values.shape == (300, 2) and np.isfinite(values).all()
    verify = runner.invoke(app, ["cache", "verify", "--store", str(store)])
    assert verify.exit_code == 0, verify.output
    from pipelines import catalog

    record = json.loads((store / "index" / "models").glob("*.json").__next__().read_text())
    assert [f["model"] for f in record["fits"]] == [results[0]["model_key"]]
    assert len(catalog.dataset_versions(ArtifactStore(store), os.path.abspath(data))) == 1
    assert os.listdir(store / ".tmp") == []
