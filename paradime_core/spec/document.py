"""The whole spec: derived data, relations, losses, training phases and a model.

A spec loads from YAML, JSON, a dict, or is built object by object; all four are
equivalent (``Spec.from_dict(spec.to_dict()) == spec``). Element objects passed to
:class:`Spec` (or dicts in their place) are parsed as :mod:`paradime_core.spec.elements`
parses loaded ones.

Validation runs before any computation: every building block is looked up in its
registry and instantiated with its options (constructors only store and check their
parameters), every reference (relation, loss, data key) is resolved, and each problem is
reported as a :class:`~paradime_core.errors.SpecError` naming its location.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from paradime_core.errors import SpecError
from paradime_core.spec import limits
from paradime_core.spec.elements import (
    RESERVED_DATA_KEYS,
    DerivedDataSpec,
    LossSpec,
    ModelSpec,
    PhaseSpec,
    RelationSpec,
    _as_list,
    _canonical_keys,
)
from paradime_core.spec.registry import did_you_mean

_ELEMENTS: tuple[tuple[str, Any], ...] = (
    ("derived_data", DerivedDataSpec),
    ("relations", RelationSpec),
    ("losses", LossSpec),
    ("training_phases", PhaseSpec),
)
_REQUIRED = ("losses", "training_phases")


def _coerce(element_cls: Any, item: Any, path: str) -> Any:
    """``item`` (a dict, a string where allowed, or an ``element_cls`` object) parsed and checked."""
    if isinstance(item, element_cls):
        try:
            item = item.to_dict()
        except (TypeError, ValueError, AttributeError) as exc:
            raise SpecError(path, f"malformed {element_cls.__name__}: {exc}") from None
    return element_cls.from_dict(item, path)


# --------------------------------------------------------------------------- the spec
@dataclass
class Spec:
    """A whole routine: derived data, relations, losses, training phases (and a model)."""

    losses: list[LossSpec]
    training_phases: list[PhaseSpec]
    relations: list[RelationSpec] = field(default_factory=list)
    derived_data: list[DerivedDataSpec] = field(default_factory=list)
    model: ModelSpec | None = None
    name: str | None = None
    description: str | None = None

    def __post_init__(self) -> None:
        self._normalise()
        self.validate()

    def _normalise(self) -> None:
        """Parse every element (dicts and dataclass objects alike) into its canonical form.

        Specs built object by object go through the same checks as loaded ones, so both
        report the same errors; a list field may also be a single element or a dict.
        """
        for key, element_cls in _ELEMENTS:
            value = getattr(self, key)
            required = key in _REQUIRED
            if value is None and required:
                raise SpecError(key, "required field is missing")
            items = _as_list(value)
            if required and not items:
                raise SpecError(key, "must not be empty")
            setattr(self, key, [_coerce(element_cls, item, f"{key}[{i}]") for i, item in enumerate(items)])
        if self.model is not None:
            self.model = _coerce(ModelSpec, self.model, "model")
        for key in ("name", "description"):
            value = getattr(self, key)
            if value is not None and not isinstance(value, str):
                raise SpecError(key, f"expected a string, got {value!r}")

    # ------------------------------------------------------------------ loading
    @classmethod
    def from_dict(cls, raw: Any) -> Spec:
        if isinstance(raw, Spec):
            return raw
        raw = _canonical_keys(raw, "spec")
        allowed = {"relations", "losses", "training_phases", "derived_data", "model", "name", "description"}
        for key in raw:
            if key not in allowed:
                raise SpecError(key, f"unknown top-level field (allowed: {', '.join(sorted(allowed))})"
                                     f"{did_you_mean(key, allowed)}")
        return cls(
            derived_data=raw.get("derived_data"),
            relations=raw.get("relations"),
            losses=raw.get("losses"),
            training_phases=raw.get("training_phases"),
            model=raw.get("model"),
            name=raw.get("name"),
            description=raw.get("description"),
        )

    @classmethod
    def from_yaml(cls, text_or_path: str | Path) -> Spec:
        """From YAML text or a path to a ``.yaml``/``.yml``/``.json`` file."""
        raw = limits.load_yaml(_read_if_path(text_or_path))
        if raw is None:
            raise SpecError("spec", "the spec is empty (expected a mapping with losses and training_phases)")
        return cls.from_dict(raw)

    @classmethod
    def from_json(cls, text_or_path: str | Path) -> Spec:
        text = _read_if_path(text_or_path)
        limits.check_spec_size(len(text.encode("utf-8", errors="replace")))
        try:
            raw = json.loads(text)
        except json.JSONDecodeError as exc:
            raise SpecError("spec", f"invalid JSON: {exc}") from exc
        except RecursionError:
            raise SpecError("spec", "invalid JSON: nested too deeply") from None
        limits.check_expanded_size(raw)
        return cls.from_dict(raw)

    def to_dict(self) -> dict[str, Any]:
        """Canonical form: underscored keys, options nested, registered type names."""
        out: dict[str, Any] = {}
        if self.name is not None:
            out["name"] = self.name
        if self.description is not None:
            out["description"] = self.description
        if self.model is not None:
            out["model"] = self.model.to_dict()
        out["derived_data"] = [d.to_dict() for d in self.derived_data]
        out["relations"] = [r.to_dict() for r in self.relations]
        out["losses"] = [loss.to_dict() for loss in self.losses]
        out["training_phases"] = [p.to_dict() for p in self.training_phases]
        return copy.deepcopy(out)

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.to_dict(), sort_keys=False)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Spec) and self.to_dict() == other.to_dict()

    # ------------------------------------------------------------------ lookup
    def relation(self, name: str) -> RelationSpec:
        return next(r for r in self.relations if r.name == name)

    def loss(self, name: str) -> LossSpec:
        return next(loss for loss in self.losses if loss.name == name)

    def data_keys(self) -> set[str]:
        """Dataset keys the spec reads (beyond derived data); ``main`` is always read."""
        derived = {d.name for d in self.derived_data}
        keys = {"main"}
        for r in self.relations:
            if r.level == "global":
                keys.add(r.data)
        for d in self.derived_data:
            keys.update(k for kind, k in d.keys if kind == "data")
        for loss in self.losses:
            keys.update(loss.data)
        return keys - derived

    # ------------------------------------------------------------------ validation
    def validate(self) -> None:
        """Resolve every name and build every block; raise SpecError at the first problem."""
        from paradime_core.spec import blocks  # builds blocks: imports torch

        def unique(items: list[Any], key: str) -> dict[str, int]:
            seen: dict[str, int] = {}
            for i, item in enumerate(items):
                if item.name in seen:
                    raise SpecError(f"{key}[{i}].name", f"duplicate name '{item.name}' (also {key}[{seen[item.name]}])")
                seen[item.name] = i
            return seen

        relation_index = unique(self.relations, "relations")
        loss_index = unique(self.losses, "losses")
        derived_index = unique(self.derived_data, "derived_data")
        global_rels = [r.name for r in self.relations if r.level == "global"]
        for i, d in enumerate(self.derived_data):
            if d.name in RESERVED_DATA_KEYS:
                raise SpecError(f"derived_data[{i}].name", f"'{d.name}' is a reserved dataset key "
                                                           f"({', '.join(RESERVED_DATA_KEYS)})")

        for i, d in enumerate(self.derived_data):
            where = f"derived_data[{i}]"
            blocks.build_data_function(d, where)
            for j, (kind, key) in enumerate(d.keys):
                if kind == "rels" and key not in global_rels:
                    raise SpecError(f"{where}.keys[{j}]", _unknown("global relation", key, global_rels))
                if kind == "data" and key in derived_index and derived_index[key] >= i:
                    raise SpecError(f"{where}.keys[{j}]", f"derived data '{key}' is defined later (order matters)")

        self._check_cycles()
        for i, r in enumerate(self.relations):
            blocks.build_relation(r, f"relations[{i}]")

        for i, loss in enumerate(self.losses):
            where = f"losses[{i}]"
            for j, name in enumerate(loss.rels):
                if name not in relation_index:
                    raise SpecError(f"{where}.keys.rels[{j}]", _unknown("relation", name, list(relation_index)))
            blocks.build_loss(loss, self, where)

        for i, phase in enumerate(self.training_phases):
            where = f"training_phases[{i}]"
            for j, comp in enumerate(phase.components):
                if comp not in loss_index:
                    raise SpecError(f"{where}.loss.components[{j}]", _unknown("loss", comp, list(loss_index)))
            blocks.build_sampler(phase.sampling, self, f"{where}.sampling")
            blocks.check_optimizer(phase.optimizer, f"{where}.optimizer")
        if self.model is not None:
            blocks.check_model(self.model, "model")


    def _check_cycles(self) -> None:
        """Derived data may read global relations that read derived data: no cycles allowed."""
        derived = {d.name: d for d in self.derived_data}
        relation_data = {r.name: r.data for r in self.relations if r.level == "global"}

        def inputs(node: tuple[str, str]) -> list[tuple[str, str]]:
            kind, name = node
            if kind == "rels":
                data = relation_data.get(name)
                return [("data", data)] if data in derived else []
            return [(k, key) for k, key in derived[name].keys if k == "rels" or key in derived]

        state: dict[tuple[str, str], int] = {}  # 1: on the current path, 2: done

        def visit(node: tuple[str, str], path: list[tuple[str, str]]) -> None:
            state[node] = 1
            path = path + [node]
            for nxt in inputs(node):
                if state.get(nxt) == 1:
                    cycle = path[path.index(nxt):] + [nxt]
                    first = next(name for kind, name in cycle if kind == "data")
                    raise SpecError(f"derived_data[{list(derived).index(first)}].keys", "dependency cycle: " + " -> ".join(
                        f"{'relation' if kind == 'rels' else 'derived data'} '{name}'" for kind, name in cycle))
                if nxt not in state:
                    visit(nxt, path)
            state[node] = 2

        for name in derived:
            if state.get(("data", name)) is None:
                visit(("data", name), [])


def _unknown(kind: str, name: str, defined: list[str]) -> str:
    return f"unknown {kind} '{name}' (defined: {', '.join(defined) or 'none'})"


def _read_if_path(text_or_path: str | Path) -> str:
    if isinstance(text_or_path, Path) or (
        isinstance(text_or_path, str) and "\n" not in text_or_path and text_or_path.endswith((".yaml", ".yml", ".json"))
    ):
        return limits.read_spec_file(text_or_path)
    return str(text_or_path)


def load_spec(source: str | Path | Mapping[str, Any] | Spec) -> Spec:
    """A spec from a Spec, a dict, a YAML/JSON file path, or YAML/JSON text."""
    if isinstance(source, Spec):
        return source
    if isinstance(source, Mapping):
        return Spec.from_dict(source)
    if isinstance(source, Path) or str(source).endswith(".json"):
        if str(source).endswith(".json"):
            return Spec.from_json(source)
    return Spec.from_yaml(source)
