"""The artifact store: atomic publication, verification, listing and garbage collection."""

from __future__ import annotations

import os

import numpy as np
import pytest

from pipelines.errors import CorruptArtifact
from pipelines.store import ArtifactStore


def _publish(store: ArtifactStore, key: str, values: np.ndarray) -> None:
    with store.begin("derived", key, name="x") as writer:
        array = writer.group.create_array("value", shape=values.shape, chunks=(4,), dtype=values.dtype)
        array[...] = values
        writer.summary = {"n": len(values)}


def test_publish_then_read_back(tmp_path):
    store = ArtifactStore(tmp_path / "s")
    _publish(store, "k1", np.arange(10.0))
    manifest = store.verify("derived", "k1")
    assert manifest["summary"] == {"n": 10}
    assert manifest["name"] == "x"
    np.testing.assert_array_equal(store.open_group("derived", "k1")["value"][...], np.arange(10.0))
    assert not os.listdir(tmp_path / "s" / ".tmp")  # nothing left behind


def test_failed_stage_is_never_visible(tmp_path):
    store = ArtifactStore(tmp_path / "s")
    with pytest.raises(RuntimeError):
        with store.begin("derived", "k2") as writer:
            writer.group.create_array("value", shape=(3,), dtype="f8")[...] = 1.0
            raise RuntimeError("crash while writing")
    assert store.manifest("derived", "k2") is None
    assert not store.exists("derived", "k2")
    assert not os.listdir(tmp_path / "s" / ".tmp")


def test_group_without_manifest_is_not_trusted_and_gc_removes_leftovers(tmp_path):
    store = ArtifactStore(tmp_path / "s")
    import zarr

    zarr.open_group(str(tmp_path / "s" / "derived" / "half"), mode="w", zarr_format=3)  # a crashed copy
    os.makedirs(tmp_path / "s" / ".tmp" / "derived-abc")
    assert store.manifest("derived", "half") is None
    assert [i.complete for i in store.list("derived")] == [False]
    removed = store.gc()
    assert sorted(removed) == [".tmp/derived-abc", "derived/half"]
    assert store.list() == []


def test_verify_detects_missing_truncated_and_overwritten_files(tmp_path):
    store = ArtifactStore(tmp_path / "s")
    _publish(store, "k3", np.arange(12.0))
    chunk = tmp_path / "s" / "derived" / "k3" / "value" / "c" / "1"
    original = chunk.read_bytes()
    chunk.write_bytes(bytes(len(original)))  # same size, other bytes
    with pytest.raises(CorruptArtifact, match="checksum"):
        store.verify("derived", "k3")
    chunk.write_bytes(original[:-1])
    with pytest.raises(CorruptArtifact, match="bytes"):
        store.verify("derived", "k3")
    chunk.unlink()
    with pytest.raises(CorruptArtifact, match="missing"):
        store.verify("derived", "k3")


def test_fsspec_memory_store_round_trip():
    store = ArtifactStore("memory://paradime-test-store")
    _publish(store, "k4", np.arange(6.0))
    assert not store.is_local
    assert store.verify("derived", "k4")["summary"] == {"n": 6}
    np.testing.assert_array_equal(store.open_group("derived", "k4")["value"][...], np.arange(6.0))
    store.write_json("index/x.json", {"a": 1})
    assert store.read_json("index/x.json") == {"a": 1}
    assert [i.key for i in store.find("k4")] == ["k4"]
    assert store.remove("derived", "k4") and store.list() == []


def test_store_root_from_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("PARADIME_STORE", str(tmp_path / "env-store"))
    assert ArtifactStore().url == str(tmp_path / "env-store")
    assert ArtifactStore(tmp_path / "explicit").url == str(tmp_path / "explicit")
