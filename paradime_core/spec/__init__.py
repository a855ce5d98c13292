"""The grammar's words: the spec, its elements, the registries of building blocks.

- :mod:`~paradime_core.spec.registry`: one registry per kind of building block.
- :mod:`~paradime_core.spec.elements`: the spec's elements (relations, losses, phases, ...).
- :mod:`~paradime_core.spec.document`: the whole spec (:class:`Spec`, :func:`load_spec`).
- :mod:`~paradime_core.spec.option_types`: a block's options checked against its signature.
- :mod:`~paradime_core.spec.blocks`: the building blocks a spec names, built and checked.
- :mod:`~paradime_core.spec.validation`: a whole spec validated (names, references, blocks).

Importing this package loads no torch; building blocks does.
"""

from __future__ import annotations

from paradime_core.spec.document import Spec, load_spec
from paradime_core.spec.elements import (
    LEVELS,
    RESERVED_DATA_KEYS,
    DerivedDataSpec,
    LossSpec,
    ModelSpec,
    OptimizerSpec,
    PhaseSpec,
    RelationSpec,
    SamplingSpec,
    TransformSpec,
)

__all__ = [
    "LEVELS", "RESERVED_DATA_KEYS", "DerivedDataSpec", "LossSpec", "ModelSpec", "OptimizerSpec",
    "PhaseSpec", "RelationSpec", "SamplingSpec", "Spec", "TransformSpec", "load_spec",
]
