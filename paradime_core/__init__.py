"""paradime_core: the ParaDime grammar and its math (no orchestration).

Public API::

    from paradime_core import ParametricTSNE, ParametricUMAP, ParametricMDS, Routine, load_spec
"""

from paradime_core.components import _load_builtins
from paradime_core.errors import DataError, ParadimeError, SpecError, TrainingError
from paradime_core.registry import (
    DATA_FUNCTIONS,
    LOSS_FUNCTIONS,
    LOSS_TYPES,
    MODELS,
    OPTIMIZERS,
    RELATIONS,
    SAMPLERS,
    TRANSFORMS,
    register_data_function,
    register_loss_function,
    register_loss_type,
    register_model,
    register_optimizer,
    register_relation,
    register_sampler,
    register_transform,
)
from paradime_core.spec import Spec, load_spec

_load_builtins()

from paradime_core.recipes import (  # noqa: E402
    ParametricIsomap,
    ParametricLargeVis,
    ParametricMDS,
    ParametricTSNE,
    ParametricUMAP,
)
from paradime_core.routine import Routine  # noqa: E402

__version__ = "0.1.0"

__all__ = [
    "DATA_FUNCTIONS", "LOSS_FUNCTIONS", "LOSS_TYPES", "MODELS", "OPTIMIZERS", "RELATIONS", "SAMPLERS",
    "TRANSFORMS", "DataError", "ParadimeError", "ParametricIsomap", "ParametricLargeVis", "ParametricMDS",
    "ParametricTSNE", "ParametricUMAP", "Routine", "Spec", "SpecError", "TrainingError", "load_spec",
    "register_data_function", "register_loss_function", "register_loss_type", "register_model",
    "register_optimizer", "register_relation", "register_sampler", "register_transform", "__version__",
]
