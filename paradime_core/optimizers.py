"""Optimizers by name: every ``torch.optim`` optimizer, registered in lower case."""

from __future__ import annotations

import torch

from paradime_core.registry import OPTIMIZERS

for _name in ("Adam", "AdamW", "SGD", "RMSprop", "Adagrad", "Adadelta", "Adamax", "NAdam", "RAdam", "LBFGS"):
    _cls = getattr(torch.optim, _name, None)
    if _cls is not None:
        OPTIMIZERS.register(_name.lower())(_cls)
