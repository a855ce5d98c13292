"""`paradime export`: ONNX equals `paradime embed`; a web page folder; the guards on --out."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest
from typer.testing import CliRunner

from paradime_core.export.onnx import read_metadata, run_onnx
from pipelines.cli import app

runner = CliRunner()


def _ok(args: list[str]) -> str:
    result = runner.invoke(app, args)
    assert result.exit_code == 0, (result.stdout or "") + (result.stderr or "")
    return result.stdout


def _error(args: list[str]) -> str:
    result = runner.invoke(app, args)
    text = (result.stdout or "") + (result.stderr or "")
    assert result.exit_code == 1, text
    assert "Traceback" not in text
    return text


@pytest.fixture(scope="module")
def fitted(tmp_path_factory, data_dir) -> dict[str, str]:
    """The tiny spec fitted on digits (plain Python mode) and its model key."""
    from _pipeline_specs import tiny_spec

    folder = tmp_path_factory.mktemp("export")
    spec = folder / "tiny.yaml"
    spec.write_text(tiny_spec())
    store = str(folder / "store")
    out = _ok(["run", str(spec), "--data", f"{data_dir}/digits.npz", "--store", store, "--no-prefect",
               "--no-progress", "--json"])
    record = json.loads(out)
    return {"store": store, "spec": str(spec), "model": record["model_key"], "folder": str(folder)}


def test_onnx_equals_paradime_embed(fitted, data_dir, tmp_path):
    onnx_path = tmp_path / "model.onnx"
    _ok(["export", fitted["model"][:10], "--format", "onnx", "--out", str(onnx_path), "--store", fitted["store"]])
    rows = np.load(f"{data_dir}/digits_new.npz")["X"][:100]
    np.save(tmp_path / "rows.npy", rows)
    _ok(["embed", fitted["model"], "--data", str(tmp_path / "rows.npy"), "--out", str(tmp_path / "emb.npy"),
         "--store", fitted["store"], "--no-prefect", "--no-progress"])
    expected = np.load(tmp_path / "emb.npy")
    np.testing.assert_allclose(run_onnx(onnx_path, rows), expected, rtol=1e-5, atol=1e-5)
    meta = read_metadata(onnx_path)
    assert meta["paradime.input_width"] == "64" and meta["paradime.output_width"] == "2"
    assert json.loads(meta["paradime.spec"])["name"] == "tiny-umap"
    assert len(json.loads(meta["paradime.embedding_bounds"])) == 2  # from the model's own dataset


def test_export_by_spec_names_its_latest_model(fitted, tmp_path):
    out = _ok(["export", fitted["spec"], "--out", str(tmp_path / "m.onnx"), "--store", fitted["store"], "--json"])
    assert json.loads(out)["model"] == fitted["model"]


def test_onnx_out_guards(fitted, tmp_path):
    args = ["export", fitted["model"], "--out", str(tmp_path / "m.onnx"), "--store", fitted["store"]]
    _ok(args)
    assert "pass --overwrite" in _error(args)
    _ok([*args, "--overwrite"])
    mine = tmp_path / "notes.onnx"
    mine.write_text("a user's file")
    text = _error(["export", fitted["model"], "--out", str(mine), "--store", fitted["store"], "--overwrite"])
    assert "is not replaced: it has no paradime output record" in text
    assert mine.read_text() == "a user's file"


def test_export_mistakes_are_one_line(fitted, tmp_path):
    store = fitted["store"]
    assert "--format must be one of onnx, web" in _error(["export", fitted["model"], "--format", "pdf", "--out",
                                                         str(tmp_path / "x"), "--store", store])
    assert "model 'feedfacefeed'" in _error(["export", "feedfacefeed", "--out", str(tmp_path / "x.onnx"),
                                            "--store", store])
    assert "no method 'classify'" in _error(["export", fitted["model"], "--method", "classify", "--out",
                                            str(tmp_path / "x.onnx"), "--store", store])


def test_web_out_never_replaces_a_users_folder(fitted, tmp_path):
    folder = tmp_path / "site"
    folder.mkdir()
    (folder / "mine.txt").write_text("keep me")
    text = _error(["export", fitted["model"], "--format", "web", "--out", str(folder), "--store", fitted["store"],
                   "--overwrite", "--runtime", str(tmp_path)])
    assert "is not replaced" in text
    assert (folder / "mine.txt").read_text() == "keep me"


def test_run_export_needs_out(fitted, data_dir):
    text = _error(["run", fitted["spec"], "--data", f"{data_dir}/digits.npz", "--store", fitted["store"],
                   "--export", "web"])
    assert "--export needs --out" in text
    assert os.path.isdir(fitted["store"])


def test_run_out_folder_holds_the_exports(fitted, data_dir, tmp_path):
    """`run --out DIR --export onnx` (every stage cached): model.onnx beside the embedding, and
    a second run replaces the folder it wrote."""
    out = tmp_path / "out"
    args = ["run", fitted["spec"], "--data", f"{data_dir}/digits.npz", "--store", fitted["store"], "--no-prefect",
            "--no-progress", "--out", str(out), "--export", "onnx"]
    _ok(args)
    assert sorted(p.name for p in out.iterdir()) == ["embedding.npy", "embedding.png", "model.onnx"]
    rows = np.load(f"{data_dir}/digits.npz")["X"]
    np.testing.assert_allclose(run_onnx(out / "model.onnx", rows), np.load(out / "embedding.npy"),
                               rtol=1e-5, atol=1e-5)
    assert "pass --overwrite" in _error(args)
    _ok([*args, "--overwrite"])
