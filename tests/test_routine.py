"""Routines end to end: fit, divergence and data errors, save/load, the scikit-learn face of
the recipes, training only some model parts, the direct model, determinism."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from sklearn.base import clone
from sklearn.exceptions import NotFittedError

from paradime_core import (
    DataError,
    ParametricIsomap,
    ParametricLargeVis,
    ParametricMDS,
    ParametricTSNE,
    ParametricUMAP,
    Routine,
    Spec,
    SpecError,
    TrainingError,
)

MDS_SPEC = """
relations:
  - {name: d, level: global, type: pdist}
  - {name: e, level: batch, type: pdist}
losses:
  - {name: mds, type: relation, func: mse, keys: {rels: [d, e]}}
training_phases:
  - name: mds
    epochs: 4
    sampling: {type: item, batch_size: 50}
    loss: {components: mds}
    optimizer: {type: adam, lr: 0.01}
model: {type: fully_connected, options: {hidden_dims: [16]}}
"""


def routine(spec: str | Spec = MDS_SPEC, seed: int = 0) -> Routine:
    return Routine(spec, seed=seed, device="cpu", verbose=False)


# --------------------------------------------------------------------------- fit
def test_fit_returns_the_routine_with_history_and_embedding(digits):
    X, _ = digits
    fitted = routine()
    assert fitted.fit(X) is fitted
    history = fitted.history_["mds"]
    assert set(history) == {"mds", "total"} and len(history["mds"]) == 4
    assert history["mds"][-1] < history["mds"][0]
    embedding = fitted.transform(X)
    assert embedding.shape == (300, 2) and embedding.dtype == np.float32
    np.testing.assert_array_equal(fitted.embedding_of_training_items(X), embedding)
    assert fitted.relations_["d"].shape == (300, 300)


def test_transform_is_batch_size_invariant(digits):
    X, _ = digits
    fitted = routine().fit(X)
    np.testing.assert_allclose(fitted.transform(X, batch_size=7), fitted.transform(X), atol=1e-6)
    assert fitted.transform(X[:0]).shape == (0, 2)


def test_transform_before_fit_fails():
    with pytest.raises(RuntimeError, match="not fitted"):
        routine().transform(np.zeros((3, 4)))


# --------------------------------------------------------------------------- divergence
def test_infinite_loss_stops_with_training_error_naming_phase_and_epoch(digits):
    X, _ = digits
    spec = MDS_SPEC.replace("{type: adam, lr: 0.01}", "{type: sgd, lr: 1.0e+10}")
    with pytest.raises(TrainingError, match=r"^training_phases\[0\] \('mds'\), epoch 1: loss is (inf|nan)"):
        routine(spec).fit(X)


def test_nan_outputs_stop_with_training_error(digits):
    X, _ = digits
    spec = MDS_SPEC.replace("lr: 0.01", "lr: 1.0e+30").replace(  # the default (softplus) model
        "model: {type: fully_connected, options: {hidden_dims: [16]}}", "")
    with pytest.raises(TrainingError, match=r"^training_phases\[0\] \('mds'\), epoch \d+"):
        routine(spec).fit(X)


# --------------------------------------------------------------------------- data errors
@pytest.fixture
def no_computation(monkeypatch):
    """Fail the test if any relation or derived data is computed."""
    def forbidden(*args, **kwargs):
        raise AssertionError("computed before the data were checked")

    monkeypatch.setattr(Routine, "compute_relation", forbidden)
    monkeypatch.setattr(Routine, "compute_derived", forbidden)
    monkeypatch.setattr(Routine, "build_model", forbidden)


def test_nan_rows_are_named_before_any_computation(digits, no_computation):
    X, _ = digits
    X[7, 3] = np.nan
    X[20, 0] = np.inf
    with pytest.raises(DataError, match=r"^dataset\['main'\]: 2 row\(s\) hold NaN, inf or values outside float32 "
                       r"\(first: row 7, column 3: NaN \(a missing value\)\)$"):
        routine().fit(X)


def test_nan_rows_in_another_entry_are_named(digits, no_computation):
    X, y = digits
    extra = np.ones((300, 2), dtype=np.float64)
    extra[42, 1] = np.nan
    with pytest.raises(DataError, match=r"^dataset\['extra'\]: 1 row\(s\) hold NaN, inf or values outside float32 "
                       r"\(first: row 42, column 1: NaN \(a missing value\)\)$"):
        routine().fit({"main": X, "labels": y, "extra": extra})


def test_values_beyond_float32_are_named_before_any_computation(digits, no_computation):
    X = digits[0].astype(np.float64)
    X[11, 4] = 1e39  # finite in float64, inf in the float32 training computes in
    with pytest.raises(DataError, match=r"^dataset\['main'\]: 1 row\(s\) .* \(first: row 11, column 4: 1e\+39 does "
                                        r"not fit float32"):
        routine().fit(X)


def test_mismatched_lengths_are_named_before_any_computation(digits, no_computation):
    X, y = digits
    with pytest.raises(DataError, match=r"^dataset\['labels'\] has 299 rows but dataset\['main'\] has 300$"):
        routine().fit({"main": X, "labels": y[:-1]})


def test_missing_main_entry(digits, no_computation):
    X, _ = digits
    with pytest.raises(DataError, match=r"dataset has no 'main' entry \(keys: features\)"):
        routine().fit({"features": X})


def test_unknown_model_part_is_a_spec_error(digits):
    X, _ = digits
    spec = MDS_SPEC.replace("loss: {components: mds}", "loss: {components: mds}\n    params: [head]")
    with pytest.raises(SpecError, match=r"^training_phases\[0\]\.params: unknown model part\(s\) 'head' "
                                        r"\(available: trunk, embedding_head\)"):
        routine(spec).fit(X[:60])


# --------------------------------------------------------------------------- save / load
def test_save_load_round_trip_gives_identical_embeddings(digits, tmp_path, monkeypatch):
    X, _ = digits
    fitted = routine().fit(X)
    path = fitted.save(tmp_path / "routine.pt", metadata={"note": "test"})

    calls = []
    original_load = torch.load

    def spy(*args, **kwargs):
        calls.append(kwargs.get("weights_only"))
        return original_load(*args, **kwargs)

    monkeypatch.setattr(torch, "load", spy)
    loaded = Routine.load(path, device="cpu")
    assert calls == [True]
    np.testing.assert_array_equal(loaded.transform(X), fitted.transform(X))
    assert loaded.spec == fitted.spec
    assert loaded.history_ == fitted.history_
    assert loaded.metadata_ == {"note": "test"}
    assert original_load(path, weights_only=True)["format"] == "paradime-routine/1"
    assert not (tmp_path / "routine.pt.tmp").exists()


def test_recipe_save_load_round_trip(digits, tmp_path):
    X, _ = digits
    tsne = fast(ParametricTSNE).fit(X)
    loaded = Routine.load(tsne.save(tmp_path / "tsne.pt"))
    np.testing.assert_array_equal(loaded.transform(X), tsne.transform(X))
    assert loaded.metadata_["recipe"] == "ParametricTSNE"
    assert loaded.metadata_["params"]["perplexity"] == 10


def test_bfloat16_recipe_trains_and_round_trips(digits, tmp_path):
    """precision='bfloat16' reaches the model, trains, and a saved routine embeds identically."""
    X, _ = digits
    tsne = fast(ParametricTSNE, precision="bfloat16").fit(X)
    assert tsne.routine_.model_.precision == "bfloat16"
    assert np.isfinite(tsne.embedding_).all()
    loaded = Routine.load(tsne.save(tmp_path / "tsne.pt"))
    assert loaded.model_.precision == "bfloat16"
    np.testing.assert_array_equal(loaded.transform(X), tsne.transform(X))
    with pytest.raises(SpecError, match=r"^model\.options\.precision: precision must be one of float32, bfloat16, auto"):
        fast(ParametricTSNE, precision="half").fit(X)


def test_shared_negatives_recipe_trains_deterministically(digits):
    """negatives='shared' reaches the sampler with its group size, trains, and repeats exactly."""
    X, _ = digits
    umap = fast(ParametricUMAP, negatives="shared", negative_group_size=8)
    sampling = umap.build_spec(*X.shape).training_phases[-1].sampling.options
    assert sampling["negatives"] == "shared" and sampling["group_size"] == 8
    first = umap.fit_transform(X)
    assert np.isfinite(first).all()
    np.testing.assert_array_equal(first, fast(ParametricUMAP, negatives="shared", negative_group_size=8).fit_transform(X))
    with pytest.raises(SpecError, match=r"sampling\.options\.group_size: expected an integer >= 1, got 0"):
        fast(ParametricUMAP, negatives="shared", negative_group_size=0).fit(X)


def test_auto_precision_is_resolved_once_and_saved(digits, tmp_path, monkeypatch):
    """precision='auto' follows the hardware at fit time; the saved routine keeps that choice
    even where the loading machine would choose differently."""
    from paradime_core.models import layers

    X, _ = digits
    monkeypatch.setattr(layers, "fast_bfloat16_available", lambda: True)
    umap = fast(ParametricUMAP, precision="auto").fit(X)
    assert umap.routine_.model_.precision == "bfloat16"
    path = umap.save(tmp_path / "umap.pt")
    monkeypatch.setattr(layers, "fast_bfloat16_available", lambda: False)
    assert fast(ParametricUMAP, precision="auto").fit(X).routine_.model_.precision == "float32"
    loaded = Routine.load(path)
    assert loaded.model_.precision == "bfloat16"
    np.testing.assert_array_equal(loaded.transform(X), umap.transform(X))


def test_load_rejects_other_files(tmp_path):
    with pytest.raises(FileNotFoundError):
        Routine.load(tmp_path / "none.pt")
    torch.save({"format": "something else"}, tmp_path / "other.pt")
    with pytest.raises(DataError, match="not a paradime routine file"):
        Routine.load(tmp_path / "other.pt")
    (tmp_path / "junk.pt").write_bytes(b"not a torch file")
    with pytest.raises(DataError, match="not a readable paradime routine"):
        Routine.load(tmp_path / "junk.pt")


# --------------------------------------------------------------------------- sklearn face
# Small, fast settings; each recipe takes those among them that it has as parameters.
FAST_KNOBS = dict(n_epochs=2, early_exaggeration_epochs=1, batches_per_epoch=3, batch_size=100,
                  hidden_dims=(16,), pca_components=10)
FAST = {
    ParametricTSNE: dict(perplexity=10),
    ParametricUMAP: dict(n_neighbors=10),
    ParametricLargeVis: dict(perplexity=10),
    ParametricMDS: dict(),
    ParametricIsomap: dict(n_neighbors=15),
}


def fast(cls, **overrides):
    """A quick-to-fit ``cls`` instance."""
    wanted = {**FAST_KNOBS, **FAST[cls], **overrides}
    names = cls().get_params()
    return cls(**{key: value for key, value in wanted.items() if key in names})


@pytest.mark.parametrize("cls", list(FAST), ids=lambda cls: cls.__name__)
def test_sklearn_face(cls, digits):
    X, _ = digits
    estimator = fast(cls, transform_batch_size=7)
    params = estimator.get_params()
    assert params["transform_batch_size"] == 7 and params["random_state"] == 0
    assert estimator.set_params(random_state=1) is estimator and estimator.random_state == 1
    estimator.set_params(random_state=0)

    assert estimator.fit(X) is estimator
    embedding = estimator.transform(X)  # 300 rows in batches of 7
    assert embedding.shape == (300, 2) and np.isfinite(embedding).all()
    np.testing.assert_allclose(embedding, estimator.embedding_, atol=1e-5)
    np.testing.assert_allclose(estimator.set_params(transform_batch_size=1000).transform(X), embedding, atol=1e-5)
    assert estimator.loss_history_

    copy = clone(estimator.set_params(transform_batch_size=7))  # float32 rows: batches of the fit's size
    assert copy.get_params() == estimator.get_params()
    assert not hasattr(copy, "routine_")
    with pytest.raises(NotFittedError, match="not fitted"):
        copy.transform(X)
    result = copy.fit_transform(X)
    assert result.shape == (300, 2)
    np.testing.assert_array_equal(result, estimator.embedding_)  # same seed, same fit


def test_recipe_bad_parameter_is_a_spec_error(digits):
    X, _ = digits
    with pytest.raises(SpecError, match="perplexity"):
        fast(ParametricTSNE, perplexity=-5).fit(X)
    with pytest.raises(SpecError, match=r"^model\.options\.activation: unknown activation 'swish2'"):
        fast(ParametricMDS, activation="swish2").fit(X)


# --------------------------------------------------------------------------- model parts
PARTS_SPEC = MDS_SPEC.replace("""    optimizer: {type: adam, lr: 0.01}
""", """    optimizer: {type: adam, lr: 0.01}
    params: [embedding_head]
  - {name: all, epochs: 1, sampling: {type: item, batch_size: 50}, loss: {components: mds}}
""")


def test_a_phase_trains_only_the_named_parts(digits):
    X, _ = digits
    r = routine(PARTS_SPEC)
    data, relations = r.prepare_all(X)
    model = r.build_model(data)

    def snapshot(part):
        return {k: v.detach().clone() for k, v in getattr(model, part).state_dict().items()}

    trunk, head = snapshot("trunk"), snapshot("embedding_head")
    r.run_phase(0, data, relations)
    for key, value in snapshot("trunk").items():
        assert torch.equal(value, trunk[key]), key
    assert any(not torch.equal(v, head[k]) for k, v in snapshot("embedding_head").items())
    assert all(p.requires_grad for p in model.parameters())  # frozen parts are restored

    r.run_phase(1, data, relations)
    assert any(not torch.equal(v, trunk[k]) for k, v in snapshot("trunk").items())


# --------------------------------------------------------------------------- direct model
def test_direct_model_trains(digits):
    X, _ = digits
    spec = MDS_SPEC.replace("model: {type: fully_connected, options: {hidden_dims: [16]}}",
                            "model: {type: direct}").replace("epochs: 4", "epochs: 30").replace(
                                "lr: 0.01", "lr: 0.1")
    r = routine(spec).fit(X)
    history = r.history_["mds"]["mds"]
    assert history[-1] < 0.2 * history[0]
    embedding = r.embedding_of_training_items(X)
    assert embedding.shape == (300, 2) and np.isfinite(embedding).all()
    assert np.std(embedding) > 0.1  # moved far from the ~1e-4 random start
    with pytest.raises(RuntimeError, match="cannot embed new items"):
        r.transform(X)


# --------------------------------------------------------------------------- determinism
def test_same_seed_gives_identical_embeddings(digits):
    X, _ = digits
    spec = MDS_SPEC.replace("epochs: 4", "epochs: 2")
    first = routine(spec, seed=3).fit(X).transform(X)
    second = routine(spec, seed=3).fit(X).transform(X)
    other = routine(spec, seed=4).fit(X).transform(X)
    np.testing.assert_array_equal(first, second)
    assert not np.allclose(first, other)


def test_recipes_are_deterministic(digits):
    X, _ = digits
    first = fast(ParametricUMAP).fit_transform(X)
    second = fast(ParametricUMAP).fit_transform(X)
    np.testing.assert_array_equal(first, second)


@pytest.fixture
def two_torch_threads():
    """Training with two intra-op threads (the pipelines' default uses every core)."""
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    yield
    torch.set_num_threads(before)


def test_edge_gradients_are_deterministic_with_several_threads(two_torch_threads):
    """Gathering edge endpoints by advanced indexing has a racy backward on CPU (an unordered
    parallel index_put): the float sums of the gradient differed on every repeat."""
    from paradime_core.batch import Batch
    from paradime_core.relations.distances import _edge_distances

    generator = torch.Generator().manual_seed(0)
    start = torch.randn(5000, 2, generator=generator)
    batch = Batch(items=torch.arange(5000), edge_rows=torch.randint(0, 5000, (100_000,), generator=generator),
                  edge_cols=torch.randint(0, 5000, (100_000,), generator=generator))
    gradients = set()
    for _ in range(8):
        outputs = start.clone().requires_grad_(True)
        _edge_distances(outputs, batch, "euclidean").sum().backward()
        gradients.add(outputs.grad.numpy().tobytes())
    assert len(gradients) == 1


def test_weight_averaging_ends_the_phase_with_the_average_of_the_steps(digits):
    """ema a: θ̄ ← a θ̄ + (1 - a) θ after every step; a = 0 keeps the last step's weights."""
    X, _ = digits
    plain = routine(MDS_SPEC).fit(X)
    last = routine(MDS_SPEC.replace("lr: 0.01}", "lr: 0.01}\n    options: {ema: 0.0}")).fit(X)
    np.testing.assert_array_equal(plain.transform(X), last.transform(X))

    spec = Spec.from_yaml(MDS_SPEC.replace("epochs: 4", "epochs: 1"))
    spec.training_phases[0].options["ema"] = 0.5
    steps = []  # parameters after each optimizer step
    from torch.optim.optimizer import register_optimizer_step_post_hook

    hook = register_optimizer_step_post_hook(
        lambda opt, *_: steps.append([p.detach().clone() for g in opt.param_groups for p in g["params"]]))
    averaged = Routine(spec, seed=0, device="cpu", verbose=False)
    try:
        averaged.fit(X)
    finally:
        hook.remove()
    assert len(steps) == 6  # 300 items in batches of 50
    model = averaged.model_
    initial = Routine(spec, seed=0, device="cpu", verbose=False).build_model({"main": X}).parameters()
    expected = [p.detach().clone() for p in initial]
    for step in steps:
        expected = [0.5 * e + 0.5 * s for e, s in zip(expected, step, strict=True)]
    for param, value in zip(model.parameters(), expected, strict=True):
        torch.testing.assert_close(param.detach(), value)


def test_weight_averaging_decay_is_checked():
    spec = MDS_SPEC.replace("lr: 0.01}", "lr: 0.01}\n    options: {ema: 1.5}")
    with pytest.raises(SpecError, match=r"training_phases\[0\]\.options\.ema: must be a decay in \[0, 1\)"):
        Spec.from_yaml(spec)


def test_umap_initialisation_phase(digits):
    """init='pca' (default) / 'spectral' put a 200-step position phase before the embedding
    phase; 'random' leaves it out; a bad name is one clear error before any work."""
    X, _ = digits
    spec = ParametricUMAP().build_spec(*X.shape)
    assert [phase.name for phase in spec.training_phases] == ["init", "embedding"]
    init = spec.training_phases[0]
    assert init.epochs * init.sampling.options["batches_per_epoch"] == 200
    assert [(d.name, d.func) for d in spec.derived_data] == [("init", "pca")]
    spectral = ParametricLargeVis(init="spectral").build_spec(*X.shape)
    assert spectral.derived_data[0].func == "spectral" and list(spectral.derived_data[0].keys) == [("rels", "p")]
    assert [phase.name for phase in ParametricUMAP(init="random").build_spec(*X.shape).training_phases] == ["embedding"]
    assert not ParametricUMAP().build_spec(3, 5).derived_data  # too few items for an initial layout
    with pytest.raises(ValueError, match="init must be one of pca, spectral, random, got 'umap'"):
        fast(ParametricUMAP, init="umap").fit(X)
    umap = fast(ParametricUMAP, init="spectral").fit(X)
    assert set(umap.loss_history_) == {"init", "embedding"} and np.isfinite(umap.embedding_).all()
