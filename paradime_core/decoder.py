"""A decoder head beside the embedding network, for ``inverse_transform``.

:class:`DecodedFullyConnected` is the fully connected embedding network
(:class:`~paradime_core.models.FullyConnected`) plus a part ``decoder``: an MLP from the
embedding back to the data, ``out_dim -> decoder_hidden_dims -> in_dim`` (default: the
encoder's hidden widths reversed), linear output in the data's units.

``reconstruct(x) = decode(stop_gradient(embed(x)))``: the decoder learns to invert the
embedding while the embedding is trained by its own losses alone, so adding the decoder
leaves the embedding's objective unchanged.

:func:`with_decoder` turns a spec whose model is ``fully_connected`` into one with this
model and a reconstruction loss ``mean_i ||x_i - reconstruct(x_i)||^2 / (d * v)`` in its
last training phase, ``v`` the mean per-feature variance of the training data, so the
loss starts near 1 whatever the data's units (weight ``weight``, default 1).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torch import nn

from paradime_core.errors import SpecError
from paradime_core.models import FullyConnected, _dims, mlp_layers
from paradime_core.registry import register_model
from paradime_core.spec import Spec

RECONSTRUCTION_LOSS = "reconstruction"


@register_model("decoded", aliases=("fully_connected_decoder",))
class DecodedFullyConnected(FullyConnected):
    """:class:`~paradime_core.models.FullyConnected` with a ``decoder`` part (see the module doc).

    Parts: ``trunk``, ``embedding_head``, ``decoder``. Methods: ``embed``, ``decode``,
    ``reconstruct``.
    """

    model_type = "decoded"

    def __init__(self, in_dim: int, out_dim: int = 2, hidden_dims: Sequence[int] = (100, 50),
                 activation: str = "softplus", decoder_hidden_dims: Sequence[int] | None = None,
                 **options: Any):
        super().__init__(in_dim, out_dim, hidden_dims, activation, **options)
        back = list(reversed(self.config["hidden_dims"])) if decoder_hidden_dims is None else \
            _dims(decoder_hidden_dims, "decoder_hidden_dims")
        width = back[-1] if back else self.config["out_dim"]
        self.decoder = nn.Sequential(*mlp_layers(self.config["out_dim"], back, activation, 0.0, False),
                                     nn.Linear(width, self.config["in_dim"]))
        self.config["decoder_hidden_dims"] = back

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        return self.decoder(z if z.is_floating_point() else z.float())

    def reconstruct(self, x: torch.Tensor) -> torch.Tensor:
        return self.decode(self.embed(x).detach())


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
