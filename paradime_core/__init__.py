"""paradime_core: the ParaDime grammar and its math (no orchestration).

Public API::

    from paradime_core import ParametricTSNE, ParametricUMAP, ParametricMDS, Routine, load_spec
    from paradime_core import plot, plot_loss_history   # figures of an embedding, of a loss history

The public names load on first use (PEP 562), so importing a light submodule such as
``paradime_core.errors`` or ``paradime_core.spec.registry`` does not load torch: a cached
pipeline run consults its store without the core's heavy imports. Each registry imports
the sub-package of its built-in blocks the first time it is consulted.

Sub-packages, one per word of the grammar: :mod:`~paradime_core.spec` (parsing, registries,
building blocks from a spec), :mod:`~paradime_core.relations` (relation types, transforms),
:mod:`~paradime_core.losses`, :mod:`~paradime_core.derived`, :mod:`~paradime_core.models`,
:mod:`~paradime_core.training`; modules :mod:`~paradime_core.sampling`,
:mod:`~paradime_core.routine`, :mod:`~paradime_core.recipes` (on the scikit-learn face of
:mod:`~paradime_core.estimator`, with :mod:`~paradime_core.supervision` and
:mod:`~paradime_core.decoder`), :mod:`~paradime_core.neighbors`,
:mod:`~paradime_core.metrics`, :mod:`~paradime_core.plotting`; the values passed between
them: :mod:`~paradime_core.relation_data`, :mod:`~paradime_core.batch`,
:mod:`~paradime_core.errors`.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

_EXPORTS: dict[str, str] = {
    **{name: "paradime_core.errors" for name in ("DataError", "ParadimeError", "SpecError", "TrainingError")},
    **{name: "paradime_core.spec.registry" for name in (
        "DATA_FUNCTIONS", "LOSS_FUNCTIONS", "LOSS_TYPES", "MODELS", "OPTIMIZERS", "RELATIONS", "SAMPLERS",
        "TRANSFORMS", "register_data_function", "register_loss_function", "register_loss_type",
        "register_model", "register_optimizer", "register_relation", "register_sampler",
        "register_transform")},
    "Spec": "paradime_core.spec",
    "load_spec": "paradime_core.spec",
    **{name: "paradime_core.recipes" for name in (
        "ParametricIsomap", "ParametricLargeVis", "ParametricMDS", "ParametricTSNE", "ParametricUMAP")},
    "Routine": "paradime_core.routine",
    **{name: "paradime_core.plotting" for name in ("plot", "plot_loss_history")},
}

__all__ = sorted([*_EXPORTS, "__version__"])


def __getattr__(name: str) -> Any:
    module_name = _EXPORTS.get(name)
    if module_name is None:
        raise AttributeError(f"module 'paradime_core' has no attribute {name!r}")
    value = getattr(importlib.import_module(module_name), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_EXPORTS})
