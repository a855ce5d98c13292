"""Editing a spec (as a dict) at a path such as ``training_phases[0].loss.weights``: the
malformed-spec tests break a valid spec in one place this way."""

from __future__ import annotations

import copy
import re
from typing import Any

_STEP = re.compile(r"([^.\[\]]+)|\[(\d+)\]")
DELETE = object()
"""Pass as the value to delete the field instead."""


def steps(path: str) -> list[str | int]:
    """``a.b[0].c`` as ``['a', 'b', 0, 'c']``."""
    return [name if name else int(index) for name, index in _STEP.findall(path)]


def edited_copy(spec: dict[str, Any], path: str, value: Any) -> dict[str, Any]:
    """A deep copy of ``spec`` with the field at ``path`` set to ``value`` (or deleted)."""
    out = copy.deepcopy(spec)
    *parents, last = steps(path)
    parent: Any = out
    for step in parents:
        parent = parent[step]
    if value is DELETE:
        del parent[last]
    else:
        parent[last] = value
    return out
