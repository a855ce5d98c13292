"""Stage keys depend on exactly the inputs named in DESIGN section 3."""

from __future__ import annotations

import shutil

from _pipeline_specs import tiny_spec

from paradime_core.spec import Spec
from pipelines.code_versions import (
    STAGE_ENTRY_MODULES,
    compute_code_version,
    core_folder,
    dependencies,
    module_files,
)
from pipelines.keys import code_version, make_plan

FPS = {"main": "m" * 32, "y": "y" * 32}


def _keys(spec_text: str, fps=FPS, **kwargs) -> dict[str, str]:
    plan = make_plan(Spec.from_yaml(spec_text), "d" * 32, fps, 300, **kwargs)
    return {node_id: node.key for node_id, node in plan.nodes.items()}


def test_plan_order_and_identity():
    keys = _keys(tiny_spec())
    assert list(keys) == ["derived:pca", "knn:p", "relation:p", "phase:0", "phase:1", "embed:train",
                          "report:train"]
    assert keys == _keys(tiny_spec())  # no run ids, no time


def test_last_phase_epochs_change_only_that_phase_and_what_follows():
    before, after = _keys(tiny_spec(3)), _keys(tiny_spec(4))
    changed = sorted(k for k in before if before[k] != after[k])
    assert changed == ["embed:train", "phase:1", "report:train"]


def test_relation_name_is_not_part_of_its_key():
    a, b = _keys(tiny_spec()), _keys(tiny_spec(relation_name="neighbours"))
    assert set(b) >= {"knn:neighbours", "relation:neighbours"}
    assert a["knn:p"] == b["knn:neighbours"] and a["relation:p"] == b["relation:neighbours"]


def test_new_data_changes_everything_and_labels_only_the_report():
    base = _keys(tiny_spec())
    new_main = _keys(tiny_spec(), {"main": "n" * 32, "y": "y" * 32})
    assert all(base[k] != new_main[k] for k in base)
    new_labels = _keys(tiny_spec(), {"main": "m" * 32, "y": "z" * 32})
    assert [k for k in base if base[k] != new_labels[k]] == ["report:train"]


def test_seed_and_warm_start_reach_the_phases_only():
    base = _keys(tiny_spec())
    for other in (_keys(tiny_spec(), seed=1), _keys(tiny_spec(), warm_start="w" * 32)):
        assert [k for k in base if base[k] != other[k]] == ["phase:0", "phase:1", "embed:train", "report:train"]


def test_code_version_tracks_the_modules_of_each_stage():
    assert code_version("knn") != code_version("phases")
    assert code_version("knn") == code_version("knn")


def test_editing_any_core_module_a_stage_imports_changes_its_code_version(tmp_path):
    """In a copy of the core: every module a stage depends on moves its version when edited;
    modules it does not import leave it alone."""
    folder = tmp_path / "paradime_core"
    shutil.copytree(core_folder(), folder, ignore=shutil.ignore_patterns("__pycache__"))
    files = module_files(folder)
    kinds = list(STAGE_ENTRY_MODULES)
    deps = {kind: dependencies(STAGE_ENTRY_MODULES[kind], files) for kind in kinds}
    # the modules a hand-kept list missed, and the built-ins a registry loads by name
    for module in ("paradime_core.losses.fused", "paradime_core.derived.principal_axes",
                   "paradime_core.relations.transforms", "paradime_core.training.optimizers"):
        assert module in deps["phases"]
    assert deps["knn"] == ["paradime_core", "paradime_core.errors", "paradime_core.neighbors",
                           "paradime_core.value_checks"]
    for module, path in files.items():
        before = {kind: compute_code_version(kind, folder) for kind in kinds}
        original = path.read_text()
        path.write_text(original + "\n# edited\n")
        after = {kind: compute_code_version(kind, folder) for kind in kinds}
        path.write_text(original)
        assert [k for k in kinds if before[k] != after[k]] == [k for k in kinds if module in deps[k]], module


def test_specs_read_the_stored_labels_y_as_labels():
    """The classifier spec reads `labels`; ingest stores the label column as `y`."""
    from pathlib import Path

    spec_text = (Path(__file__).resolve().parents[2] / "specs" / "classifier.yaml").read_text()
    keys = _keys(spec_text)
    assert "phase:0" in keys
    assert _keys(spec_text, {"main": "m" * 32, "y": "z" * 32})["phase:0"] != keys["phase:0"]


def test_load_dataset_exposes_labels_beside_y(tmp_path):
    import numpy as np

    from pipelines.ingest import from_arrays, ingest, load_dataset
    from pipelines.store import ArtifactStore

    store = ArtifactStore(str(tmp_path / "store"))
    labels = np.arange(10) % 3
    result = ingest(from_arrays({"main": np.random.default_rng(0).normal(size=(10, 3)), "y": labels}, "mem://t"), store)
    arrays = load_dataset(store, result.ref.key)
    assert set(arrays) == {"main", "y", "labels"}
    np.testing.assert_array_equal(arrays["labels"], labels)


class CountingNeighbors:
    """A user's neighbour relation: declares the kNN graph it needs and builds itself from it."""

    levels = ("global",)

    def __init__(self, n_neighbors: int | None = None, scale: float = 1.0):
        self.n_neighbors = n_neighbors
        self.scale = scale

    def knn_request(self, n_items: int):
        from paradime_core.protocols import KnnRequest

        return KnnRequest(min(self.n_neighbors or 15, n_items - 1), "euclidean", "faiss_exact", 0)

    def from_graph(self, graph):
        from paradime_core.relation_data import NeighborGraph

        return NeighborGraph(graph.indices, self.scale * graph.values)

    def compute(self, data):  # pragma: no cover - the pipeline asks for the graph instead
        raise AssertionError("the pipeline computes the kNN graph itself")


def test_a_user_neighbour_relation_gets_the_knn_stage():
    """The plan asks the relation (not its name) whether it needs a kNN graph, and which."""
    from paradime_core.spec.registry import RELATIONS

    RELATIONS.register("counting_neighbors")(CountingNeighbors)
    try:
        text = tiny_spec().replace("type: neighbor\n    options: {n_neighbors: 10, method: faiss_exact}",
                                   "type: counting_neighbors\n    options: {n_neighbors: 7, scale: 2.0}")
        plan = make_plan(Spec.from_yaml(text), "d" * 32, FPS, 300)
    finally:
        RELATIONS.unregister("counting_neighbors")
    knn = plan.nodes["knn:p"]
    assert (knn.payload["k"], knn.payload["method"]) == (7, "faiss_exact")
    assert "knn:p" in plan.nodes["relation:p"].deps


def test_the_k_of_a_neighbour_relation_is_fitted_to_the_items_in_one_place():
    import warnings

    text = tiny_spec().replace("n_neighbors: 10", "n_neighbors: 400")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        plan = make_plan(Spec.from_yaml(text), "d" * 32, FPS, 300)
    assert plan.nodes["knn:p"].payload["k"] == 299
    assert any("n_neighbors=400 >= number of items 300" in str(w.message) for w in caught)
