"""Validation of a whole spec: every name resolved, every block built once, before any data.

Each problem is one :class:`~paradime_core.errors.SpecError` carrying its spec path
(``training_phases[1].sampling.options.rate``). The blocks are built by
:mod:`paradime_core.spec.blocks`, whose option checks, names and values, come from each
block's signature and annotations (:func:`~paradime_core.spec.option_types.check_options`);
what annotations cannot say (one option against another) the blocks check themselves.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from paradime_core.errors import SpecError
from paradime_core.spec import blocks
from paradime_core.spec.elements import RESERVED_DATA_KEYS

if TYPE_CHECKING:
    from paradime_core.spec.document import Spec


def validate_spec(spec: Spec) -> None:
    """Resolve every name and build every block of ``spec``; raise SpecError at the first problem."""

    def unique(items: list[Any], key: str) -> dict[str, int]:
        seen: dict[str, int] = {}
        for i, item in enumerate(items):
            if item.name in seen:
                raise SpecError(f"{key}[{i}].name", f"duplicate name '{item.name}' (also {key}[{seen[item.name]}])")
            seen[item.name] = i
        return seen

    relation_index = unique(spec.relations, "relations")
    loss_index = unique(spec.losses, "losses")
    derived_index = unique(spec.derived_data, "derived_data")
    global_rels = [r.name for r in spec.relations if r.level == "global"]
    for i, d in enumerate(spec.derived_data):
        if d.name in RESERVED_DATA_KEYS:
            raise SpecError(f"derived_data[{i}].name", f"'{d.name}' is a reserved dataset key "
                                                       f"({', '.join(RESERVED_DATA_KEYS)})")

    for i, d in enumerate(spec.derived_data):
        where = f"derived_data[{i}]"
        blocks.build_data_function(d, where)
        for j, (kind, key) in enumerate(d.keys):
            if kind == "rels" and key not in global_rels:
                raise SpecError(f"{where}.keys[{j}]", _unknown("global relation", key, global_rels))
            if kind == "data" and key in derived_index and derived_index[key] >= i:
                raise SpecError(f"{where}.keys[{j}]", f"derived data '{key}' is defined later (order matters)")

    _check_cycles(spec)
    for i, r in enumerate(spec.relations):
        blocks.build_relation(r, f"relations[{i}]")

    for i, loss in enumerate(spec.losses):
        where = f"losses[{i}]"
        for j, name in enumerate(loss.rels):
            if name not in relation_index:
                raise SpecError(f"{where}.keys.rels[{j}]", _unknown("relation", name, list(relation_index)))
        blocks.build_loss(loss, spec, where)

    for i, phase in enumerate(spec.training_phases):
        where = f"training_phases[{i}]"
        for j, comp in enumerate(phase.components):
            if comp not in loss_index:
                raise SpecError(f"{where}.loss.components[{j}]", _unknown("loss", comp, list(loss_index)))
        blocks.build_sampler(phase.sampling, spec, f"{where}.sampling")
        blocks.check_optimizer(phase.optimizer, f"{where}.optimizer")
    if spec.model is not None:
        blocks.check_model(spec.model, "model")


def _check_cycles(spec: Spec) -> None:
    """Derived data may read global relations that read derived data: no cycles allowed."""
    derived = {d.name: d for d in spec.derived_data}
    relation_data = {r.name: r.data for r in spec.relations if r.level == "global"}

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
