"""Outputs (``--out``) never destroy or silently replace user data.

An output that is the input, lies inside it or contains it (or the store) is refused; an
existing output is refused without ``--overwrite``, and with it only an unchanged output
that paradime wrote is replaced; outputs are written under a temporary name and renamed
into place, so a failed write leaves the old output as it was.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from pipelines.cli import app
from pipelines.errors import PipelineError
from pipelines.outputs import check_output, marker_of, staged_output

from ._store_faults import fitted_store

runner = CliRunner()


def _one_error_line(result) -> str:
    text = result.stdout + result.stderr
    assert result.exit_code == 1, text
    lines = [line for line in text.splitlines() if line.strip()]
    assert len(lines) == 1 and "Traceback" not in text, lines
    assert lines[0].startswith("error: ")
    return lines[0]


def _leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if "paradime-tmp" in p.name or "paradime-old" in p.name)


@pytest.fixture(scope="module")
def fitted():
    store, spec, data, result, _ = fitted_store()
    return store, spec, data, result


def _embed(fitted, data: str, out: Path | str, *extra: str):
    store, _, _, result = fitted
    return runner.invoke(app, ["embed", result.model_key[:12], "--data", str(data), "--out", str(out),
                               "--store", str(store), "--no-prefect", "--no-progress", *extra])


def _zarr_input(folder: Path) -> Path:
    import zarr

    X = np.random.default_rng(0).random((50, 64)).astype(np.float32)
    path = folder / "in.zarr"
    zarr.create_array(str(path), shape=X.shape, chunks=(25, 64), dtype=X.dtype)[...] = X
    return path


# --------------------------------------------------------------------------- the command line
@pytest.mark.parametrize("overwrite", [[], ["--overwrite"]])
def test_embed_out_that_is_its_zarr_input_is_refused(fitted, tmp_path, overwrite):
    import zarr

    source = _zarr_input(tmp_path)
    before = np.asarray(zarr.open_array(str(source))[...])
    line = _one_error_line(_embed(fitted, source, source, *overwrite))
    assert f"--out {source} is the input" in line
    np.testing.assert_array_equal(zarr.open_array(str(source), mode="r")[...], before)


def test_embed_out_inside_its_input_is_refused(fitted, tmp_path):
    source = _zarr_input(tmp_path)
    line = _one_error_line(_embed(fitted, source, source / "embedding.npy"))
    assert "lies inside the input" in line
    assert not (source / "embedding.npy").exists()


@pytest.mark.parametrize("overwrite", [[], ["--overwrite"]])
def test_embed_out_onto_a_user_folder_keeps_its_files(fitted, tmp_path, overwrite):
    folder = tmp_path / "mine.zarr"
    folder.mkdir()
    (folder / "notes.txt").write_text("my notes")
    line = _one_error_line(_embed(fitted, fitted[2], folder, *overwrite))
    assert ("already exists" in line) if not overwrite else ("no paradime output record" in line)
    assert (folder / "notes.txt").read_text() == "my notes" and os.listdir(folder) == ["notes.txt"]


def test_embed_out_onto_a_user_file_is_refused_even_with_overwrite(fitted, tmp_path):
    mine = tmp_path / "mine.npy"
    np.save(mine, np.arange(3))
    line = _one_error_line(_embed(fitted, fitted[2], mine, "--overwrite"))
    assert "is not replaced" in line and "no paradime output record" in line
    np.testing.assert_array_equal(np.load(mine), np.arange(3))


def test_an_output_is_replaced_only_with_overwrite(fitted, tmp_path):
    out = tmp_path / "emb.npy"
    first = _embed(fitted, fitted[2], out)
    assert first.exit_code == 0, first.output
    values = np.load(out)
    assert values.shape == (300, 2) and Path(marker_of(str(out))).exists()
    line = _one_error_line(_embed(fitted, fitted[2], out))
    assert "already exists; pass --overwrite" in line
    again = _embed(fitted, fitted[2], out, "--overwrite")
    assert again.exit_code == 0, again.output
    np.testing.assert_array_equal(np.load(out), values)
    assert _leftovers(tmp_path) == []


def test_an_output_changed_after_paradime_wrote_it_is_not_replaced(fitted, tmp_path):
    out = tmp_path / "emb.csv"
    assert _embed(fitted, fitted[2], out).exit_code == 0
    with open(out, "a") as handle:
        handle.write("1.0,2.0\n")  # the user's own row
    line = _one_error_line(_embed(fitted, fitted[2], out, "--overwrite"))
    assert "was changed after paradime wrote it" in line
    assert out.read_text().endswith("1.0,2.0\n")


def test_a_zarr_output_is_a_clean_zarr_and_is_swapped_whole(fitted, tmp_path):
    import xarray as xr

    out = tmp_path / "emb.zarr"
    assert _embed(fitted, fitted[2], out).exit_code == 0
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no foreign file inside the Zarr hierarchy
        first = xr.open_zarr(out, consolidated=False)["embedding"].values
    again = _embed(fitted, fitted[2], out, "--overwrite")
    assert again.exit_code == 0, again.output
    np.testing.assert_array_equal(xr.open_zarr(out, consolidated=False)["embedding"].values, first)
    assert _leftovers(tmp_path) == []


def test_run_out_folder_needs_overwrite_and_keeps_user_files(fitted, tmp_path):
    store, spec, data, _ = fitted
    out = tmp_path / "demo"
    args = ["run", spec, "--data", data, "--store", str(store), "--no-prefect", "--no-progress", "--out", str(out)]
    first = runner.invoke(app, args)
    assert first.exit_code == 0, first.output
    assert sorted(os.listdir(out)) == ["embedding.npy", "embedding.png"]
    line = _one_error_line(runner.invoke(app, args))
    assert "already exists; pass --overwrite" in line
    assert runner.invoke(app, [*args, "--overwrite"]).exit_code == 0
    (out / "notes.txt").write_text("mine")
    line = _one_error_line(runner.invoke(app, [*args, "--overwrite"]))
    assert f"{out / 'notes.txt'} was not written by paradime" in line
    assert (out / "notes.txt").read_text() == "mine" and _leftovers(tmp_path) == []


def test_run_out_that_contains_the_input_is_refused_before_any_work(fitted, tmp_path):
    store, spec, data, _ = fitted
    line = _one_error_line(runner.invoke(app, ["run", spec, "--data", data, "--store", str(store), "--no-prefect",
                                               "--out", str(Path(data).parent), "--overwrite"]))
    assert "contains the input" in line
    assert Path(data).exists()


# --------------------------------------------------------------------------- the rules
def test_outputs_inside_or_around_the_store_are_refused(tmp_path):
    store = tmp_path / "store"
    (store / "phases").mkdir(parents=True)
    with pytest.raises(PipelineError, match="lies inside the artifact store"):
        check_output(str(store / "emb.npy"), store_root=str(store))
    with pytest.raises(PipelineError, match="contains the artifact store"):
        check_output(str(tmp_path), overwrite=True, store_root=str(store))


def test_urls_and_symbolic_links_are_refused(tmp_path):
    with pytest.raises(PipelineError, match="local path"):
        check_output("s3://bucket/emb.zarr")
    (tmp_path / "real.npy").write_bytes(b"x")
    os.symlink(tmp_path / "real.npy", tmp_path / "link.npy")
    with pytest.raises(PipelineError, match="symbolic link"):
        check_output(str(tmp_path / "link.npy"), overwrite=True)


def test_an_existing_empty_folder_is_used(tmp_path):
    (tmp_path / "empty").mkdir()
    with staged_output(str(tmp_path / "empty")) as tmp:
        os.makedirs(tmp)
        Path(tmp, "a.txt").write_text("a")
    assert os.listdir(tmp_path / "empty") == ["a.txt"]


def test_a_failed_write_leaves_the_old_output_as_it_was(tmp_path):
    out = tmp_path / "result"
    with staged_output(str(out)) as tmp:
        os.makedirs(tmp)
        Path(tmp, "a.txt").write_text("old")
    with pytest.raises(RuntimeError):
        with staged_output(str(out), overwrite=True) as tmp:
            os.makedirs(tmp)
            Path(tmp, "a.txt").write_text("new, half written")
            assert (out / "a.txt").read_text() == "old"  # the old output stays until the new one is whole
            raise RuntimeError("disk full")
    assert (out / "a.txt").read_text() == "old"
    assert _leftovers(tmp_path) == []
    with staged_output(str(out), overwrite=True) as tmp:  # and is still paradime's to replace
        os.makedirs(tmp)
        Path(tmp, "a.txt").write_text("new")
    assert (out / "a.txt").read_text() == "new" and _leftovers(tmp_path) == []
