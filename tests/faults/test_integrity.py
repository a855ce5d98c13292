"""Byte flips in every artifact kind, small and large files: found, reported, recomputed.

- store level: a stage of each kind with a small file and with a file over 1 MiB; one
  flipped byte is found by ``verify`` (and not by the cheap ``check``, which reads no file);
  checksums are computed while writing (no file is read back to publish a stage); a flip in
  a stage's ``zarr.json`` (manifest or attributes) breaks its seal;
- index records (plans, sources, versions, models, runs): a flipped byte is reported with a
  CacheWarning and the record is treated as absent;
- a real run: a flipped byte in each stage kind is found when the stage is read, reported
  with a CacheWarning and recomputed, and the final embedding is unchanged;
- ``embed`` with a damaged model stops with one line naming it; ``cache verify`` names every
  damaged stage and record.
"""

from __future__ import annotations

import json
import os
import shutil
import warnings
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from pipelines import integrity
from pipelines.cli import app
from pipelines.errors import CacheWarning, CorruptArtifact
from pipelines.store import STAGE_KINDS, ArtifactStore

from ._store_faults import chunk_files, embedding, fit, fitted_store, flip_byte, write_inputs

runner = CliRunner()
LARGE = 1 << 20


def _publish(store: ArtifactStore, kind: str, key: str, values: np.ndarray) -> Path:
    with store.begin(kind, key, name="x") as writer:
        array = writer.group.create_array("value", shape=values.shape, chunks=values.shape, dtype=values.dtype)
        array[...] = values
        writer.group.attrs["note"] = "attribute"
    return Path(store.stage_path(kind, key))


def _values(size: str) -> np.ndarray:
    rng = np.random.default_rng(0)
    return rng.normal(size=(64,) if size == "small" else (LARGE // 4 + 4096,))


# --------------------------------------------------------------------------- store level
@pytest.mark.parametrize("size", ["small", "large"])
@pytest.mark.parametrize("kind", STAGE_KINDS)
def test_a_flipped_byte_in_any_stage_file_is_found(tmp_path, kind, size):
    store = ArtifactStore(tmp_path / "store")
    stage = _publish(store, kind, "k" * 32, _values(size))
    chunk = chunk_files(stage)[0]
    assert (chunk.stat().st_size > LARGE) == (size == "large")
    store.verify(kind, "k" * 32)
    flip_byte(chunk)
    assert store.check(kind, "k" * 32) is not None  # the cheap check reads no file
    with pytest.raises(CorruptArtifact, match=f"{kind}/k+: file value/c/0 does not match its checksum"):
        store.verify(kind, "k" * 32)


def test_checksums_are_computed_while_writing(tmp_path, monkeypatch):
    store = ArtifactStore(tmp_path / "store")
    read_back = []
    original = integrity.file_digest
    monkeypatch.setattr(integrity, "file_digest", lambda fs, path: read_back.append(path) or original(fs, path))
    stage = _publish(store, "derived", "k" * 32, _values("large"))
    assert read_back == []  # every file's digest was taken from the bytes being written
    manifest = store.verify("derived", "k" * 32)
    assert set(manifest["checksums"]) == set(manifest["files"]) == {"value/zarr.json", "value/c/0"}
    assert manifest["checksums"]["value/c/0"] == original(store.fs, str(stage / "value/c/0"))


def test_each_file_is_hashed_once_per_process_while_unchanged(tmp_path, monkeypatch):
    store = ArtifactStore(tmp_path / "store")
    stage = _publish(store, "knn", "k" * 32, _values("small"))
    for path in stage.rglob("*"):  # a stage published a minute ago
        os.utime(path, ns=(path.stat().st_atime_ns, path.stat().st_mtime_ns - 60 * 10**9))
    store.verify("knn", "k" * 32)
    hashed = []
    original = integrity.file_digest
    monkeypatch.setattr(integrity, "file_digest", lambda fs, path: hashed.append(path) or original(fs, path))
    store.verify("knn", "k" * 32)
    assert hashed == []
    flip_byte(chunk_files(stage)[0])  # a write changes the modification time: hashed again
    with pytest.raises(CorruptArtifact):
        store.verify("knn", "k" * 32)
    assert len(hashed) >= 1


def test_a_file_just_written_is_hashed_on_every_check(tmp_path, monkeypatch):
    """Within a clock tick a write may keep the modification time: fresh files are not remembered."""
    store = ArtifactStore(tmp_path / "store")
    stage = _publish(store, "knn", "k" * 32, _values("small"))
    store.verify("knn", "k" * 32)
    chunk = chunk_files(stage)[0]
    stamp = chunk.stat().st_mtime_ns
    flip_byte(chunk)
    os.utime(chunk, ns=(stamp, stamp))  # the same modification time as when it was verified
    with pytest.raises(CorruptArtifact, match="does not match its checksum"):
        store.verify("knn", "k" * 32)


@pytest.mark.parametrize("field", ["attribute", "manifest"])
def test_a_changed_zarr_json_breaks_the_seal(tmp_path, field):
    store = ArtifactStore(tmp_path / "store")
    stage = _publish(store, "phases", "k" * 32, _values("small"))
    meta_path = stage / "zarr.json"
    meta = json.loads(meta_path.read_text())
    if field == "attribute":
        meta["attributes"]["note"] = "attributf"
    else:
        meta["attributes"]["paradime"]["summary"] = {"n_items": 2}
    meta_path.write_text(json.dumps(meta, indent=1))
    with pytest.raises(CorruptArtifact, match="zarr.json .* was changed"):
        store.check("phases", "k" * 32)


def test_a_zarr_json_that_no_longer_parses_is_damaged(tmp_path):
    store = ArtifactStore(tmp_path / "store")
    stage = _publish(store, "reports", "k" * 32, _values("small"))
    (stage / "zarr.json").write_bytes((stage / "zarr.json").read_bytes()[:-7])
    with pytest.raises(CorruptArtifact, match="not valid JSON"):
        store.check("reports", "k" * 32)


@pytest.mark.parametrize("record", ["index/plans/p.json", "index/sources/s.json", "index/versions/v.json",
                                    "index/models/m.json", "runs/r.json"])
def test_a_flipped_byte_in_an_index_record_is_reported_and_ignored(tmp_path, record):
    store = ArtifactStore(tmp_path / "store")
    store.write_json(record, {"key": "0123456789abcdef", "fits": [1, 2, 3], "n_items": 300})
    assert store.read_json(record)["n_items"] == 300
    path = tmp_path / "store" / record
    text = path.read_text()
    path.write_text(text.replace("300", "301"))  # still valid JSON, another value
    with pytest.warns(CacheWarning, match=f"record {record} does not match its checksum"):
        assert store.read_json(record) is None
    path.write_text(text[: len(text) // 2])  # no longer JSON
    with pytest.warns(CacheWarning, match="not valid JSON"):
        assert store.read_json(record) is None
    verify = runner.invoke(app, ["cache", "verify", "--store", str(tmp_path / "store")])
    assert verify.exit_code == 1 and record in verify.stderr


# --------------------------------------------------------------------------- a real run
@pytest.fixture(scope="module")
def fitted():
    """A tiny spec fitted once (store, spec, data, run result, stage keys by kind:name)."""
    return fitted_store()


# Each damaged stage, and the stages removed so that the rerun reads it.
READERS = {
    "datasets:data": ["phases:main"],
    "knn:p": ["relations:p"],
    "relations:p": ["phases:main"],
    "derived:pca": ["phases:main"],
    "phases:init": ["phases:main"],
    "phases:main": [],          # the final model, embedding and report are verified by every run
    "embeddings:train": [],
    "reports:train": [],
}


@pytest.mark.parametrize("stage", list(READERS))
def test_run_recomputes_a_damaged_stage_with_a_warning(fitted, tmp_path, stage):
    source, spec, data, cold, keys = fitted
    store = tmp_path / "store"
    shutil.copytree(source, store)
    kind = stage.split(":")[0]
    flip_byte(chunk_files(store / kind / keys[stage])[0])
    for reader in READERS[stage]:
        ArtifactStore(store).remove(reader.split(":")[0], keys[reader])
    with pytest.warns(CacheWarning) as caught:
        result = fit(spec, data, store)
    messages = [str(w.message) for w in caught if issubclass(w.category, CacheWarning)]
    assert any(keys[stage][:12] in m and "does not match its checksum" in m for m in messages), messages
    assert result.status()[stage] == "recomputed"
    np.testing.assert_array_equal(embedding(store, result.embedding_key), embedding(source, cold.embedding_key))
    ArtifactStore(store).verify(kind, keys[stage])  # the damaged copy was replaced


def test_embed_with_a_damaged_model_stops_with_one_line(fitted, tmp_path):
    source, spec, data, cold, keys = fitted
    store = tmp_path / "store"
    shutil.copytree(source, store)
    weights = sorted((store / "phases" / cold.model_key / "weights").rglob("c/*"))
    flip_byte(next(p for p in weights if p.is_file()))
    out = tmp_path / "emb.npy"
    done = runner.invoke(app, ["embed", cold.model_key[:12], "--data", data, "--store", str(store), "--out",
                               str(out), "--no-prefect", "--no-progress"])
    text = done.stdout + done.stderr
    assert done.exit_code == 1, text
    lines = [line for line in text.splitlines() if line.strip()]
    assert len(lines) == 1 and "Traceback" not in text, lines
    assert lines[0].startswith(f"error: model {cold.model_key[:12]} is damaged") and "weights/" in lines[0]
    assert not out.exists()


def test_cache_verify_names_every_damaged_stage(fitted, tmp_path):
    source, _, _, _, keys = fitted
    store = tmp_path / "store"
    shutil.copytree(source, store)
    clean = runner.invoke(app, ["cache", "verify", "--store", str(store)])
    assert clean.exit_code == 0, clean.output
    assert "0 damaged" in clean.stdout
    for stage in ("knn:p", "phases:init", "embeddings:train"):
        kind = stage.split(":")[0]
        flip_byte(chunk_files(store / kind / keys[stage])[0])
    (store / "derived" / keys["derived:pca"] / "value" / "c" / "0" / "0").unlink()
    damaged = runner.invoke(app, ["cache", "verify", "--store", str(store)])
    assert damaged.exit_code == 1
    named = [line.split()[1].rstrip(":") for line in damaged.stderr.splitlines() if line.startswith("damaged:")]
    assert sorted(named) == sorted(f"{s.split(':')[0]}/{keys[s]}" for s in
                                   ("knn:p", "phases:init", "embeddings:train", "derived:pca"))
    one = runner.invoke(app, ["cache", "verify", f"knn/{keys['knn:p'][:8]}", "--store", str(store)])
    assert one.exit_code == 1 and "1 item(s) checked, 1 damaged" in one.stdout
    fine = runner.invoke(app, ["cache", "verify", f"relations/{keys['relations:p'][:8]}", "--store", str(store)])
    assert fine.exit_code == 0


@pytest.mark.slow
def test_a_large_dataset_chunk_flipped_is_found_and_ingested_again(tmp_path):
    """A dataset whose chunk file is over 1 MiB (random rows, little compression)."""
    spec, data = write_inputs(tmp_path / "inputs", rows=1200, features=256)
    store = tmp_path / "store"
    cold = fit(spec, data, store)
    key = cold.dataset_key
    chunk = chunk_files(store / "datasets" / key)[0]
    assert chunk.stat().st_size > LARGE
    flip_byte(chunk)
    verify = runner.invoke(app, ["cache", "verify", "--store", str(store)])
    assert verify.exit_code == 1 and f"datasets/{key}" in verify.stderr
    ArtifactStore(store).remove("phases", cold.model_key)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = fit(spec, data, store)
    assert any("dataset" in str(w.message) and "checksum" in str(w.message) for w in caught)
    assert result.status()["datasets:data"] == "recomputed"
    np.testing.assert_array_equal(embedding(store, result.embedding_key), embedding(store, cold.embedding_key))
    assert runner.invoke(app, ["cache", "verify", "--store", str(store)]).exit_code == 0
