"""Optimizers by name: every ``torch.optim`` optimizer, registered in lower case.

Their options are checked against torch's own annotations, with :data:`OPTION_TYPES`
replacing those of the options named there (torch's ``lr`` also takes a tensor, and none of
its annotations says that a learning rate is positive).

:func:`with_fast_defaults` adds ``fused=True`` to Adam and AdamW when the spec sets neither
``fused`` nor ``foreach``: the same update rule as one multi-tensor kernel (the plain loop
and ``foreach`` differ from it only by float rounding).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Annotated, Any

import torch
from annotated_types import Gt

from paradime_core.spec.registry import OPTIMIZERS

OPTION_TYPES: dict[str, Any] = {"lr": Annotated[float, Gt(0)]}
"""Option types of every optimizer that replace torch's annotations."""

for _name in ("Adam", "AdamW", "SGD", "RMSprop", "Adagrad", "Adadelta", "Adamax", "NAdam", "RAdam", "LBFGS"):
    _cls = getattr(torch.optim, _name, None)
    if _cls is not None:
        OPTIMIZERS.register(_name.lower(), option_types=OPTION_TYPES)(_cls)

FUSED_OPTIMIZERS = (torch.optim.Adam, torch.optim.AdamW)
FUSED_DEVICES = ("cpu", "cuda")


def with_fast_defaults(cls: type, options: Mapping[str, Any], params: Sequence[torch.Tensor]) -> dict[str, Any]:
    """``options`` plus ``fused=True`` for Adam/AdamW on floating CPU/CUDA parameters of one
    device, unless the spec chose ``fused`` or ``foreach`` itself."""
    out = dict(options)
    if cls not in FUSED_OPTIMIZERS or "fused" in out or "foreach" in out or not params:
        return out
    devices = {p.device for p in params}
    if len(devices) == 1 and next(iter(devices)).type in FUSED_DEVICES and all(p.is_floating_point() for p in params):
        out["fused"] = True
    return out
