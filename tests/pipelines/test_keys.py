"""Stage keys depend on exactly the inputs named in DESIGN section 3."""

from __future__ import annotations

from _pipeline_specs import tiny_spec

from paradime_core.spec import Spec
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
