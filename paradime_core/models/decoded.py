"""A fully connected embedding network with a decoder head, for ``inverse_transform``.

:class:`DecodedFullyConnected` (registered as ``decoded``) is
:class:`~paradime_core.models.networks.FullyConnected` plus a part ``decoder``: an MLP from
the embedding back to the data, ``out_dim -> decoder_hidden_dims -> in_dim`` (default: the
encoder's hidden widths reversed), linear output in the data's units.

``reconstruct(x) = decode(stop_gradient(embed(x)))``: trained with a reconstruction loss on
``reconstruct``, the decoder learns to invert the embedding while the embedding is trained
by its own losses alone.
"""

from __future__ import annotations

import torch
from torch import nn

from paradime_core.models.layers import Dropout, Width, Widths, _dims, mlp_layers
from paradime_core.models.networks import FullyConnected, InputNoise, InputScale, PcaComponents
from paradime_core.spec.registry import register_model


@register_model("decoded", aliases=("fully_connected_decoder",))
class DecodedFullyConnected(FullyConnected):
    """:class:`~paradime_core.models.networks.FullyConnected` with a ``decoder`` part (see the module doc).

    Parts: ``trunk``, ``embedding_head``, ``decoder``. Methods: ``embed``, ``decode``,
    ``reconstruct``.
    """

    model_type = "decoded"

    def __init__(self, in_dim: int, out_dim: Width = 2, hidden_dims: Widths = (100, 50),
                 activation: str = "softplus", decoder_hidden_dims: Widths = None,
                 dropout: Dropout = 0.0, batch_norm: bool = False, input_scale: InputScale = None,
                 pca_components: PcaComponents = None, input_noise: InputNoise = 0.0,
                 precision: str = "float32", n_items: int | None = None):
        super().__init__(in_dim, out_dim, hidden_dims, activation, dropout=dropout, batch_norm=batch_norm,
                         input_scale=input_scale, pca_components=pca_components, input_noise=input_noise,
                         precision=precision, n_items=n_items)
        back = list(reversed(self.config["hidden_dims"])) if decoder_hidden_dims is None else \
            _dims(decoder_hidden_dims)
        width = back[-1] if back else self.config["out_dim"]
        self.decoder = nn.Sequential(*mlp_layers(self.config["out_dim"], back, activation, 0.0, False),
                                     nn.Linear(width, self.config["in_dim"]))
        self.config["decoder_hidden_dims"] = back

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        return self.decoder(z if z.is_floating_point() else z.float())

    def reconstruct(self, x: torch.Tensor) -> torch.Tensor:
        return self.decode(self.embed(x).detach())
