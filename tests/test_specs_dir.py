"""Every spec in specs/ loads, validates, documents itself and trains on small data.

Each spec is trained on 240 digits (features scaled to [0, 1]) with one epoch per phase
(overridden through the Spec object) and must give a finite (n, 2) embedding; the slow
test checks that the main demo job (specs/umap.yaml) gives a good embedding of all digits.
"""

from __future__ import annotations

import re
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch

from paradime_core import Routine, load_spec
from paradime_core.metrics import knn_accuracy, trustworthiness

SPEC_DIR = Path(__file__).resolve().parents[1] / "specs"
EXPECTED = {
    "mds", "tsne", "umap", "largevis", "isomap", "classifier", "autoencoder",
    "hybrid_umap_classifier", "supervised_tsne_triplet", "attribute_guided_tsne", "pli", "densmap",
}
SPEC_FILES = sorted(SPEC_DIR.glob("*.yaml"))
N_ITEMS = 240


def _header(path: Path) -> str:
    """The leading comment block of a spec file."""
    lines = []
    for line in path.read_text().splitlines():
        if not line.startswith("#"):
            break
        lines.append(line.lstrip("# "))
    return "\n".join(lines)


@pytest.fixture(scope="module")
def digits() -> dict[str, np.ndarray]:
    from sklearn.datasets import load_digits

    X, y = load_digits(return_X_y=True)
    rng = np.random.default_rng(0)
    rows = rng.choice(len(X), size=N_ITEMS, replace=False)
    return {"main": (X[rows] / 16.0).astype(np.float32), "labels": y[rows].astype(np.int64)}


def test_every_technique_has_a_spec() -> None:
    assert {p.stem for p in SPEC_FILES} == EXPECTED


@pytest.mark.parametrize("path", SPEC_FILES, ids=lambda p: p.stem)
def test_spec_documents_itself(path: Path) -> None:
    spec = load_spec(path)
    header = _header(path)
    assert len(header.splitlines()) >= 5, "a comment header explains the spec"
    assert "Options that matter" in header
    match = re.search(r"Dataset keys read:(.*)", header)
    assert match, "the header names the dataset keys the spec reads"
    for key in spec.data_keys():
        assert re.search(rf"\b{key}\b", header), f"dataset key '{key}' is read but not documented"
    assert spec.name == path.stem and spec.description
    assert load_spec(spec.to_dict()) == spec  # the canonical form round-trips


@pytest.mark.parametrize("path", SPEC_FILES, ids=lambda p: p.stem)
def test_spec_trains_on_small_data(path: Path, digits: dict[str, np.ndarray]) -> None:
    torch.set_num_threads(1)
    spec = load_spec(path)
    for phase in spec.training_phases:
        phase.epochs = 1
    data = dict(digits)
    if "targets" in spec.data_keys():
        data["targets"] = np.zeros((N_ITEMS, 2), dtype=np.float32)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # e.g. perplexity warnings on tiny data
        routine = Routine(spec, seed=0, verbose=False).fit(data)
    embedding = routine.transform(data["main"])
    assert embedding.shape == (N_ITEMS, 2)
    assert np.isfinite(embedding).all()
    assert np.ptp(embedding, axis=0).min() > 0, "the embedding is not collapsed to a point"
    assert set(routine.history_) == {p.name for p in spec.training_phases}
    for history in routine.history_.values():
        assert len(history["total"]) == 1 and np.isfinite(history["total"][0])
    if "classification" in {loss.type for loss in spec.losses}:
        logits = routine.transform(data["main"], method="classify")
        assert logits.shape == (N_ITEMS, 10) and np.isfinite(logits).all()


def test_pli_phases_train_only_their_parts(digits: dict[str, np.ndarray]) -> None:
    """Phase 2 of the PLI spec moves only the embedding head; phase 3 leaves it frozen."""
    torch.set_num_threads(1)
    spec = load_spec(SPEC_DIR / "pli.yaml")
    for phase in spec.training_phases:
        phase.epochs = 1
    data = dict(digits, targets=np.zeros((N_ITEMS, 2), dtype=np.float32))
    routine = Routine(spec, seed=0, verbose=False)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        dataset, relations = routine.prepare_all(data)
    model = routine.build_model(dataset)

    def snapshot() -> dict[str, torch.Tensor]:
        return {k: v.detach().clone() for k, v in model.state_dict().items()}

    changed = []
    for index in range(3):
        before = snapshot()
        routine.run_phase(index, dataset, relations)
        after = snapshot()
        changed.append({k.split(".")[0] for k in before if not torch.equal(before[k], after[k])})
    assert changed[0] == {"trunk", "classification_head"}
    assert changed[1] == {"embedding_head"}
    assert changed[2] == {"trunk", "classification_head"}


@pytest.mark.slow
def test_umap_demo_spec_embeds_digits_well() -> None:
    """The main demo job: all 1,797 digits, trust@10 and 10-NN accuracy near umap-learn's."""
    from sklearn.datasets import load_digits

    torch.set_num_threads(1)
    X, y = load_digits(return_X_y=True)
    X = X.astype(np.float32)
    routine = Routine(load_spec(SPEC_DIR / "umap.yaml"), seed=0, verbose=False).fit({"main": X})
    embedding = routine.transform(X)
    assert trustworthiness(X, embedding, k=10) > 0.95
    assert knn_accuracy(embedding, y, k=10) > 0.93


SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "datasets"


@pytest.mark.slow
@pytest.mark.parametrize("name", ["fig1", "fig2", "fig3", "fig4", "fig5", "pli"])
def test_experiment_quick_mode(name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Each paper experiment runs end to end at tiny sizes and writes its figure and numbers."""
    import importlib
    import json

    monkeypatch.syspath_prepend(str(SPEC_DIR.parent))  # experiments/ is run from the checkout

    if name != "fig2" and not SHARED_DATA.is_dir():
        pytest.skip(f"needs the shared datasets in {SHARED_DATA}")
    module = importlib.import_module(f"experiments.{name}")
    module.main(["--quick", "--out", str(tmp_path)])
    results = json.loads((tmp_path / f"{name}.json").read_text())
    assert results["quick"] is True and results["wall_time_s"] > 0
    assert "claims" in results
    assert (tmp_path / f"{name}.png").stat().st_size > 10_000


def test_umap_spec_is_the_parametric_umap_recipe(digits) -> None:
    """specs/umap.yaml says it is ParametricUMAP() with its defaults: same training, same embedding."""
    from paradime_core import ParametricUMAP

    torch.set_num_threads(1)
    X = digits["main"]
    spec = load_spec(SPEC_DIR / "umap.yaml")
    spec.training_phases[-1].epochs = 1
    from_spec = Routine(spec, seed=0, verbose=False).fit({"main": X}).transform(X)
    from_recipe = ParametricUMAP(n_epochs=1, random_state=0).fit(X).transform(X)
    np.testing.assert_allclose(from_spec, from_recipe, rtol=1e-5, atol=1e-5)


def test_densmap_spec_is_the_parametric_umap_recipe_with_densmap(digits) -> None:
    """specs/densmap.yaml says it is ParametricUMAP(densmap=True): same phases, same embedding."""
    from paradime_core import ParametricUMAP

    torch.set_num_threads(1)
    X = digits["main"]
    spec = load_spec(SPEC_DIR / "densmap.yaml")
    spec.training_phases[1].epochs = 1
    spec.training_phases[2].epochs = 1
    from_spec = Routine(spec, seed=0, verbose=False).fit({"main": X}).transform(X)
    recipe = ParametricUMAP(n_epochs=2, densmap=True, random_state=0).fit(X)
    assert [p.name for p in recipe.routine_.spec.training_phases] == ["init", "embedding", "density"]
    np.testing.assert_allclose(from_spec, recipe.transform(X), rtol=1e-5, atol=1e-5)
