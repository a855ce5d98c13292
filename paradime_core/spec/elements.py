"""The elements of a spec: relations, transforms, derived data, losses, phases, model.

Keys are canonicalised, so the paper's spellings (``training phases``, ``derived data``,
``data func``, ``batch size``) load as printed. Options may be nested under ``options:`` or
written flat beside ``type:``; a one-element list may be written as a scalar; a phase's
``batch_size`` may sit beside its other fields. Parsing stores the canonical form:
registered type names (``kl div`` -> ``kl_div``) and option names (aliases a block declares
in ``option_aliases`` renamed).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from paradime_core.errors import SpecError
from paradime_core.spec import limits
from paradime_core.spec import registry as reg
from paradime_core.spec.registry import canonical_name, did_you_mean

LEVELS = ("global", "batch")
RESERVED_DATA_KEYS = ("main", "index")
KEY_ALIASES = {"field": "data", "data_func": "func", "phases": "training_phases"}
LR_SCHEDULES = ("constant", "linear", "cosine")  # a phase's ``lr_schedule`` option
AUTO_WEIGHTS = "auto"  # ``loss: {weights: auto}``: balanced weights (training.balancing)
BALANCING_SCHEMES = ("gradient", "magnitude")  # ``{auto: <scheme>}``; the first is what ``auto`` alone means
DEFAULT_FREEZE_AFTER = 1  # balanced weights are fixed after this many epochs unless ``freeze_after`` says otherwise
NEVER_FREEZE = "never"  # ``freeze_after: never``: the balanced weights follow the running averages to the end
EARLY_STOPPING_OPTIONS = {"validation_fraction": float, "patience": int, "min_delta": float}


# --------------------------------------------------------------------------- helpers
def _canonical_keys(raw: Any, path: str) -> dict[str, Any]:
    if not isinstance(raw, Mapping):
        raise SpecError(path, f"expected a mapping, got {type(raw).__name__} ({raw!r})")
    out: dict[str, Any] = {}
    for key, value in raw.items():
        if not isinstance(key, str):
            raise SpecError(path, f"keys must be strings, got {key!r}")
        name = canonical_name(key)
        name = KEY_ALIASES.get(name, name)
        if name in out:
            where = name if path == "spec" else f"{path}.{name}"  # top-level fields have bare paths
            raise SpecError(where, "given twice (under different spellings)")
        out[name] = value
    return out


def _canonical_options(raw: Any, path: str) -> dict[str, Any]:
    """Option names canonicalised (``n neighbors`` -> ``n_neighbors``); values untouched."""
    if raw is None:
        return {}
    return _canonical_keys(raw, path)


def _as_list(value: Any) -> list[Any]:
    """A list given as a list, a single element (scalar form), or null (empty)."""
    if value is None:
        return []
    if isinstance(value, (list, tuple)):
        return list(value)
    return [value]


def _require(raw: dict[str, Any], key: str, path: str) -> Any:
    if key not in raw or raw[key] is None:
        raise SpecError(f"{path}.{key}", "required field is missing")
    return raw[key]


def _string(value: Any, path: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise SpecError(path, f"expected a non-empty string, got {value!r}")
    return value


def _split_options(raw: dict[str, Any], structural: set[str], path: str) -> dict[str, Any]:
    """Merge ``options:`` with flat keys beside ``type:`` (both forms mean the same)."""
    options = _canonical_options(raw.get("options"), f"{path}.options")
    for key, value in raw.items():
        if key in structural or key == "options":
            continue
        if key in options:
            raise SpecError(f"{path}.{key}", "given both flat and under options")
        options[key] = value
    return options


def _check_unknown(raw: dict[str, Any], allowed: set[str], path: str) -> None:
    for key in raw:
        if key not in allowed:
            raise SpecError(f"{path}.{key}", f"unknown field (allowed: {', '.join(sorted(allowed))})"
                                             f"{did_you_mean(key, allowed)}")


def _typed(registry: reg.Registry[Any], kind: str, options: dict[str, Any], path: str) -> tuple[str, dict[str, Any]]:
    """The registered name of ``kind`` and ``options`` with declared aliases renamed.

    An unknown ``kind`` is kept as written (``validate`` reports it with the known names).
    """
    key = registry.resolve(kind)
    if key is None:
        return kind, options
    return key, reg.resolve_options(registry.get(key), options, f"{path}.options")


def _registered(registry: reg.Registry[Any], name: str) -> str:
    """The registered name of ``name``, or ``name`` as written when unknown."""
    return _typed(registry, name, {}, "")[0]


# --------------------------------------------------------------------------- elements
@dataclass
class TransformSpec:
    """One step of a relation's transform chain: ``{type: perplexity, options: {...}}``."""

    type: str
    options: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_dict(cls, raw: Any, path: str) -> TransformSpec:
        if isinstance(raw, str):
            raw = {"type": raw}
        raw = _canonical_keys(raw, path)
        kind = _string(_require(raw, "type", path), f"{path}.type")
        kind, options = _typed(reg.TRANSFORMS, kind, _split_options(raw, {"type"}, path), path)
        return cls(type=kind, options=options)

    def to_dict(self) -> dict[str, Any]:
        return {"type": _registered_name(reg.TRANSFORMS, self.type), "options": dict(self.options)}


@dataclass
class RelationSpec:
    """A named recipe for relations between items (global: whole dataset; batch: per batch)."""

    name: str
    level: str
    type: str
    data: str = "main"
    options: dict[str, Any] = field(default_factory=dict)
    transforms: list[TransformSpec] = field(default_factory=list)

    @classmethod
    def from_dict(cls, raw: Any, path: str) -> RelationSpec:
        raw = _canonical_keys(raw, path)
        name = _string(_require(raw, "name", path), f"{path}.name")
        level = _string(_require(raw, "level", path), f"{path}.level").strip().lower()
        if level not in LEVELS:
            raise SpecError(f"{path}.level", f"'{level}' is not one of {', '.join(LEVELS)}")
        kind = _string(_require(raw, "type", path), f"{path}.type")
        transforms_raw = _as_list(raw.get("transforms"))
        transforms = [
            TransformSpec.from_dict(t, f"{path}.transforms[{i}]") for i, t in enumerate(transforms_raw)
        ]
        options = _split_options(raw, {"name", "level", "type", "data", "transforms"}, path)
        kind, options = _typed(reg.RELATIONS, kind, options, path)
        data = raw.get("data")
        if data is None:  # a relation type may read another key by default (pairwise_eq: labels)
            data = getattr(reg.RELATIONS.get(kind) if kind in reg.RELATIONS else None, "default_data", "main")
        data = _string(data, f"{path}.data")
        return cls(name=name, level=level, type=kind, data=data, options=options, transforms=transforms)

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "level": self.level,
            "type": _registered_name(reg.RELATIONS, self.type),
            "data": self.data,
            "options": dict(self.options),
            "transforms": [t.to_dict() for t in self.transforms],
        }


@dataclass
class DerivedDataSpec:
    """A new dataset entry computed before training: ``func`` applied to ``keys``."""

    name: str
    func: str
    keys: list[tuple[str, str]] = field(default_factory=lambda: [("data", "main")])
    options: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_dict(cls, raw: Any, path: str) -> DerivedDataSpec:
        raw = _canonical_keys(raw, path)
        _check_unknown(raw, {"name", "func", "keys", "options"}, path)
        name = _string(_require(raw, "name", path), f"{path}.name")
        func = _string(_require(raw, "func", path), f"{path}.func")
        keys_raw = raw.get("keys")
        if keys_raw is None:
            keys_raw = [["data", "main"]]
        if isinstance(keys_raw, (list, tuple)) and len(keys_raw) == 2 and all(
            isinstance(k, str) for k in keys_raw
        ):
            keys_raw = [keys_raw]
        keys: list[tuple[str, str]] = []
        for i, pair in enumerate(_as_list(keys_raw)):
            where = f"{path}.keys[{i}]"
            if not isinstance(pair, (list, tuple)) or len(pair) != 2:
                raise SpecError(where, f"expected a pair [data|rels, key], got {pair!r}")
            kind = canonical_name(str(pair[0]))
            kind = {"rel": "rels", "relations": "rels"}.get(kind, kind)
            if kind not in ("data", "rels"):
                raise SpecError(where, f"'{pair[0]}' is not one of data, rels")
            keys.append((kind, _string(pair[1], f"{where}[1]")))
        options = _canonical_options(raw.get("options"), f"{path}.options")
        func, options = _typed(reg.DATA_FUNCTIONS, func, options, path)
        return cls(name=name, func=func, keys=keys, options=options)

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "func": _registered_name(reg.DATA_FUNCTIONS, self.func),
            "keys": [list(k) for k in self.keys],
            "options": dict(self.options),
        }


@dataclass
class LossSpec:
    """A named loss: a registered loss ``type`` comparing what ``keys`` names with ``func``."""

    name: str
    type: str
    func: str | None = None
    data: list[str] = field(default_factory=list)
    rels: list[str] = field(default_factory=list)
    methods: list[str] = field(default_factory=list)
    options: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_dict(cls, raw: Any, path: str) -> LossSpec:
        raw = _canonical_keys(raw, path)
        name = _string(_require(raw, "name", path), f"{path}.name")
        kind = _string(_require(raw, "type", path), f"{path}.type")
        func = raw.get("func")
        if func is not None:
            func = _registered(reg.LOSS_FUNCTIONS, _string(func, f"{path}.func"))
        keys_raw = raw.get("keys")
        keys = _canonical_keys({} if keys_raw is None else keys_raw, f"{path}.keys")
        for key in keys:
            if key not in ("data", "rels", "methods"):
                raise SpecError(f"{path}.keys.{key}", "unknown key kind (allowed: data, rels, methods)")
        lists = {}
        for kind_name in ("data", "rels", "methods"):
            values = _as_list(keys.get(kind_name))
            for i, value in enumerate(values):
                _string(value, f"{path}.keys.{kind_name}[{i}]")
            lists[kind_name] = values
        options = _split_options(raw, {"name", "type", "func", "keys"}, path)
        kind, options = _typed(reg.LOSS_TYPES, kind, options, path)
        # a loss type may declare other names of dataset keys (the triplet loss: ParaDime 1.x's 'data')
        key_aliases = getattr(reg.LOSS_TYPES.get(kind) if kind in reg.LOSS_TYPES else None, "data_key_aliases", {})
        lists["data"] = [key_aliases.get(key, key) for key in lists["data"]]
        return cls(name=name, type=kind, func=func, options=options, **lists)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"name": self.name, "type": _registered_name(reg.LOSS_TYPES, self.type)}
        if self.func is not None:
            out["func"] = _registered_name(reg.LOSS_FUNCTIONS, self.func)
        out["keys"] = {"data": list(self.data), "rels": list(self.rels), "methods": list(self.methods)}
        out["options"] = dict(self.options)
        return out


@dataclass
class SamplingSpec:
    """How a phase draws batches: ``{type: item|edge|triplet, options: {...}}``."""

    type: str = "item"
    options: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_dict(cls, raw: Any, path: str) -> SamplingSpec:
        if isinstance(raw, str):
            raw = {"type": raw}
        raw = _canonical_keys(raw, path)
        kind = _string(raw.get("type", "item"), f"{path}.type")
        kind, options = _typed(reg.SAMPLERS, kind, _split_options(raw, {"type"}, path), path)
        return cls(type=kind, options=options)

    def to_dict(self) -> dict[str, Any]:
        return {"type": _registered_name(reg.SAMPLERS, self.type), "options": dict(self.options)}


@dataclass
class OptimizerSpec:
    """A torch optimizer by registered name with its options (``lr``, ``weight_decay``...)."""

    type: str = "adam"
    options: dict[str, Any] = field(default_factory=lambda: {"lr": 0.01})

    @classmethod
    def from_dict(cls, raw: Any, path: str) -> OptimizerSpec:
        if isinstance(raw, str):
            raw = {"type": raw}
        raw = _canonical_keys(raw, path)
        kind = _string(raw.get("type", "adam"), f"{path}.type")
        options = _split_options(raw, {"type"}, path)
        if "learning_rate" in options:
            if "lr" in options:
                raise SpecError(f"{path}.learning_rate", "given twice (as 'lr' and 'learning_rate')")
            options["lr"] = options.pop("learning_rate")
        kind, options = _typed(reg.OPTIMIZERS, kind, options, path)
        options.setdefault("lr", 0.01)
        return cls(type=kind, options=options)

    def to_dict(self) -> dict[str, Any]:
        return {"type": _registered_name(reg.OPTIMIZERS, self.type), "options": dict(self.options)}


@dataclass
class PhaseSpec:
    """One training phase: epochs of batches from a sampler minimising a weighted loss sum."""

    components: list[str]
    # a weight per component, "auto", {"auto": "gradient" | "magnitude", "freeze_after": k | "never"}, or None (all 1)
    weights: list[float] | str | dict[str, Any] | None = None
    name: str | None = None
    epochs: int | None = None  # None: chosen from the data at training (training.default_epochs)
    sampling: SamplingSpec = field(default_factory=SamplingSpec)
    optimizer: OptimizerSpec = field(default_factory=OptimizerSpec)
    params: list[str] | None = None  # names of model sub-modules trained here (None: all)
    options: dict[str, Any] = field(default_factory=dict)  # one of PHASE_OPTIONS each

    PHASE_OPTIONS = ("lr_schedule", "ema", "report_interval", "early_stopping")

    @classmethod
    def from_dict(cls, raw: Any, path: str) -> PhaseSpec:
        raw = _canonical_keys(raw, path)
        allowed = {"name", "epochs", "sampling", "optimizer", "loss", "params", "options", "batch_size",
                   "report_interval"}
        _check_unknown(raw, allowed, path)
        name = raw.get("name")
        if name is not None:
            name = _string(name, f"{path}.name")
        epochs = raw.get("epochs")
        if epochs is not None and (isinstance(epochs, bool) or not isinstance(epochs, int) or epochs < 1):
            raise SpecError(f"{path}.epochs", f"expected a positive integer, got {epochs!r}")
        if epochs is not None:
            limits.check_epochs(epochs, f"{path}.epochs")
        loss = _canonical_keys(_require(raw, "loss", path), f"{path}.loss")
        _check_unknown(loss, {"components", "weights"}, f"{path}.loss")
        components = _as_list(_require(loss, "components", f"{path}.loss"))
        if not components:
            raise SpecError(f"{path}.loss.components", "at least one loss component is required")
        for i, comp in enumerate(components):
            _string(comp, f"{path}.loss.components[{i}]")
        weights = loss.get("weights")
        if isinstance(weights, (str, Mapping)):
            weights = _balanced_weights(weights, f"{path}.loss.weights")
        elif weights is not None:
            weights = _as_list(weights)
            for i, w in enumerate(weights):
                if isinstance(w, bool) or not isinstance(w, (int, float)) or not math.isfinite(w):
                    raise SpecError(f"{path}.loss.weights[{i}]", f"expected a finite number, got {w!r}")
            if len(weights) != len(components):
                raise SpecError(
                    f"{path}.loss.weights",
                    f"{len(weights)} weights for {len(components)} components (must match)",
                )
            weights = [float(w) for w in weights]
        params = raw.get("params")
        if params is not None:
            params = _as_list(params)
            if not params:
                raise SpecError(f"{path}.params", "names no model part (omit it to train the whole model)")
            for i, p in enumerate(params):
                _string(p, f"{path}.params[{i}]")
        options = _canonical_options(raw.get("options"), f"{path}.options")
        sampling_raw = raw.get("sampling")
        sampling = SamplingSpec.from_dict({} if sampling_raw is None else sampling_raw, f"{path}.sampling")
        # ParaDime 1.x read report_interval beside the phase's fields or among the sampling options
        for source, where in ((raw, path), (sampling.options, f"{path}.sampling.options")):
            if source.get("report_interval") is not None:
                if "report_interval" in options:
                    raise SpecError(f"{where}.report_interval", "given twice")
                options["report_interval"] = source.pop("report_interval")
        for key, value in options.items():
            if key not in cls.PHASE_OPTIONS:
                raise SpecError(
                    f"{path}.options.{key}", f"unknown phase option (allowed: {', '.join(cls.PHASE_OPTIONS)})"
                    f"{did_you_mean(key, cls.PHASE_OPTIONS)}"
                )
            options[key] = _check_phase_option(key, value, f"{path}.options.{key}")
        if raw.get("batch_size") is not None:  # the batch size written beside the phase's fields
            if "batch_size" in sampling.options:
                raise SpecError(f"{path}.batch_size", "given both here and under sampling")
            sampling.options["batch_size"] = raw["batch_size"]
        optimizer_raw = raw.get("optimizer")
        return cls(
            components=components,
            weights=weights,
            name=name,
            epochs=epochs,
            sampling=sampling,
            optimizer=OptimizerSpec.from_dict({} if optimizer_raw is None else optimizer_raw, f"{path}.optimizer"),
            params=params,
            options=options,
        )

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        if self.name is not None:
            out["name"] = self.name
        if self.epochs is not None:
            out["epochs"] = self.epochs
        out["sampling"] = self.sampling.to_dict()
        out["loss"] = {"components": list(self.components)}
        if self.weights is not None:
            weights = self.weights
            out["loss"]["weights"] = (weights if weights == AUTO_WEIGHTS else dict(weights) if isinstance(weights, Mapping)
                                      else list(weights))
        out["optimizer"] = self.optimizer.to_dict()
        if self.params is not None:
            out["params"] = list(self.params)
        if self.options:
            out["options"] = dict(self.options)
        return out


def _balanced_weights(value: str | Mapping[str, Any], path: str) -> str | dict[str, Any]:
    """``auto``, or ``{auto: true | gradient | magnitude, freeze_after: k | never}`` (k a
    positive integer, default 1) in canonical form: ``auto`` for the default scheme frozen after
    the default number of epochs, else ``{auto: <scheme>, freeze_after: k | never}``."""
    expected = (f"expected a list of numbers, '{AUTO_WEIGHTS}' or {{auto: true | {' | '.join(BALANCING_SCHEMES)}, "
                f"freeze_after: <epochs> | {NEVER_FREEZE}}}")
    if isinstance(value, str):
        if canonical_name(value) != AUTO_WEIGHTS:
            raise SpecError(path, f"{expected}, got {value!r}")
        return AUTO_WEIGHTS
    options = _canonical_keys(value, path)
    _check_unknown(options, {AUTO_WEIGHTS, "freeze_after"}, path)
    scheme = options.get(AUTO_WEIGHTS)
    scheme = BALANCING_SCHEMES[0] if scheme is True else canonical_name(scheme) if isinstance(scheme, str) else None
    if scheme not in BALANCING_SCHEMES:
        raise SpecError(f"{path}.{AUTO_WEIGHTS}",
                        f"must be true or one of {', '.join(BALANCING_SCHEMES)} (balanced weights), got "
                        f"{options.get(AUTO_WEIGHTS)!r}")
    freeze_after = options.get("freeze_after", DEFAULT_FREEZE_AFTER)
    if isinstance(freeze_after, str) and canonical_name(freeze_after) == NEVER_FREEZE:
        freeze_after = NEVER_FREEZE
    elif isinstance(freeze_after, bool) or not isinstance(freeze_after, int) or freeze_after < 1:
        raise SpecError(f"{path}.freeze_after",
                        f"expected a positive integer (epochs) or '{NEVER_FREEZE}', got {freeze_after!r}")
    if scheme == BALANCING_SCHEMES[0] and freeze_after == DEFAULT_FREEZE_AFTER:
        return AUTO_WEIGHTS
    return {AUTO_WEIGHTS: scheme, "freeze_after": freeze_after}


def _check_phase_option(key: str, value: Any, path: str) -> Any:
    """Types and ranges of the phase options; the value in its canonical form."""
    if key == "lr_schedule":
        if _string(value, path) not in LR_SCHEDULES:
            raise SpecError(path, f"'{value}' is not one of {', '.join(LR_SCHEDULES)}")
    elif key == "report_interval":
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise SpecError(path, f"expected a positive integer (epochs between loss reports), got {value!r}")
    elif key == "ema":
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0.0 <= value < 1.0:
            raise SpecError(path, f"must be a decay in [0, 1) (e.g. 0.99), got {value!r}")
    elif key == "early_stopping":
        return _check_early_stopping(value, path)
    return value


def _check_early_stopping(value: Any, path: str) -> bool | dict[str, Any]:
    """``early_stopping``: true/false, or a mapping of EARLY_STOPPING_OPTIONS (returned canonical)."""
    if isinstance(value, bool):
        return value
    if not isinstance(value, Mapping):
        raise SpecError(path, "expected true, false or a mapping with "
                              f"{', '.join(EARLY_STOPPING_OPTIONS)}, got {value!r}")
    options = _canonical_keys(value, path)
    _check_unknown(options, set(EARLY_STOPPING_OPTIONS), path)
    for key, number in options.items():
        where = f"{path}.{key}"
        if isinstance(number, bool) or not isinstance(number, (int, float)) or not math.isfinite(number):
            raise SpecError(where, f"expected a number, got {number!r}")
        if key == "validation_fraction" and not 0.0 < number < 1.0:
            raise SpecError(where, f"must lie in (0, 1) (the share of items held out), got {number!r}")
        if key == "patience" and (not isinstance(number, int) or number < 1):
            raise SpecError(where, f"expected a positive integer (epochs without improvement), got {number!r}")
        if key == "min_delta" and number < 0:
            raise SpecError(where, f"must be >= 0 (the least improvement that counts), got {number!r}")
    return {k: EARLY_STOPPING_OPTIONS[k](v) for k, v in options.items()}


@dataclass
class ModelSpec:
    """Optional model section: a registered model type and its options."""

    type: str = "fully_connected"
    options: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_dict(cls, raw: Any, path: str) -> ModelSpec:
        if isinstance(raw, str):
            raw = {"type": raw}
        raw = _canonical_keys(raw, path)
        kind = _string(raw.get("type", "fully_connected"), f"{path}.type")
        kind, options = _typed(reg.MODELS, kind, _split_options(raw, {"type"}, path), path)
        return cls(type=kind, options=options)

    def to_dict(self) -> dict[str, Any]:
        return {"type": _registered_name(reg.MODELS, self.type), "options": dict(self.options)}


def _registered_name(registry: reg.Registry[Any], name: str) -> str:
    return registry.resolve(name) or canonical_name(name)
