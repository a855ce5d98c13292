"""A run killed (SIGKILL) during a training phase resumes from its stored stages."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import numpy as np
from _pipeline_specs import tiny_spec

from pipelines.flows import fit_flow
from pipelines.store import ArtifactStore


def test_sigkill_during_a_phase_then_rerun_matches_an_uninterrupted_run(tmp_path, data_dir, prefect_server):
    spec = tmp_path / "slow.yaml"
    spec.write_text(tiny_spec(main_epochs=40))
    data = f"{data_dir}/digits.npz"
    store = tmp_path / "store"
    env = {**os.environ, "PREFECT_API_URL": prefect_server}
    process = subprocess.Popen([sys.executable, "-m", "pipelines.cli", "run", str(spec), "--data", data,
                                "--store", str(store), "--no-progress"],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    st = ArtifactStore(store)
    deadline = time.time() + 240
    killed = False
    while time.time() < deadline and process.poll() is None:
        phases_done = [i for i in st.list("phases") if i.complete]
        tmp = store / ".tmp"
        writing = tmp.is_dir() and any(p.name.startswith("phases-") for p in tmp.iterdir())
        if len(phases_done) == 1 and writing:  # the second phase is training now
            process.send_signal(signal.SIGKILL)
            killed = True
            break
        time.sleep(0.02)
    process.wait(timeout=60)
    assert killed, "the run ended before its second phase could be interrupted"
    assert [i.name for i in st.list("phases") if i.complete] == ["init"]

    resumed = fit_flow(str(spec), data, str(store), progress=False)
    status = resumed.status()
    assert [k for k, v in status.items() if v == "cached"] == ["datasets:digits", "derived:pca", "knn:p",
                                                                "relations:p", "phases:init"]
    assert status["phases:main"] == "computed"

    clean = fit_flow(str(spec), data, str(tmp_path / "clean"), progress=False)
    assert clean.model_key == resumed.model_key
    resumed_emb = st.open_group("embeddings", resumed.embedding_key)["embedding"][...]
    clean_emb = ArtifactStore(tmp_path / "clean").open_group("embeddings", clean.embedding_key)["embedding"][...]
    np.testing.assert_allclose(resumed_emb, clean_emb, rtol=0, atol=1e-6)
