"""A decoder beside the embedding: the spec of a fit with ``decoder=True``.

:func:`with_decoder` turns a spec whose model is ``fully_connected`` into one with the
``decoded`` model (:mod:`paradime_core.models.decoded`: the same network plus a decoder
part) and a reconstruction loss ``mean_i ||x_i - reconstruct(x_i)||^2 / (d * v)`` in its
last training phase, ``v`` the mean per-feature variance of the training data, so the loss
starts near 1 whatever the data's units (times ``weight``, default 1). ``reconstruct``
stops the gradient at the embedding: the embedding's objective is unchanged.
"""

from __future__ import annotations

import numpy as np

from paradime_core.errors import SpecError
from paradime_core.spec import Spec

RECONSTRUCTION_LOSS = "reconstruction"


def with_decoder(spec: Spec, X: np.ndarray, weight: float = 1.0) -> Spec:
    """``spec`` with the decoded model and the reconstruction loss in its last phase."""
    raw = spec.to_dict()
    model = raw.get("model") or {"type": "fully_connected", "options": {}}
    if model["type"] not in ("fully_connected", "decoded"):
        raise SpecError("model.type", f"a decoder needs the fully_connected model, got {model['type']!r}")
    variance = float(np.mean(np.var(np.asarray(X, dtype=np.float64), axis=0)))
    scale = 1.0 / variance if variance > 0 else 1.0
    raw["model"] = {"type": "decoded", "options": dict(model.get("options", {}))}
    raw["losses"] = [*raw["losses"], {"name": RECONSTRUCTION_LOSS, "type": "reconstruction", "func": "mse",
                                      "keys": {"data": ["main"], "methods": ["reconstruct"]}}]
    phase = raw["training_phases"][-1]
    components = list(phase["loss"]["components"])
    weights = list(phase["loss"].get("weights") or [1.0] * len(components))
    phase["loss"] = {**phase["loss"], "components": [*components, RECONSTRUCTION_LOSS],
                     "weights": [*weights, float(weight) * scale]}
    return Spec.from_dict(raw)
