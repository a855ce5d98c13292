"""Models: the ready-made networks and their layers.

- :mod:`~paradime_core.models.networks`: ``fully_connected``, ``multi_head``,
  ``autoencoder`` and the non-parametric ``direct`` table.
- :mod:`~paradime_core.models.decoded`: ``decoded``, ``fully_connected`` with a decoder head.
- :mod:`~paradime_core.models.layers`: activations, fully connected stacks, precision,
  model parts, and the fixed front layers (input scale, PCA projection, input noise).

Importing this package registers the built-in models.
"""

from __future__ import annotations

from paradime_core.models.decoded import DecodedFullyConnected
from paradime_core.models.layers import (
    GaussianNoise,
    PCAProjection,
    Scale,
    activation_layer,
    apply_in_blocks,
    mlp_layers,
    named_parts,
    parameters_of,
    resolve_precision,
)
from paradime_core.models.networks import AutoEncoder, Direct, FullyConnected, MultiHead

__all__ = [
    "AutoEncoder", "DecodedFullyConnected", "Direct", "FullyConnected", "GaussianNoise", "MultiHead", "PCAProjection", "Scale",
    "activation_layer", "apply_in_blocks", "mlp_layers", "named_parts", "parameters_of",
    "resolve_precision",
]
