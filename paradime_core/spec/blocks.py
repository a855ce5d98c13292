"""Build the building blocks a spec names, and check each against its registry.

Each registered implementation follows its protocol in :mod:`paradime_core.protocols`. Its
options are checked against its signature first, names and values
(:func:`~paradime_core.spec.option_types.check_options`); its constructor then checks only
what the annotations cannot say, raising ``ValueError``/``TypeError``, which is reported as a
:class:`~paradime_core.errors.SpecError` at the block's ``options``. A relation is built
with its transform chain (:class:`BuiltRelation`), which answers for the chain what the
pipeline and the losses ask: the kNN graph a neighbour relation needs, and the edge kernel
of a batch relation.
"""

from __future__ import annotations

import contextlib
import functools
import inspect
from collections.abc import Iterator, Mapping
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from paradime_core.errors import DataError, SpecError
from paradime_core.protocols import (
    EdgeDistanceRelation,
    EdgeKernel,
    KernelTransform,
    KnnRequest,
    NeighborHint,
    NeighborRelation,
)
from paradime_core.relation_data import NeighborGraph
from paradime_core.spec import limits
from paradime_core.spec import registry as reg
from paradime_core.spec.elements import LEVELS
from paradime_core.spec.option_types import check_options
from paradime_core.spec.registry import Registry, canonical_name, resolve_options

if TYPE_CHECKING:
    from paradime_core.spec import (
        DerivedDataSpec,
        LossSpec,
        ModelSpec,
        OptimizerSpec,
        RelationSpec,
        SamplingSpec,
        Spec,
    )


def build(registry: Registry[Any], name: str, options: Mapping[str, Any], where: str, *,
          filled: Mapping[str, Any] | None = None, note: str = "") -> Any:
    """``registry[name](**filled, **options)``, its options checked first.

    Option aliases the implementation declares (``option_aliases``) are resolved, then the
    options' names and values are checked against its signature (:func:`check_options`).
    A ``ValueError`` or ``TypeError`` raised by the implementation itself (what annotations
    cannot say) is re-raised as a :class:`SpecError` at ``where.options``.

    Parameters
    ----------
    registry : Registry
        The registry of the block's kind.
    name : str
        The block's name in the spec (``type``).
    options : mapping
        The spec's options of the block.
    where : str
        Spec path of the block (``relations[0]``).
    filled : mapping, optional
        Arguments the spec layer fills itself (a loss type's ``func``, ``rels``, ...): passed
        on, not options, so not checked.
    note : str
        Appended to the list of allowed names in the unknown-option message.
    """
    impl = registry.get(name, f"{where}.type")
    options = resolve_options(impl, dict(options or {}), f"{where}.options")
    what = f"{registry.kind} '{canonical_name(name)}'"
    filled = dict(filled or {})
    check_options(impl, options, f"{where}.options", what, exclude=filled,
                  option_types=registry.option_types(name), note=note)
    try:
        return impl(**filled, **options)
    except SpecError:
        raise
    except (ValueError, TypeError) as exc:
        raise SpecError(f"{where}.options", f"{what}: {exc}") from exc


@dataclass
class BuiltRelation:
    """A relation with its transform chain, ready to compute."""

    name: str
    level: str
    data_key: str
    relation: Any
    transforms: list[Any] = field(default_factory=list)

    def compute(self, data: np.ndarray) -> Any:
        """Global: the relation over all items, after the transforms."""
        value = self.relation.compute(data)
        for transform in self.transforms:
            value = transform(value)
        return value

    def __call__(self, outputs: Any, batch: Any) -> Any:
        """Batch: the relation over the batch's outputs, after the transforms."""
        value = self.relation(outputs, batch)
        for transform in self.transforms:
            value = transform(value)
        return value

    def knn_request(self, n_items: int) -> KnnRequest | None:
        """The kNN graph a neighbour relation needs for ``n_items`` items; None for others."""
        return self.relation.knn_request(n_items) if isinstance(self.relation, NeighborRelation) else None

    def from_graph(self, graph: NeighborGraph) -> Any:
        """Global, neighbour relations: the value on the kNN graph ``graph``, after the transforms."""
        value = self.relation.from_graph(graph)
        for transform in self.transforms:
            value = transform(value)
        return value

    def edge_kernel(self) -> EdgeKernel | None:
        """Batch: the kernel ``q(s)`` of the squared euclidean edge distance ``s`` this chain
        computes on a batch with edges (one kernel transform after euclidean edge distances),
        or None."""
        if not (isinstance(self.relation, EdgeDistanceRelation) and self.relation.edge_metric() == "euclidean"):
            return None
        if len(self.transforms) != 1 or not isinstance(self.transforms[0], KernelTransform):
            return None
        return self.transforms[0].edge_kernel()


def _check_level(impl: Any, level: str, path: str, problem: str) -> None:
    """``impl.levels`` (a class attribute; both levels when absent) must include ``level``."""
    levels = getattr(impl, "levels", LEVELS)
    if level not in levels:
        raise SpecError(path, problem.format(levels="/".join(levels), level=level))


def build_relation(spec: RelationSpec, where: str) -> BuiltRelation:
    """The relation and its transforms; the levels are checked before the options."""
    name = canonical_name(spec.type)
    _check_level(reg.RELATIONS.get(spec.type, f"{where}.type"), spec.level, f"{where}.level",
                 f"relation type '{name}' is {{levels}}-level only, not {{level}}")
    for i, t in enumerate(spec.transforms):
        _check_level(reg.TRANSFORMS.get(t.type, f"{where}.transforms[{i}].type"), spec.level,
                     f"{where}.transforms[{i}].type",
                     f"transform '{canonical_name(t.type)}' applies to {{levels}} relations, not {{level}}")
    relation = build(reg.RELATIONS, spec.type, spec.options, where)
    _check_level(relation, spec.level, f"{where}.level",
                 f"relation type '{name}' is {{levels}}-level only, not {{level}}")
    transforms = []
    for i, t in enumerate(spec.transforms):
        tw = f"{where}.transforms[{i}]"
        transform = build(reg.TRANSFORMS, t.type, t.options, tw)
        _check_level(transform, spec.level, f"{tw}.type",
                     f"transform '{canonical_name(t.type)}' applies to {{levels}} relations, not {{level}}")
        transforms.append(transform)
    if isinstance(relation, NeighborRelation) and relation.n_neighbors is None:
        hints = [t.suggested_neighbors() for t in transforms if isinstance(t, NeighborHint)]
        hints = [h for h in hints if h]
        relation.n_neighbors = max(hints) if hints else 15
    return BuiltRelation(spec.name, spec.level, spec.data, relation, transforms)


def build_loss(spec: LossSpec, full_spec: Spec | None, where: str) -> Any:
    cls = reg.LOSS_TYPES.get(spec.type, f"{where}.type")
    func = None
    if spec.func is not None:
        func = reg.LOSS_FUNCTIONS.get(spec.func, f"{where}.func")
    elif getattr(cls, "needs_func", False):
        raise SpecError(f"{where}.func", f"loss type '{canonical_name(spec.type)}' needs a func "
                        f"(one of {', '.join(reg.LOSS_FUNCTIONS.names())})")
    levels = getattr(cls, "rel_levels", None)
    if levels is not None:
        if len(spec.rels) != len(levels):
            raise SpecError(f"{where}.keys.rels", f"loss type '{canonical_name(spec.type)}' needs "
                            f"{len(levels)} relations ({', '.join(levels)}), got {len(spec.rels)}")
        if full_spec is not None:
            for j, (name, level) in enumerate(zip(spec.rels, levels, strict=False)):
                rel = next((r for r in full_spec.relations if r.name == name), None)
                if rel is not None and level != "any" and rel.level != level:
                    raise SpecError(f"{where}.keys.rels[{j}]",
                                    f"relation '{name}' is {rel.level}-level; this position needs a {level} relation")
    filled = {"func": func, "data": list(spec.data), "rels": list(spec.rels), "methods": list(spec.methods)}
    for key in filled:
        if key in spec.options:
            raise SpecError(f"{where}.options.{key}", "reserved name (give it under keys/func)")
    try:
        return build(reg.LOSS_TYPES, spec.type, spec.options, where, filled=filled,
                     note="; fields of a loss: name, type, func, keys, options")
    except SpecError as exc:
        raise SpecError(exc.path.replace(".options.func", ".func"), exc.problem) from None


def build_sampler(spec: SamplingSpec, full_spec: Spec | None, where: str) -> Any:
    """The sampler; its relation options (``relation_options``, e.g. ``rels``) must name
    global relations of ``full_spec``. When one is not given and the spec defines exactly
    one global relation, that relation is used."""
    impl = reg.SAMPLERS.get(spec.type, f"{where}.type")
    options = dict(spec.options)
    if full_spec is not None:
        global_rels = [r.name for r in full_spec.relations if r.level == "global"]
        for option in getattr(impl, "relation_options", ()):
            name = options.get(option)
            if name is None:
                if len(global_rels) == 1:
                    options[option] = global_rels[0]
                continue
            if name not in global_rels:
                raise SpecError(f"{where}.options.{option}",
                                f"unknown global relation '{name}' (defined: {', '.join(global_rels) or 'none'})")
    return build(reg.SAMPLERS, spec.type, options, where)


_OPTIMIZER_TRIALS: ContextVar[bool] = ContextVar("paradime_optimizer_trials", default=True)


@contextlib.contextmanager
def without_optimizer_trials() -> Iterator[None]:
    """Validate specs without the optimizers' trial construction (option names and types are
    still checked). For specs saved with a trained model: they were fully checked when
    trained, and the first optimizer built in a process imports ``torch._dynamo``, which a
    process that only loads a model to embed never needs. Training checks again regardless.
    """
    token = _OPTIMIZER_TRIALS.set(False)
    try:
        yield
    finally:
        _OPTIMIZER_TRIALS.reset(token)


def check_optimizer(spec: OptimizerSpec, where: str, trial: bool | None = None) -> type:
    """The optimizer class, its options checked, after a trial construction on one dummy
    parameter.

    The options' names and types are checked against the signature (and the types given at
    registration); the trial runs the optimizer's own checks of their values (``betas``,
    ``momentum``, ...), so bad values are SpecErrors before any computation, not errors
    mid-fit. ``trial=None`` follows :func:`without_optimizer_trials` (on unless inside it).
    """
    cls = reg.OPTIMIZERS.get(spec.type, f"{where}.type")
    name = canonical_name(spec.type)
    check_options(cls, spec.options, f"{where}.options", f"optimizer '{name}'", exclude=("params",),
                  option_types=reg.OPTIMIZERS.option_types(spec.type))
    if not (_OPTIMIZER_TRIALS.get() if trial is None else trial):
        return cls
    try:
        cls([torch.nn.Parameter(torch.zeros(1))], **spec.options)
    except (ValueError, TypeError, KeyError) as exc:
        raise SpecError(f"{where}.options", f"optimizer '{name}': {exc}") from None
    return cls


def build_data_function(spec: DerivedDataSpec, where: str) -> Any:
    """The data function, checked against the number of inputs and the option names.

    The returned callable reports a ValueError/TypeError of the function (a bad option
    value for this data) as a SpecError at ``where.options``; DataErrors pass unchanged.
    """
    func = reg.DATA_FUNCTIONS.get(spec.func, f"{where}.func")
    name = canonical_name(spec.func)
    params = inspect.signature(func).parameters
    positional = [p for p in params.values() if p.kind in
                  (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)]
    var_positional = any(p.kind is inspect.Parameter.VAR_POSITIONAL for p in params.values())
    required = [p for p in positional if p.default is inspect.Parameter.empty]
    if len(spec.keys) < len(required):
        raise SpecError(f"{where}.keys", f"data function '{name}' needs {len(required)} input(s) "
                        f"({', '.join(p.name for p in required)}), got {len(spec.keys)}")
    if len(spec.keys) > len(positional) and not var_positional:
        raise SpecError(f"{where}.keys", f"data function '{name}' takes at most {len(positional)} "
                        f"input(s), got {len(spec.keys)}")
    inputs = [p.name for p in positional[: len(spec.keys)]]  # filled by the keys, not options
    check_options(func, spec.options, f"{where}.options", f"data function '{name}'", exclude=inputs,
                  option_types=reg.DATA_FUNCTIONS.option_types(spec.func))

    @functools.wraps(func)
    def checked(*inputs: Any, **options: Any) -> Any:
        try:
            return func(*inputs, **options)
        except (SpecError, DataError):
            raise
        except (ValueError, TypeError) as exc:
            raise SpecError(f"{where}.options", f"data function '{name}': {exc}") from exc

    return checked


def check_model(spec: ModelSpec, where: str) -> Any:
    factory = reg.MODELS.get(spec.type, f"{where}.type")
    check_options(factory, spec.options, f"{where}.options", f"model '{canonical_name(spec.type)}'",
                  exclude=("in_dim", "n_items"), option_types=reg.MODELS.option_types(spec.type))
    check_option = getattr(factory, "check_option", None)  # a model's own data-free option checks
    if callable(check_option):
        for key, value in spec.options.items():
            try:
                check_option(key, value)
            except (TypeError, ValueError) as exc:
                raise SpecError(f"{where}.options.{key}", str(exc)) from exc
    if getattr(factory, "builds_on_meta_device", False):
        # A lower bound (one input feature): the data's width is checked when the model is built.
        limits.check_model_size(factory, {"in_dim": 1, "n_items": 2, **spec.options}, f"{where}.options")
    return factory
