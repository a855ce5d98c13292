"""Ingest of every supported format into dataset groups keyed by content."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import xarray as xr
import zarr

from pipelines import ingest as ingest_module
from pipelines.errors import DataError
from pipelines.fingerprint import array_fingerprint
from pipelines.flows import ingest_stage
from pipelines.ingest import from_arrays, ingest, load_dataset, open_source
from pipelines.store import ArtifactStore


@pytest.fixture()
def table():
    rng = np.random.default_rng(3)
    X = rng.normal(size=(50, 4))
    y = rng.integers(0, 3, 50)
    return X, y


def _frame(X, y):
    frame = pd.DataFrame(X, columns=[f"f{i}" for i in range(X.shape[1])])
    frame["label"] = y
    return frame


def test_every_format_gives_the_same_dataset(tmp_path, table):
    X, y = table
    np.savez(tmp_path / "a.npz", X=X, y=y)
    _frame(X, y).to_csv(tmp_path / "a.csv", index=False)
    _frame(X, y).to_parquet(tmp_path / "a.parquet", index=False)
    group = zarr.open_group(str(tmp_path / "a.zarr"), mode="w", zarr_format=3)
    group.create_array("main", shape=X.shape, dtype=X.dtype)[...] = X
    group.create_array("y", shape=y.shape, dtype=y.dtype)[...] = y
    xr.Dataset({"main": (("sample", "feature"), X), "y": ("sample", y)}).to_zarr(
        tmp_path / "x.zarr", zarr_format=3, consolidated=False)
    store = ArtifactStore(tmp_path / "store")
    keys = set()
    for name in ("a.npz", "a.csv", "a.parquet", "a.zarr", "x.zarr"):
        result = ingest(open_source(tmp_path / name), store)
        keys.add(result.ref.key)
        assert result.fingerprints["main"] == array_fingerprint(X)
        assert result.fingerprints["y"] == array_fingerprint(y.astype(np.int64))
    assert len(keys) == 1
    stored = load_dataset(store, keys.pop())
    np.testing.assert_array_equal(stored["main"], X)
    np.testing.assert_array_equal(stored["y"], y)
    ds = xr.open_zarr(store.zarr_location(store.stage_path("datasets", result.ref.key)), consolidated=False)
    assert ds["main"].dims == ("sample", "feature") and ds.sizes["sample"] == 50


def test_npy_and_xarray_objects(tmp_path, table):
    X, _ = table
    np.save(tmp_path / "a.npy", X)
    store = ArtifactStore(tmp_path / "store")
    from_file = ingest(open_source(tmp_path / "a.npy"), store)
    from_xarray = ingest(from_arrays(xr.DataArray(X, dims=("sample", "feature"), name="main")), store)
    assert from_file.ref.key == from_xarray.ref.key
    assert from_xarray.status == "cached"  # same content, already stored


def test_folder_of_parts_is_their_concatenation(tmp_path, table):
    X, y = table
    parts = tmp_path / "parts"
    parts.mkdir()
    _frame(X[:20], y[:20]).to_csv(parts / "part-000.csv", index=False)
    _frame(X[20:], y[20:]).to_csv(parts / "part-001.csv", index=False)
    _frame(X, y).to_csv(tmp_path / "whole.csv", index=False)
    store = ArtifactStore(tmp_path / "store")
    assert ingest(open_source(parts), store).ref.key == ingest(open_source(tmp_path / "whole.csv"), store).ref.key


def test_text_labels_become_codes(tmp_path, table):
    X, y = table
    frame = _frame(X, y)
    frame["label"] = np.array(["cat", "dog", "emu"])[y]
    frame.to_csv(tmp_path / "t.csv", index=False)
    store = ArtifactStore(tmp_path / "store")
    result = ingest(open_source(tmp_path / "t.csv"), store)
    codes = load_dataset(store, result.ref.key)["y"]
    classes = store.open_group("datasets", result.ref.key).attrs["label_classes"]
    np.testing.assert_array_equal(np.array(classes)[codes], frame["label"].to_numpy())


def test_bad_data_is_named(tmp_path):
    store = ArtifactStore(tmp_path / "store")
    X = np.ones((10, 3))
    X[7, 1] = np.nan
    np.savez(tmp_path / "nan.npz", X=X)
    with pytest.raises(DataError, match="row 7"):
        ingest(open_source(tmp_path / "nan.npz"), store)
    np.savez(tmp_path / "len.npz", X=np.ones((10, 3)), y=np.ones(9))
    with pytest.raises(DataError, match="'y' has 9 rows"):
        open_source(tmp_path / "len.npz")
    (tmp_path / "a.xyz").write_text("1")
    with pytest.raises(DataError, match="unknown data format"):
        open_source(tmp_path / "a.xyz")
    with pytest.raises(DataError, match="not found"):
        open_source(tmp_path / "missing.npz")
    assert store.list() == []


def test_unchanged_file_is_not_read_again(tmp_path, table, monkeypatch):
    X, y = table
    np.savez(tmp_path / "a.npz", X=X, y=y)
    store = ArtifactStore(tmp_path / "store")
    first = ingest_stage(str(tmp_path / "a.npz"), store, progress=False)
    assert first[1].status == "computed"

    def forbidden(*args, **kwargs):
        raise AssertionError("the data file was opened on a warm run")

    monkeypatch.setattr(ingest_module, "open_source", forbidden)
    monkeypatch.setattr(ingest_module, "ArrayHasher", forbidden)
    second = ingest_stage(str(tmp_path / "a.npz"), store, progress=False)
    assert second[1].status == "cached" and second[0].key == first[0].key


def test_netcdf_file(tmp_path, table):
    X, y = table
    xr.Dataset({"main": (("sample", "feature"), X), "y": ("sample", y.astype(np.int32))}).to_netcdf(tmp_path / "a.nc")
    result = ingest(open_source(tmp_path / "a.nc"), ArtifactStore(tmp_path / "store"))
    assert result.fingerprints["main"] == array_fingerprint(X)
    assert result.fingerprints["y"] == array_fingerprint(y.astype(np.int32))
