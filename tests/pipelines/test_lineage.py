"""Lineage-aware retraining: warm starts stay within one lineage and one data shape."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
from _pipeline_specs import tiny_spec

from pipelines.flows import fit_flow, retrain_flow
from pipelines.store import ArtifactStore

pytestmark = pytest.mark.usefixtures("prefect_server")

PCA_SPEC = tiny_spec().replace("options: {hidden_dims: [16]}", "options: {hidden_dims: [16], pca_components: 8}")


def _start_of(store, result) -> dict:
    init = next(r for r in result.records if r.kind == "phases" and r.name == "init")
    return ArtifactStore(store).manifest("phases", init.key)["inputs"]["previous"]


def test_retrain_warm_starts_only_within_its_lineage(tmp_path, data_dir, spec_file):
    store = tmp_path / "store"
    live = tmp_path / "live.npz"
    shutil.copy(f"{data_dir}/digits.npz", live)
    first = retrain_flow(spec_file, str(live), str(store), progress=False)
    assert first.start.model is None and "no earlier model" in first.start.reason
    # a fit of the same spec on other data is newer, but belongs to another lineage
    other = fit_flow(spec_file, f"{data_dir}/digits_new.npz", str(store), progress=False)
    shutil.copy(f"{data_dir}/digits_new.npz", live)
    second = retrain_flow(spec_file, str(live), str(store), progress=False)
    assert second.dataset_version == 2 and second.lineage == str(live)
    assert second.start.model == first.model_key != other.model_key and second.start.version == 1
    assert second.to_dict()["warm_start"] == f"warm start: {first.model_key}, version 1"
    assert _start_of(store, second)["warm_start"] == first.model_key


def test_a_named_lineage_follows_data_to_a_new_path(tmp_path, data_dir, spec_file):
    store = tmp_path / "store"
    first = retrain_flow(spec_file, f"{data_dir}/digits.npz", str(store), progress=False, lineage="digits-feed")
    second = retrain_flow(spec_file, f"{data_dir}/digits_new.npz", str(store), progress=False,
                          lineage="digits-feed")
    assert second.lineage == "lineage:digits-feed" and second.dataset_version == 2
    assert second.start.model == first.model_key
    unnamed = retrain_flow(spec_file, f"{data_dir}/digits_new.npz", str(store), progress=False)
    assert unnamed.start.model is None and unnamed.dataset_version == 1  # its path is a lineage of its own


def test_data_of_another_width_starts_cold_by_itself(tmp_path, data_dir, digits, spec_file):
    store = tmp_path / "store"
    X, y = digits
    np.savez(tmp_path / "narrow.npz", X=X[:, :40], y=y)
    first = retrain_flow(spec_file, f"{data_dir}/digits.npz", str(store), progress=False, lineage="feed")
    second = retrain_flow(spec_file, str(tmp_path / "narrow.npz"), str(store), progress=False, lineage="feed")
    assert second.start.model is None and "does not fit the new data" in second.start.reason
    assert first.model_key[:12] in second.start.reason
    assert _start_of(store, second)["warm_start"] is None
    third = retrain_flow(spec_file, str(tmp_path / "narrow.npz"), str(store), progress=False, lineage="feed")
    assert third.executed() == [] and third.start.reason == second.start.reason  # the same choice again


def test_refit_front_fits_pca_on_the_new_version(tmp_path, data_dir):
    from pipelines.artifacts import load_routine

    spec = tmp_path / "pca.yaml"
    spec.write_text(PCA_SPEC)
    store = tmp_path / "store"
    first = retrain_flow(str(spec), f"{data_dir}/digits.npz", str(store), progress=False, lineage="f")
    kept = retrain_flow(str(spec), f"{data_dir}/digits_new.npz", str(store), progress=False, lineage="f",
                        refit_front=False)
    refit = retrain_flow(str(spec), f"{data_dir}/digits_new.npz", str(store), progress=False, lineage="f",
                         refit_front=True, warm_start=True)
    assert kept.start.model == refit.start.model == first.model_key
    assert _start_of(store, refit).get("refit_front") is True and refit.model_key != kept.model_key

    def pca_mean(result):
        state = load_routine(ArtifactStore(store), result.model_key).model_.state_dict()
        return next(v for k, v in state.items() if k.endswith(".mean")).numpy()

    new_mean = np.load(f"{data_dir}/digits_new.npz")["X"].mean(axis=0)
    np.testing.assert_allclose(pca_mean(kept), pca_mean(first))
    np.testing.assert_allclose(pca_mean(refit), new_mean, rtol=1e-4, atol=1e-4)


def _task_states(flow_state, expected: int | None = None, timeout: float = 120) -> dict[str, tuple[str, str]]:
    """Name -> (state type, state name) of the flow run's task runs, once all of them have
    reached the API in a final state (task run states are reported in the background)."""
    import time

    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId

    run_id = flow_state.state_details.flow_run_id
    deadline = time.monotonic() + timeout
    while True:
        with get_client(sync_client=True) as client:
            runs = client.read_task_runs(flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[run_id])))
        states = {run.name: (run.state.type.value, run.state.name) for run in runs}
        settled = runs and all(run.state.is_final() for run in runs) and len(runs) >= (expected or 1)
        if settled or time.monotonic() > deadline:
            return states
        time.sleep(0.5)


def test_stages_read_from_the_store_end_in_prefects_cached_state(tmp_path, data_dir, spec_file):
    store = str(tmp_path / "store")
    cold = _task_states(fit_flow(spec_file, f"{data_dir}/digits.npz", store, progress=False, return_state=True),
                        expected=8)  # ingest and the seven stages of the tiny spec
    assert cold and all(state == ("COMPLETED", "Completed") for state in cold.values()), cold
    warm_state = fit_flow(spec_file, f"{data_dir}/digits.npz", store, progress=False, return_state=True)
    warm = _task_states(warm_state, expected=len(cold))
    assert len(warm) == len(cold) and all(state == ("COMPLETED", "Cached") for state in warm.values()), warm
    assert warm_state.result().executed() == []
