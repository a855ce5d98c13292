"""Caps on what a spec may ask for, in one place: spec size, YAML alias expansion, epochs,
model size.

A spec is user input that may come from anywhere (a file, a deployment parameter, a web
form). Each cap below turns a request that would exhaust memory or run for ever into one
:class:`~paradime_core.errors.SpecError` naming the field, before any work starts. Every cap
can be raised for one process with the environment variable named beside it.

================================  ===============  ===================================
cap                               default          environment variable
================================  ===============  ===================================
spec text (file or string)        1 MiB            ``PARADIME_MAX_SPEC_BYTES``
spec values after YAML aliases    100,000 nodes    ``PARADIME_MAX_SPEC_NODES``
epochs of one training phase      100,000          ``PARADIME_MAX_EPOCHS``
model parameters + buffers        1,000,000,000    ``PARADIME_MAX_MODEL_ELEMENTS``
================================  ===============  ===================================

The node count is the size of the spec as a tree once YAML aliases are expanded (a mapping,
a list and a scalar count one each), so a "billion laughs" document of a few hundred bytes is
refused although it parses into shared objects without using memory. The size of a built-in
model is counted on torch's ``meta`` device, which allocates nothing (a user's registered
model is called only to build it, so it checks its own options).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import yaml

from paradime_core.errors import SpecError

CAPS = {
    "spec_bytes": ("PARADIME_MAX_SPEC_BYTES", 1 << 20),
    "spec_nodes": ("PARADIME_MAX_SPEC_NODES", 100_000),
    "epochs": ("PARADIME_MAX_EPOCHS", 100_000),
    "model_elements": ("PARADIME_MAX_MODEL_ELEMENTS", 1_000_000_000),
}


def cap(name: str) -> int:
    """The current value of cap ``name`` (its environment variable, else the default).

    Parameters
    ----------
    name : str
        One of ``spec_bytes``, ``spec_nodes``, ``epochs``, ``model_elements``.
    """
    variable, default = CAPS[name]
    text = os.environ.get(variable)
    if text is None:
        return default
    try:
        value = int(text)
    except ValueError:
        raise SpecError(variable, f"expected a positive integer, got {text!r}") from None
    if value < 1:
        raise SpecError(variable, f"expected a positive integer, got {text!r}")
    return value


def read_spec_file(path: str | Path) -> str:
    """The text of a spec file, refused when larger than the ``spec_bytes`` cap.

    Parameters
    ----------
    path : str or Path
        The spec file.
    """
    path = Path(path)
    if not path.exists():
        raise SpecError("spec", f"file not found: {path}")
    if not path.is_file():
        raise SpecError("spec", f"{path} is not a file")
    size = path.stat().st_size
    check_spec_size(size, str(path))
    try:
        return path.read_text()
    except UnicodeDecodeError as exc:
        raise SpecError("spec", f"{path} is not UTF-8 text ({exc.reason} at byte {exc.start})") from None


def check_spec_size(size: int, what: str = "the spec text") -> None:
    """Refuse a spec of ``size`` bytes above the ``spec_bytes`` cap.

    Parameters
    ----------
    size : int
        Size in bytes.
    what : str
        The spec's name in the message (a path).
    """
    limit = cap("spec_bytes")
    if size > limit:
        raise SpecError("spec", f"{what} has {size:,} bytes, above the cap of {limit:,} "
                                f"(raise it with {CAPS['spec_bytes'][0]})")


def load_yaml(text: str) -> Any:
    """``yaml.safe_load`` of a spec's text within the ``spec_bytes`` and ``spec_nodes`` caps.

    Parameters
    ----------
    text : str
        YAML (or JSON) text.
    """
    check_spec_size(len(text.encode("utf-8", errors="replace")))
    try:
        raw = yaml.load(text, Loader=_SpecLoader)  # noqa: S506 - a SafeLoader subclass
    except yaml.YAMLError as exc:
        raise SpecError("spec", f"invalid YAML: {' '.join(str(exc).split())}") from None
    except RecursionError:
        raise SpecError("spec", "invalid YAML: nested too deeply") from None
    check_expanded_size(raw)
    return raw


class _SpecLoader(yaml.SafeLoader):
    """PyYAML's safe loader that refuses a key written twice in one mapping (plain YAML keeps
    the last silently); keys brought in by a merge (``<<: *base``) may be overridden."""


def _construct_mapping(loader: _SpecLoader, node: yaml.MappingNode, deep: bool = False) -> Any:
    seen: dict[Any, int] = {}
    for key_node, _ in node.value:
        if key_node.tag == "tag:yaml.org,2002:merge":
            continue
        key = loader.construct_object(key_node, deep=True)
        try:
            if key in seen:
                raise SpecError("spec", f"line {key_node.start_mark.line + 1}: key '{key}' is given twice "
                                        f"in one mapping (also line {seen[key]})")
            seen[key] = key_node.start_mark.line + 1
        except TypeError:  # an unhashable key: reported by the constructor below
            pass
    return loader.construct_mapping(node, deep=deep)


_SpecLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)


def check_expanded_size(raw: Any) -> None:
    """Refuse a parsed spec whose tree, with shared (aliased) values expanded, has more nodes
    than the ``spec_nodes`` cap. Each distinct object is visited once (sizes are memoised by
    identity), so the check is linear in the parsed document, not in its expansion.

    Parameters
    ----------
    raw : Any
        The parsed YAML/JSON value.
    """
    limit = cap("spec_nodes")
    sizes: dict[int, int] = {}
    on_path: set[int] = set()

    def size(value: Any) -> int:
        if not isinstance(value, (Mapping, list, tuple)):
            return 1
        ident = id(value)
        if ident in sizes:
            return sizes[ident]
        if ident in on_path:  # a recursive alias: infinite when expanded
            raise SpecError("spec", "a YAML alias refers to itself (the spec would be infinite)")
        on_path.add(ident)
        children = list(value.keys()) + list(value.values()) if isinstance(value, Mapping) else list(value)
        total = 1
        for child in children:
            total += size(child)
            if total > limit:
                break
        on_path.discard(ident)
        sizes[ident] = total
        return total

    try:
        total = size(raw)
    except RecursionError:
        raise SpecError("spec", "nested too deeply") from None
    if total > limit:
        raise SpecError("spec", f"more than {limit:,} values once YAML aliases are expanded "
                                f"(raise the cap with {CAPS['spec_nodes'][0]})")


def check_epochs(epochs: int, where: str) -> None:
    """Refuse a phase asking for more epochs than the ``epochs`` cap.

    Parameters
    ----------
    epochs : int
        The phase's epochs.
    where : str
        The field's location in the spec (``training_phases[0].epochs``).
    """
    limit = cap("epochs")
    if epochs > limit:
        raise SpecError(where, f"{epochs:,} epochs, above the cap of {limit:,} "
                               f"(raise it with {CAPS['epochs'][0]})")


def check_model_size(factory: Callable[..., Any], kwargs: Mapping[str, Any], where: str = "model.options") -> None:
    """Refuse a model whose parameters and buffers hold more elements than the
    ``model_elements`` cap, counted by building it on torch's ``meta`` device (no memory).

    A factory that cannot be built on the meta device or rejects its options is let through:
    building it for real reports the problem.

    Parameters
    ----------
    factory : callable
        The registered model factory.
    kwargs : Mapping
        Its keyword arguments (``in_dim``, ``n_items`` and the spec's options).
    where : str
        The location named in the error.
    """
    import torch

    try:
        with torch.device("meta"):
            model = factory(**kwargs)
        elements = sum(t.numel() for t in model.parameters()) + sum(t.numel() for t in model.buffers())
    except Exception:  # noqa: BLE001 - the real build reports option errors
        return
    limit = cap("model_elements")
    if elements > limit:
        raise SpecError(where, f"the model would hold {elements:,} parameters and buffers "
                               f"(~{_bytes(elements * 4)} as float32), above the cap of {limit:,} "
                               f"(raise it with {CAPS['model_elements'][0]})")


def _bytes(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB", "PiB"):
        if n < 1024 or unit == "PiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n} B"
