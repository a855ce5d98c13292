"""Dask helpers of the pipelines: the kNN stage's blocks against one shared index."""

from __future__ import annotations

import numpy as np
import zarr

from paradime_core.neighbors import NeighborIndex, nearest_neighbors
from pipelines.parallel import DaskManager, knn_to_zarr


def test_knn_blocks_share_the_index_without_pickling_it(tmp_path, monkeypatch):
    """In-process workers get the index by reference: scattering it neither hashes nor copies
    it (a content hash pickles the whole index, ~0.8 s on 60,000 MNIST rows); the blocks
    together give the same graph as one search."""
    rng = np.random.default_rng(0)
    X = rng.normal(size=(600, 8)).astype(np.float32)
    source = str(tmp_path / "data.zarr")
    zarr.open_group(source, mode="w").create_array("main", data=X, chunks=(128, 8))
    target = str(tmp_path / "knn.zarr")
    group = zarr.open_group(target, mode="w")

    pickled = []
    original = NeighborIndex.__getstate__
    monkeypatch.setattr(NeighborIndex, "__getstate__", lambda self: pickled.append(1) or original(self))
    with DaskManager(n_workers=1, threads_per_worker=2) as dask:
        info = knn_to_zarr(dask, X, source, "main", group, target, k=5, method="faiss_exact",
                           metric="euclidean", seed=0, rows=128, progress=False)

    assert pickled == []
    assert info["blocks"] == 5
    expected_indices, expected_distances = nearest_neighbors(X, 5, method="faiss_exact")
    np.testing.assert_array_equal(group["indices"][...], expected_indices)
    np.testing.assert_allclose(group["distances"][...], expected_distances, rtol=1e-6)


def test_no_dask_client_lives_while_a_phase_trains(tmp_path, data_dir, monkeypatch):
    """The kNN stage's cluster is closed before training (its idle threads would preempt
    torch's OpenMP threads) and made again for the embedding stage."""
    from _pipeline_specs import tiny_spec

    from pipelines.flows import run_spec
    from pipelines.stages import Pipeline

    created, alive_in_phases = [], []
    client, compute_phase = DaskManager.client, Pipeline._compute_phase
    monkeypatch.setattr(DaskManager, "client", lambda self: created.append(1) or client(self))

    def phase(self, node, writer):
        alive_in_phases.append(self.dask._client is not None or self.dask._cluster is not None)
        return compute_phase(self, node, writer)

    monkeypatch.setattr(Pipeline, "_compute_phase", phase)
    spec = tmp_path / "tiny.yaml"
    spec.write_text(tiny_spec())
    run_spec(str(spec), f"{data_dir}/digits.npz", str(tmp_path / "store"), progress=False, report=False)

    assert alive_in_phases == [False, False]
    assert len(created) >= 2  # the kNN stage and the embedding stage each made their client
