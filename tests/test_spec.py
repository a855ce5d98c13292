"""The spec grammar: YAML, JSON, dict and objects are equivalent and round-trip; the paper's
spellings, flat options and scalar lists load; user-registered blocks run by name."""

from __future__ import annotations

import json
from collections import Counter

import numpy as np
import pytest
import torch
import yaml
from scipy.spatial.distance import cdist
from torch import nn

from paradime_core import (
    DATA_FUNCTIONS,
    LOSS_FUNCTIONS,
    LOSS_TYPES,
    MODELS,
    OPTIMIZERS,
    RELATIONS,
    SAMPLERS,
    TRANSFORMS,
    Routine,
    Spec,
    SpecError,
    load_spec,
    register_data_function,
    register_loss_function,
    register_loss_type,
    register_model,
    register_optimizer,
    register_relation,
    register_sampler,
    register_transform,
)
from paradime_core.batch import Batch
from paradime_core.spec import (
    DerivedDataSpec,
    LossSpec,
    ModelSpec,
    OptimizerSpec,
    PhaseSpec,
    RelationSpec,
    SamplingSpec,
    TransformSpec,
    blocks,
)

# A t-SNE-like spec with an initialisation phase, written in the canonical form.
CANONICAL_YAML = """
name: tsne-like
derived_data:
  - name: pca
    func: pca
    keys: [[data, main]]
    options: {n_components: 2}
relations:
  - name: p
    level: global
    type: neighbor
    data: main
    options: {n_neighbors: 30}
    transforms:
      - {type: perplexity, options: {perplexity: 10}}
      - {type: symmetrize, options: {sub_prod: false}}
      - {type: normalize, options: {}}
  - name: q
    level: batch
    type: pdist
    data: main
    options: {}
    transforms:
      - {type: t_dist, options: {alpha: 1.0}}
      - {type: normalize, options: {}}
losses:
  - {name: init, type: position, func: mse, keys: {data: [pca], rels: [], methods: []}, options: {}}
  - {name: emb, type: relation, func: kl_div, keys: {data: [], rels: [p, q], methods: []}, options: {}}
training_phases:
  - name: pca_init
    epochs: 2
    sampling: {type: item, options: {batch_size: 100}}
    loss: {components: [init]}
    optimizer: {type: adam, options: {lr: 0.01}}
  - name: embedding
    epochs: 3
    sampling: {type: item, options: {batch_size: 100}}
    loss: {components: [emb], weights: [1.0]}
    optimizer: {type: adam, options: {lr: 0.005}}
"""

# The same spec as the paper writes it: keys with spaces, flat options, scalars for
# one-element lists, aliases of registered names.
PAPER_STYLE_YAML = """
name: tsne-like
derived data:
  - name: pca
    data func: pca
    keys: [data, main]
    options: {n components: 2}
relations:
  - name: p
    level: global
    type: neighbor
    n neighbors: 30
    transforms:
      - type: perplexity
        perplexity: 10
      - {type: symmetrize, options: {sub prod: false}}
      - normalize
  - name: q
    level: batch
    type: pdist
    transforms:
      - {type: t-dist, options: {alpha: 1.0}}
      - normalize
losses:
  - {name: init, type: position, func: mse, keys: {data: pca}}
  - {name: emb, type: relation, func: kl div, keys: {rels: [p, q]}}
training phases:
  - name: pca_init
    epochs: 2
    batch size: 100
    loss: {components: init}
  - name: embedding
    epochs: 3
    sampling: {type: item, options: {batch size: 100}}
    loss: {components: emb, weights: 1}
    optimizer: {type: Adam, learning rate: 0.005}
"""


def objects_spec() -> Spec:
    """The canonical spec built object by object."""
    return Spec(
        name="tsne-like",
        derived_data=[DerivedDataSpec("pca", "pca", [("data", "main")], {"n_components": 2})],
        relations=[
            RelationSpec("p", "global", "neighbor", options={"n_neighbors": 30}, transforms=[
                TransformSpec("perplexity", {"perplexity": 10}),
                TransformSpec("symmetrize", {"sub_prod": False}),
                TransformSpec("normalize"),
            ]),
            RelationSpec("q", "batch", "pdist", transforms=[
                TransformSpec("t_dist", {"alpha": 1.0}), TransformSpec("normalize"),
            ]),
        ],
        losses=[
            LossSpec("init", "position", func="mse", data=["pca"]),
            LossSpec("emb", "relation", func="kl_div", rels=["p", "q"]),
        ],
        training_phases=[
            PhaseSpec(["init"], name="pca_init", epochs=2, sampling=SamplingSpec("item", {"batch_size": 100})),
            PhaseSpec(["emb"], weights=[1.0], name="embedding", epochs=3,
                      sampling=SamplingSpec("item", {"batch_size": 100}),
                      optimizer=OptimizerSpec("adam", {"lr": 0.005})),
        ],
    )


# --------------------------------------------------------------------------- equivalence
def test_yaml_json_dict_and_objects_are_equivalent():
    from_yaml = Spec.from_yaml(CANONICAL_YAML)
    as_dict = yaml.safe_load(CANONICAL_YAML)
    from_dict = Spec.from_dict(as_dict)
    from_json = Spec.from_json(json.dumps(as_dict))
    from_objects = objects_spec()
    assert from_yaml == from_dict == from_json == from_objects
    # The canonical YAML is exactly the canonical form.
    assert from_yaml.to_dict() == as_dict


def test_round_trips_are_exact():
    spec = Spec.from_yaml(PAPER_STYLE_YAML)
    canonical = spec.to_dict()
    assert Spec.from_dict(canonical) == spec
    assert Spec.from_dict(canonical).to_dict() == canonical  # to_dict is a fixed point
    assert Spec.from_yaml(spec.to_yaml()).to_dict() == canonical
    assert Spec.from_json(spec.to_json()).to_dict() == canonical
    assert json.loads(spec.to_json()) == canonical
    assert yaml.safe_load(spec.to_yaml()) == canonical


def test_paper_spellings_load_as_the_canonical_spec():
    assert Spec.from_yaml(PAPER_STYLE_YAML) == Spec.from_yaml(CANONICAL_YAML)


def test_loading_does_not_modify_the_input_dict():
    raw = yaml.safe_load(PAPER_STYLE_YAML)
    before = json.dumps(raw, sort_keys=True)
    Spec.from_dict(raw)
    assert json.dumps(raw, sort_keys=True) == before


def test_different_specs_are_not_equal():
    spec = Spec.from_yaml(CANONICAL_YAML)
    changed = spec.to_dict()
    changed["relations"][0]["transforms"][0]["options"]["perplexity"] = 11
    assert Spec.from_dict(changed) != spec


@pytest.mark.parametrize("suffix", [".yaml", ".yml", ".json"])
def test_load_spec_reads_files_and_text(tmp_path, suffix):
    spec = Spec.from_yaml(CANONICAL_YAML)
    path = tmp_path / f"spec{suffix}"
    path.write_text(spec.to_json() if suffix == ".json" else spec.to_yaml())
    assert load_spec(path) == spec
    assert load_spec(str(path)) == spec
    assert load_spec(CANONICAL_YAML) == spec
    assert load_spec(spec.to_json()) == spec
    assert load_spec(yaml.safe_load(CANONICAL_YAML)) == spec
    assert load_spec(spec) is spec


def test_registered_names_are_canonical_in_to_dict():
    spec = Spec.from_yaml("""
relations:
  - {name: p, level: global, type: knn, options: {n neighbors: 10},
     transforms: [connect, {type: symmetrize, sub prod: true}]}
  - {name: q, level: batch, type: fromto, transforms: [{type: modified cauchy, min dist: 0.2}]}
losses:
  - {name: emb, type: relation, func: umap cross entropy, keys: {rels: [p, q]}}
training phases:
  - {loss: {components: emb}, sampling: {type: negative edge, options: {rels: p, neg sampling rate: 3}},
     optimizer: {type: AdamW}}
""")
    out = spec.to_dict()
    assert out["relations"][0]["type"] == "neighbor"
    assert out["relations"][0]["options"] == {"n_neighbors": 10}
    assert out["relations"][0]["transforms"] == [
        {"type": "connect", "options": {}}, {"type": "symmetrize", "options": {"sub_prod": True}}]
    assert out["relations"][1]["type"] == "edge_dist"
    assert out["relations"][1]["transforms"] == [{"type": "cauchy", "options": {"min_dist": 0.2}}]
    assert out["losses"][0]["func"] == "cross_entropy"
    assert out["training_phases"][0]["sampling"] == {
        "type": "edge", "options": {"rels": "p", "neg_sampling_rate": 3}}
    assert out["training_phases"][0]["optimizer"] == {"type": "adamw", "options": {"lr": 0.01}}


# --------------------------------------------------------------------------- flat / nested / scalar
MINIMAL = """
relations:
  - {name: d, level: global, type: pdist}
  - {name: e, level: batch, type: pdist}
losses:
  - {name: mds, type: relation, func: mse, keys: {rels: [d, e]}}
"""


@pytest.mark.parametrize("flat, nested", [
    ("sampling: {type: item, batch_size: 20, shuffle: false}",
     "sampling: {type: item, options: {batch_size: 20, shuffle: false}}"),
    ("sampling: {type: item, options: {batch size: 20}, shuffle: false}",
     "sampling: {type: item, options: {batch_size: 20, shuffle: false}}"),
    ("batch size: 20", "sampling: {type: item, options: {batch_size: 20}}"),
    ("optimizer: {type: sgd, lr: 0.1, momentum: 0.5}", "optimizer: {type: sgd, options: {lr: 0.1, momentum: 0.5}}"),
    ("optimizer: sgd", "optimizer: {type: sgd, options: {lr: 0.01}}"),
    ("sampling: item", "sampling: {type: item}"),
])
def test_flat_options_mean_the_same_as_nested(flat, nested):
    def phase(extra: str) -> str:
        return MINIMAL + f"training_phases:\n  - epochs: 2\n    loss: {{components: mds}}\n    {extra}\n"

    assert Spec.from_yaml(phase(flat)) == Spec.from_yaml(phase(nested))


def test_flat_relation_and_loss_options():
    flat = Spec.from_yaml("""
relations:
  - {name: d, level: global, type: pdist, metric: cosine, transforms: [{type: t-dist, alpha: 2}]}
  - {name: e, level: batch, type: pdist}
losses:
  - {name: mds, type: relation, func: mse, keys: {rels: [d, e]}}
  - {name: tri, type: triplet, margin: 0.5}
training phases: [{loss: {components: mds}}]
""")
    nested = Spec.from_yaml("""
relations:
  - {name: d, level: global, type: pdist, options: {metric: cosine},
     transforms: [{type: t_dist, options: {alpha: 2}}]}
  - {name: e, level: batch, type: pdist}
losses:
  - {name: mds, type: relation, func: mse, keys: {rels: [d, e]}}
  - {name: tri, type: triplet, options: {margin: 0.5}}
training phases: [{loss: {components: [mds]}}]
""")
    assert flat == nested
    assert flat.losses[1].options == {"margin": 0.5}


def test_one_element_lists_may_be_scalars():
    scalar = Spec.from_yaml(MINIMAL.replace("rels: [d, e]", "rels: [d, e], methods: embed") + """
training_phases:
  - loss: {components: mds, weights: 2}
    params: embedding_head
""")
    listed = Spec.from_yaml(MINIMAL.replace("rels: [d, e]", "rels: [d, e], methods: [embed]") + """
training_phases:
  - loss: {components: [mds], weights: [2.0]}
    params: [embedding_head]
""")
    assert scalar == listed
    assert scalar.training_phases[0].components == ["mds"]
    assert scalar.training_phases[0].weights == [2.0]
    assert scalar.training_phases[0].params == ["embedding_head"]
    # a single element (not a list) for a list field of the spec itself
    single = Spec.from_dict({"relations": yaml.safe_load(MINIMAL)["relations"],
                             "losses": yaml.safe_load(MINIMAL)["losses"][0],
                             "training_phases": {"loss": {"components": "mds"}}})
    assert len(single.losses) == 1 and len(single.training_phases) == 1


def test_objects_and_dicts_may_be_mixed():
    raw = yaml.safe_load(MINIMAL)
    spec = Spec(losses=[LossSpec("mds", "relation", func="mse", rels=["d", "e"])],
                training_phases=[{"loss": {"components": "mds"}}],
                relations=raw["relations"], model="fc")
    assert spec == Spec.from_yaml(MINIMAL + "model: fully_connected\ntraining_phases: [{loss: {components: mds}}]")
    assert spec.model == ModelSpec("fully_connected", {})


def test_object_built_specs_are_checked_like_loaded_ones():
    with pytest.raises(SpecError, match=r"^training_phases\[0\]\.loss\.components\[0\]: unknown loss 'nope'"):
        Spec(losses=[LossSpec("mds", "relation", func="mse", rels=["d", "e"])],
             training_phases=[PhaseSpec(["nope"])], relations=yaml.safe_load(MINIMAL)["relations"])
    with pytest.raises(SpecError, match=r"^losses\[0\]\.name: expected a non-empty string, got 3"):
        Spec(losses=[LossSpec(3, "relation")], training_phases=[PhaseSpec(["x"])])


# --------------------------------------------------------------------------- user registration
CALLS: Counter[str] = Counter()


class CountingDistances:
    """A global relation: scaled Euclidean distances, counting its computations."""

    levels = ("global",)

    def __init__(self, scale: float = 1.0):
        if scale <= 0:
            raise ValueError("scale must be positive")
        self.scale = scale

    def compute(self, data: np.ndarray) -> np.ndarray:
        CALLS["relation"] += 1
        return (cdist(data, data) * self.scale).astype(np.float32)


class CountingPower:
    """A transform ``x -> x^power`` for global values and batch tensors."""

    levels = ("global", "batch")
    option_aliases = {"exponent": "power"}

    def __init__(self, power: float = 1.0):
        self.power = power

    def __call__(self, value):
        CALLS["transform"] += 1
        return value**self.power


def counting_mse(target: torch.Tensor, prediction: torch.Tensor) -> torch.Tensor:
    CALLS["loss function"] += 1
    return ((target - prediction) ** 2).mean()


class CentreLoss:
    """A loss type: ``strength * mean ||y_i||^2`` (keeps the embedding centred)."""

    def __init__(self, func=None, data=None, rels=None, methods=None, strength: float = 1.0):
        self.strength = strength

    def __call__(self, ctx) -> torch.Tensor:
        CALLS["loss type"] += 1
        return self.strength * (ctx.output("embed") ** 2).sum(dim=1).mean()


def first_columns(data: np.ndarray, factor: float = 1.0) -> np.ndarray:
    """A data function: the first two columns times ``factor``."""
    CALLS["data function"] += 1
    return np.asarray(data)[:, :2] * factor


class HalvesSampler:
    """A sampler: each epoch, the items in two halves of a random permutation."""

    relation_options = ()

    def __init__(self, n_parts: int = 2):
        self.n_parts = n_parts

    def epoch(self, n_items, relations, generator):
        CALLS["sampler"] += 1
        order = torch.randperm(n_items, generator=generator)
        for part in torch.tensor_split(order, self.n_parts):
            yield Batch(items=part)


class CountingSGD(torch.optim.SGD):
    def step(self, closure=None):
        CALLS["optimizer"] += 1
        return super().step(closure)


class TinyModel(nn.Module):
    def __init__(self, in_dim: int, n_items: int | None = None, out_dim: int = 2, width: int = 8):
        super().__init__()
        CALLS["model"] += 1
        self.trunk = nn.Sequential(nn.Linear(in_dim, width), nn.Tanh())
        self.embedding_head = nn.Linear(width, out_dim)

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        return self.embedding_head(self.trunk(x))


USER_BLOCKS = [
    (RELATIONS, register_relation, "test scaled dist", CountingDistances),
    (TRANSFORMS, register_transform, "test power", CountingPower),
    (LOSS_FUNCTIONS, register_loss_function, "test counting mse", counting_mse),
    (LOSS_TYPES, register_loss_type, "test centre", CentreLoss),
    (DATA_FUNCTIONS, register_data_function, "test first columns", first_columns),
    (SAMPLERS, register_sampler, "test halves", HalvesSampler),
    (OPTIMIZERS, register_optimizer, "test counting sgd", CountingSGD),
    (MODELS, register_model, "test tiny", TinyModel),
]


@pytest.fixture
def user_blocks():
    for _, register, name, impl in USER_BLOCKS:
        register(name, aliases=(f"{name} alias",))(impl)
    CALLS.clear()
    yield
    for registry, _, name, _ in USER_BLOCKS:
        registry.unregister(name)


USER_SPEC = """
derived data:
  - {name: target, data func: test first columns, keys: [data, main], options: {factor: 0.5}}
relations:
  - name: d
    level: global
    type: test scaled dist
    options: {scale: 0.5}
    transforms: [{type: test power, options: {exponent: 1.0}}]
  - name: e
    level: batch
    type: pdist
    transforms: [{type: test power alias, power: 1.0}]
losses:
  - {name: stress, type: relation, func: test counting mse, keys: {rels: [d, e]}}
  - {name: centre, type: test centre, strength: 0.1}
  - {name: position, type: position, func: test counting mse alias, keys: {data: target}}
training phases:
  - name: fit
    epochs: 3
    sampling: {type: test halves, n parts: 4}
    optimizer: {type: test counting sgd, lr: 0.01, momentum: 0.9}
    loss: {components: [stress, centre, position], weights: [1, 0.5, 0.1]}
model: {type: test tiny alias, width: 6}
"""


def test_user_blocks_are_used_by_name_and_really_run(user_blocks, digits):
    X, _ = digits
    spec = Spec.from_yaml(USER_SPEC)
    out = spec.to_dict()
    assert out["relations"][0]["type"] == "test_scaled_dist"
    assert out["relations"][0]["transforms"][0] == {"type": "test_power", "options": {"power": 1.0}}
    assert out["losses"][2]["func"] == "test_counting_mse"
    assert out["model"] == {"type": "test_tiny", "options": {"width": 6}}
    CALLS.clear()  # validation only constructs blocks; count what the fit runs

    routine = Routine(spec, seed=0, device="cpu", verbose=False).fit(X[:120])
    epochs, batches = 3, 4
    steps = epochs * batches
    assert CALLS["data function"] == 1
    assert CALLS["relation"] == 1
    assert CALLS["model"] == 1
    assert CALLS["sampler"] == epochs
    assert CALLS["optimizer"] == steps
    assert CALLS["loss type"] == steps
    assert CALLS["loss function"] == 2 * steps  # the stress and the position loss
    assert CALLS["transform"] == 1 + steps  # the global chain once, the batch chain per step
    assert isinstance(routine.model_, TinyModel)
    assert routine.model_.trunk[0].out_features == 6
    history = routine.history_["fit"]
    assert set(history) == {"stress", "centre", "position", "total"}
    assert len(history["total"]) == epochs
    np.testing.assert_allclose(
        np.array(history["total"]),
        np.array(history["stress"]) + 0.5 * np.array(history["centre"]) + 0.1 * np.array(history["position"]),
        rtol=1e-5,
    )
    assert history["stress"][-1] < history["stress"][0]


def test_user_block_option_errors_name_the_location(user_blocks):
    bad = USER_SPEC.replace("options: {scale: 0.5}", "options: {scale: -1}")
    with pytest.raises(SpecError, match=r"^relations\[0\]\.options: relation 'test_scaled_dist': scale must be positive"):
        Spec.from_yaml(bad)
    both = USER_SPEC.replace("options: {exponent: 1.0}", "options: {exponent: 1.0, power: 2}")
    with pytest.raises(SpecError, match=r"^relations\[0\]\.transforms\[0\]\.options\.power: given twice"):
        Spec.from_yaml(both)


def test_unregister_removes_name_and_aliases():
    register_transform("test temporary", aliases=("test temp",))(CountingPower)
    assert "test temp" in TRANSFORMS and "test_temporary" in TRANSFORMS
    TRANSFORMS.unregister("test temp")
    assert "test temp" not in TRANSFORMS and "test_temporary" not in TRANSFORMS
    with pytest.raises(KeyError):
        TRANSFORMS.unregister("test temporary")


def test_registering_a_different_block_under_a_taken_name_fails():
    with pytest.raises(ValueError, match="already registered"):
        register_transform("normalize")(CountingPower)


def test_sampled_relation_defaults_to_the_only_global_relation():
    spec = Spec.from_yaml("""
relations:
  - {name: p, level: global, type: neighbor, n neighbors: 5, transforms: [connect]}
  - {name: q, level: batch, type: edge_dist, transforms: [cauchy]}
losses: [{name: emb, type: relation, func: cross entropy, keys: {rels: [p, q]}}]
training phases: [{loss: {components: emb}, sampling: {type: edge, batch size: 32}}]
""")
    sampler = blocks.build_sampler(spec.training_phases[0].sampling, spec, "training_phases[0].sampling")
    assert sampler.rels == "p"
    assert spec.to_dict()["training_phases"][0]["sampling"]["options"] == {"batch_size": 32}
