"""The Prefect flows: which stages execute, reuse across specs, damage recovery, embed, Dask."""

from __future__ import annotations

import shutil
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
from _pipeline_specs import N_ROWS, tiny_spec

from pipelines.artifacts import load_routine
from pipelines.errors import CacheWarning
from pipelines.flows import embed_flow, fit_flow, retrain_flow
from pipelines.store import ArtifactStore

ALL_STAGES = ["datasets:digits", "derived:pca", "knn:p", "relations:p", "phases:init", "phases:main",
              "embeddings:train", "reports:train"]

pytestmark = pytest.mark.usefixtures("prefect_server")


def _fit(spec: str, data: str, store: Path, **kwargs):
    return fit_flow(spec, data, str(store), progress=False, **kwargs)


def _embedding(store: Path, key: str) -> np.ndarray:
    return np.asarray(ArtifactStore(store).open_group("embeddings", key)["embedding"][...])


@pytest.fixture(scope="module")
def fitted(tmp_path_factory, data_dir):
    """One cold fit shared by several tests (store, data path, result)."""
    store = tmp_path_factory.mktemp("fitted") / "store"
    spec = tmp_path_factory.mktemp("spec") / "tiny.yaml"
    spec.write_text(tiny_spec())
    data = f"{data_dir}/digits.npz"
    result = _fit(str(spec), data, store)
    return store, str(spec), data, result


def test_cold_run_then_identical_rerun_executes_nothing(fitted):
    store, spec, data, cold = fitted
    assert cold.executed() == ALL_STAGES
    assert set(cold.metrics) >= {"trustworthiness", "knn_accuracy"}
    assert 0.5 < cold.metrics["trustworthiness"] <= 1.0
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey

    with get_client(sync_client=True) as client:
        artifacts = client.read_artifacts(artifact_filter=ArtifactFilter(key=ArtifactFilterKey(
            any_=["paradime-metrics", "paradime-embedding", "paradime-stages"])))
    assert {a.key for a in artifacts} == {"paradime-metrics", "paradime-embedding", "paradime-stages"}
    warm = _fit(spec, data, store)
    assert warm.executed() == []
    assert warm.model_key == cold.model_key and warm.embedding_key == cold.embedding_key
    assert _embedding(store, warm.embedding_key).shape == (N_ROWS, 2)


def test_cached_run_imports_neither_torch_nor_the_core(fitted):
    """The warm path reads small JSON files only (run in a fresh interpreter, without Prefect)."""
    store, spec, data, cold = fitted
    code = ("import sys; from pipelines.flows import run_spec; "
            f"r = run_spec({spec!r}, {data!r}, {str(store)!r}, progress=False); "
            "print(r.executed(), r.model_key, sorted(m for m in ('torch', 'paradime_core.spec.blocks', "
            "'paradime_core.training.loop', 'sklearn', 'zarr') "
            "if m in sys.modules))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["[]", cold.model_key, "[]"]


def test_changing_last_phase_epochs_reruns_only_that_phase_and_what_follows(fitted, tmp_path):
    store, _, data, cold = fitted
    spec = tmp_path / "tiny4.yaml"
    spec.write_text(tiny_spec(main_epochs=4))
    result = _fit(str(spec), data, store)
    assert result.executed() == ["phases:main", "embeddings:train", "reports:train"]
    history = ArtifactStore(store).open_group("phases", result.model_key).attrs["history"]
    assert len(history["main"]["total"]) == 4 and len(history["init"]["total"]) == 2


def test_two_specs_sharing_a_relation_recipe_compute_it_once(fitted, tmp_path):
    store, _, data, _ = fitted
    other = tmp_path / "renamed.yaml"
    other.write_text(tiny_spec(main_epochs=5, relation_name="neighbours"))
    result = _fit(str(other), data, store)
    status = result.status()
    assert status["knn:neighbours"] == "cached" and status["relations:neighbours"] == "cached"
    assert status["phases:main"] == "computed"


def test_new_data_recomputes_from_ingest(fitted, data_dir):
    store, spec, _, cold = fitted
    result = _fit(spec, f"{data_dir}/digits_new.npz", store)
    assert result.executed() == [s.replace("digits", "digits_new") for s in ALL_STAGES]
    assert result.dataset_key != cold.dataset_key


def test_damaged_cache_entries_warn_and_are_recomputed(fitted, tmp_path):
    source, spec, data, cold = fitted
    store = tmp_path / "store"
    shutil.copytree(source, store)
    phase_dir = store / "phases" / cold.model_key
    chunk = next(p for p in sorted((phase_dir / "weights").rglob("*")) if p.is_file() and p.name != "zarr.json")
    chunk.write_bytes(b"\x00" * chunk.stat().st_size)  # same size, other bytes
    # a chunk of this run's kNN entry (the module's other tests add entries of other data)
    knn_key = next(r.key for r in cold.records if r.kind == "knn")
    knn_chunk = next(p for p in sorted((store / "knn" / knn_key).rglob("*")) if p.is_file() and "c" in p.parts)
    knn_chunk.unlink()
    with pytest.warns(CacheWarning) as caught:
        result = _fit(spec, data, store)
    messages = " ".join(str(w.message) for w in caught)
    assert "checksum" in messages and "missing" in messages
    status = result.status()
    assert status["phases:main"] == "recomputed" and status["knn:p"] == "recomputed"
    assert status["phases:init"] == "cached" and status["relations:p"] == "cached"
    np.testing.assert_allclose(_embedding(store, result.embedding_key), _embedding(source, cold.embedding_key),
                               atol=1e-6)


def test_embed_flow_equals_routine_transform(fitted, data_dir, tmp_path, digits):
    store, _, _, cold = fitted
    out = tmp_path / "embedding.zarr"
    result = embed_flow(cold.model_key[:10], f"{data_dir}/digits_new.npz", str(store), out=str(out),
                        progress=False)
    assert result.executed()[-1] == "embeddings:embed"
    assert set(result.executed()) <= {"datasets:digits_new", "embeddings:embed"}
    routine = load_routine(ArtifactStore(store), cold.model_key)
    X_new = np.load(f"{data_dir}/digits_new.npz")["X"]
    expected = routine.transform(X_new)
    np.testing.assert_allclose(_embedding(store, result.embedding_key), expected, rtol=1e-5, atol=1e-5)
    import xarray as xr

    exported = xr.open_zarr(out, consolidated=False)
    np.testing.assert_allclose(exported["embedding"].values, expected, rtol=1e-5, atol=1e-5)
    assert exported.attrs["model_key"] == cold.model_key
    assert exported.attrs["data_fingerprint"] and exported.attrs["spec_hash"]
    again = embed_flow(cold.model_key, f"{data_dir}/digits_new.npz", str(store), progress=False)
    assert again.executed() == []


def test_embedding_a_zarr_array_in_place(fitted, tmp_path, digits):
    import zarr

    store, _, _, cold = fitted
    X = np.ascontiguousarray(digits[0][::-1])  # rows never seen by the store
    array = zarr.create_array(str(tmp_path / "rows.zarr"), shape=X.shape, chunks=(64, X.shape[1]), dtype=X.dtype)
    array[...] = X
    result = embed_flow(cold.model_key, str(tmp_path / "rows.zarr"), str(store), progress=False)
    assert result.executed() == ["embeddings:embed"]  # no ingest: read where it lies
    expected = load_routine(ArtifactStore(store), cold.model_key).transform(X)
    np.testing.assert_allclose(_embedding(store, result.embedding_key), expected, rtol=1e-5, atol=1e-5)
    same_content = embed_flow(cold.model_key, str(tmp_path / "rows.zarr"), str(store), progress=False)
    assert same_content.executed() == [] and same_content.embedding_key == result.embedding_key


def test_two_process_dask_cluster_gives_identical_results(fitted, tmp_path):
    from distributed import LocalCluster

    _, spec, data, cold = fitted
    store = tmp_path / "store"
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=":0") as cluster:
        result = _fit(spec, data, store, dask_address=cluster.scheduler_address)
    assert result.executed() == ALL_STAGES and result.model_key == cold.model_key
    source = fitted[0]
    knn = ArtifactStore(store).open_group("knn", result.records[2].key)
    knn_default = ArtifactStore(source).open_group("knn", result.records[2].key)
    np.testing.assert_array_equal(knn["indices"][...], knn_default["indices"][...])
    np.testing.assert_array_equal(_embedding(store, result.embedding_key), _embedding(source, cold.embedding_key))


def test_retrain_makes_a_new_version_and_warm_starts(tmp_path, data_dir, spec_file):
    store = tmp_path / "store"
    data = tmp_path / "live.npz"
    shutil.copy(f"{data_dir}/digits.npz", data)
    first = retrain_flow(spec_file, str(data), str(store), progress=False)
    assert first.dataset_version == 1
    assert first.executed() == [s.replace("digits", "live") for s in ALL_STAGES]
    shutil.copy(f"{data_dir}/digits_new.npz", data)  # new data arrives at the same path
    second = retrain_flow(spec_file, str(data), str(store), progress=False)
    assert second.dataset_version == 2 and second.dataset_key != first.dataset_key
    assert second.executed() == [s.replace("digits", "live") for s in ALL_STAGES]
    init = next(r for r in second.records if r.kind == "phases" and r.name == "init")
    start = ArtifactStore(store).manifest("phases", init.key)["inputs"]["previous"]
    assert start["warm_start"] == first.model_key  # the first phase starts from the last model
    with warnings.catch_warnings():
        warnings.simplefilter("error", CacheWarning)
        third = retrain_flow(spec_file, str(data), str(store), progress=False)  # nothing new
    assert third.executed() == [] and third.model_key == second.model_key and third.dataset_version == 2


def test_embedding_with_a_saved_routine_file(fitted, data_dir, tmp_path):
    from pipelines.flows import run_embed

    store, _, data, cold = fitted
    routine = load_routine(ArtifactStore(store), cold.model_key)
    path = routine.save(tmp_path / "model.pt")
    result = run_embed(str(path), data, str(tmp_path / "other-store"), progress=False)
    assert result.model_key != cold.model_key  # keyed by the file's bytes
    np.testing.assert_allclose(_embedding(tmp_path / "other-store", result.embedding_key),
                               _embedding(store, cold.embedding_key), atol=1e-6)


def test_later_phases_load_the_front_layers_instead_of_refitting_them(tmp_path, data_dir, monkeypatch):
    """The PCA front layer and the input-noise unit are fitted once, in the first phase;
    the next phase gets them with the stored weights (and would fail if they were unset)."""
    from paradime_core.models import FullyConnected

    calls = []
    original = FullyConnected.fit_front
    monkeypatch.setattr(FullyConnected, "fit_front", lambda self, data: (calls.append(len(data)), original(self, data)))
    spec = tmp_path / "front.yaml"
    spec.write_text(tiny_spec().replace("options: {hidden_dims: [16]}",
                                        "options: {hidden_dims: [16], pca_components: 8, input_noise: 0.3}"))
    result = _fit(str(spec), f"{data_dir}/digits.npz", tmp_path / "store")
    assert [s for s in result.executed() if s.startswith("phases:")] == ["phases:init", "phases:main"]
    assert calls == [N_ROWS]
    assert np.isfinite(_embedding(tmp_path / "store", result.embedding_key)).all()
