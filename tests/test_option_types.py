"""Block options are checked against the blocks' annotations, in one place, at their spec path.

Every kind of block (relation, transform, loss type, sampler, data function, model,
optimizer) gets a wrong type and a value out of range; a user's registered block gets the
same checks from its own annotations.
"""

from __future__ import annotations

import inspect
import typing
from collections.abc import Sequence
from typing import Annotated, Any, Literal

import numpy as np
import pytest
import yaml
from annotated_types import Ge, Gt, Interval, Len
from spec_paths import edited_copy

from paradime_core import Spec, SpecError
from paradime_core.spec import option_types
from paradime_core.spec import registry as reg
from paradime_core.spec.option_types import check_options, describe

BASE: dict[str, Any] = yaml.safe_load("""
derived_data:
  - {name: pca, func: pca, keys: [[data, main]], options: {n_components: 2}}
relations:
  - name: p
    level: global
    type: neighbor
    options: {n_neighbors: 10}
    transforms: [{type: perplexity, options: {perplexity: 3}}, {type: symmetrize}]
  - {name: q, level: batch, type: pdist, transforms: [{type: t_dist}]}
losses:
  - {name: init, type: position, func: mse, keys: {data: [pca]}}
  - {name: emb, type: relation, func: kl_div, keys: {rels: [p, q]}}
  - {name: tri, type: triplet, options: {margin: 1.0}}
training_phases:
  - {name: first, epochs: 1, sampling: {type: item, options: {batch_size: 50}}, loss: {components: [init]},
     optimizer: {type: adam, options: {lr: 0.01, betas: [0.8, 0.9]}}}
  - {name: second, epochs: 1, sampling: {type: edge, options: {rels: p, neg_rate: 3}}, loss: {components: [emb]}}
model: {type: fully_connected, options: {hidden_dims: [10], dropout: 0.1}}
""")

# (block kind, option path, bad value, message); each kind has a wrong type and a value out of range
CASES = [
    ("relation", "relations[0].options.n_neighbors", "10", "expected an integer >= 1 or null, got '10'"),
    ("relation", "relations[0].options.n_neighbors", 0, "expected an integer >= 1 or null, got 0"),
    ("transform", "relations[0].transforms[0].options.perplexity", True, "expected a number > 0, got True"),
    ("transform", "relations[0].transforms[0].options.perplexity", float("inf"), "expected a number > 0, got inf"),
    ("loss type", "losses[2].options.margin", [1.0], "expected a number >= 0, got [1.0]"),
    ("loss type", "losses[2].options.margin", -0.5, "expected a number >= 0, got -0.5"),
    ("sampler", "training_phases[1].sampling.options.neg_rate", 2.5, "expected an integer >= 0 or null, got 2.5"),
    ("sampler", "training_phases[1].sampling.options.neg_rate", -1, "expected an integer >= 0 or null, got -1"),
    ("data function", "derived_data[0].options.n_components", "2", "expected an integer >= 1, got '2'"),
    ("data function", "derived_data[0].options.n_components", 0, "expected an integer >= 1, got 0"),
    ("model", "model.options.dropout", "0.1", "expected a number >= 0 and < 1, got '0.1'"),
    ("model", "model.options.dropout", 1.0, "expected a number >= 0 and < 1, got 1.0"),
    ("optimizer", "training_phases[0].optimizer.options.lr", "0.01", "expected a number > 0, got '0.01'"),
    ("optimizer", "training_phases[0].optimizer.options.lr", 0, "expected a number > 0, got 0"),
    ("optimizer (torch's annotation)", "training_phases[0].optimizer.options.weight_decay", "1e-4",
     "expected a number, got '1e-4'"),
    ("optimizer (torch's annotation)", "training_phases[0].optimizer.options.betas", ["a", 0.9],
     "expected a list [a number or a Tensor, a number or a Tensor], got ['a', 0.9]"),
]


def test_the_base_spec_is_valid():
    assert Spec.from_dict(BASE).relations[0].name == "p"


@pytest.mark.parametrize("kind, path, value, message", CASES, ids=[f"{c[0]}: {c[1]}={c[2]!r}" for c in CASES])
def test_a_bad_option_is_one_spec_error_at_its_path(kind, path, value, message):
    with pytest.raises(SpecError) as info:
        Spec.from_dict(edited_copy(BASE, path, value))
    assert (info.value.path, info.value.problem) == (path, message)
    assert str(info.value) == f"{path}: {message}"


def test_every_kind_has_a_type_and_a_range_case():
    kinds = {case[0] for case in CASES if "(" not in case[0]}
    assert kinds == {"relation", "transform", "loss type", "sampler", "data function", "model", "optimizer"}
    assert all(sum(case[0] == kind for case in CASES) == 2 for kind in kinds)


def test_values_the_annotations_allow_pass():
    ok = {"relations[0].options.n_neighbors": None, "model.options.dropout": 0,  # an int is a number
          "model.options.hidden_dims": 8, "training_phases[0].optimizer.options.betas": (0.5, 0.6),
          "training_phases[1].sampling.options.batches_per_epoch": -1,
          "derived_data[0].options.n_components": np.int64(2)}  # NumPy scalars count as numbers
    for path, value in ok.items():
        Spec.from_dict(edited_copy(BASE, path, value))


# --------------------------------------------------------------------------- user blocks
def test_a_registered_block_is_checked_from_its_annotations():
    @reg.register_transform("scaled_for_option_test")
    class Scaled:
        levels = ("global", "batch")

        def __init__(self, factor: Annotated[float, Gt(0)] = 1.0, mode: Literal["sum", "max"] = "sum",
                     anything=None):
            self.factor = factor

        def __call__(self, value):
            return value * self.factor

    spec = edited_copy(BASE, "relations[1].transforms[0]", {"type": "scaled_for_option_test", "options": {}})
    try:
        Spec.from_dict(spec)
        for option, value, message in [
            ("factor", "2", "expected a number > 0, got '2'"),
            ("factor", -2, "expected a number > 0, got -2"),
            ("mode", "mean", "expected one of sum, max, got 'mean'"),
        ]:
            path = f"relations[1].transforms[0].options.{option}"
            with pytest.raises(SpecError) as info:
                Spec.from_dict(edited_copy(spec, path, value))
            assert str(info.value) == f"{path}: {message}"
        # an unannotated parameter takes any value
        Spec.from_dict(edited_copy(spec, "relations[1].transforms[0].options.anything", {"any": ["thing"]}))
        with pytest.raises(SpecError, match=r"options\.factr: unknown option .*did you mean 'factor'"):
            Spec.from_dict(edited_copy(spec, "relations[1].transforms[0].options.factr", 2))
    finally:
        reg.TRANSFORMS.unregister("scaled_for_option_test")


def test_option_types_given_at_registration_replace_the_annotation():
    def scale(data, factor: float = 1.0):
        return data * factor

    reg.register_data_function("scale_for_option_test", option_types={"factor": Annotated[float, Ge(1)]})(scale)
    try:
        raw = edited_copy(BASE, "derived_data[0]", {"name": "pca", "func": "scale_for_option_test",
                                                     "options": {"factor": 0.5}})
        with pytest.raises(SpecError, match=r"^derived_data\[0\]\.options\.factor: expected a number >= 1, got 0\.5$"):
            Spec.from_dict(raw)
    finally:
        reg.DATA_FUNCTIONS.unregister("scale_for_option_test")
    assert reg.DATA_FUNCTIONS.option_types("scale_for_option_test") == {}


def test_unresolvable_annotations_are_not_checked():
    class Local:  # defined in a function: the string annotation below cannot be resolved
        pass

    def block(size: Annotated[int, Ge(1)] = 1, thing: Local | None = None):
        return size

    block.__annotations__["thing"] = "Local | None"
    assert set(option_types.option_annotations(block)) == {"size"}
    check_options(block, {"thing": 3}, "x.options", "block")
    with pytest.raises(SpecError, match=r"^x\.options\.size: expected an integer >= 1, got 0$"):
        check_options(block, {"size": 0}, "x.options", "block")


def test_a_tuple_annotation_takes_a_list_of_its_length():
    def block(pair: tuple[float, Annotated[int, Ge(0)]] = (1.0, 0)):
        return pair

    check_options(block, {"pair": [0.5, 3]}, "x.options", "block")
    for bad in ([0.5], [0.5, -1], "ab", [0.5, 3, 4]):
        with pytest.raises(SpecError, match=r"expected a list \[a number, an integer >= 0\]"):
            check_options(block, {"pair": bad}, "x.options", "block")


# --------------------------------------------------------------------------- the built-ins
REGISTRIES = [reg.RELATIONS, reg.TRANSFORMS, reg.LOSS_TYPES, reg.SAMPLERS, reg.DATA_FUNCTIONS, reg.MODELS,
              reg.OPTIMIZERS]


@pytest.mark.parametrize("registry", REGISTRIES, ids=lambda r: r.kind)
def test_every_builtin_annotation_resolves_and_is_checked(registry):
    """A block whose annotation cannot be resolved or checked would silently take any value."""
    for name in registry.names():
        impl = registry.get(name)
        target = impl.__init__ if inspect.isclass(impl) else impl
        typing.get_type_hints(target, include_extras=True)  # raises if any annotation cannot be resolved
        for option, annotation in option_types.option_annotations(impl).items():
            assert option_types._adapter(annotation) is not None, (registry.kind, name, option)


@pytest.mark.parametrize("annotation, text", [
    (int, "an integer"),
    (Annotated[float, Gt(0)] | None, "a number > 0 or null"),
    (Annotated[float, Interval(ge=0, lt=1)], "a number >= 0 and < 1"),
    (Literal["a", "b"], "one of a, b"),
    (Sequence[Annotated[int, Ge(1)]] | Annotated[int, Ge(1)], "a list of integers >= 1 or an integer >= 1"),
    (Annotated[Sequence[str], Len(2, 2)], "a list of strings with 2 items"),
    (bool, "true or false"),
    (Annotated[int, Ge(1)] | Literal["auto"], "an integer >= 1 or auto"),
])
def test_describe(annotation, text):
    assert describe(annotation) == text
