"""The whole spec: derived data, relations, losses, training phases and a model.

A spec loads from YAML, JSON, a dict, or is built object by object; all four are
equivalent (``Spec.from_dict(spec.to_dict()) == spec``). Element objects passed to
:class:`Spec` (or dicts in their place) are parsed as :mod:`paradime_core.spec.elements`
parses loaded ones.

This module parses; a new spec is then validated before any computation
(:mod:`paradime_core.spec.validation`): every reference resolved, every building block
built once, each problem one :class:`~paradime_core.errors.SpecError` naming its location.
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
        """Resolve every name and build every block; raise SpecError at the first problem
        (:func:`paradime_core.spec.validation.validate_spec`)."""
        from paradime_core.spec.validation import validate_spec  # builds blocks: imports torch

        validate_spec(self)


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
