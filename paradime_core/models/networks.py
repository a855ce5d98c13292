"""Ready-made models: fully connected, multi-head, autoencoder and a non-parametric table.

Every model maps a batch of items to the embedding through named methods that losses refer
to: ``embed(x)`` (also ``forward``), and where relevant ``classify(x)`` (class logits),
``encode(x)`` / ``decode(z)``.

**Parts.** A model's *parts* are the names of its direct child modules (``trunk``,
``embedding_head``, ``classification_head``, ``encoder``, ``decoder``, ``coordinates``). A
training phase may train only some parts (paper Sec. 5.4); :func:`parameters_of` selects
their parameters.

**Rebuilding without pickle.** Each model carries ``model_type`` (its registered name) and
``config`` (a JSON-able dict of its constructor options), so
``MODELS.get(m.model_type)(**m.config)`` rebuilds the same architecture and
``load_state_dict`` restores the weights.

Factories follow the model protocol ``(in_dim=..., n_items=..., **options) -> nn.Module``;
options a model does not use (``n_items`` for networks, ``in_dim`` for :class:`Direct`) are
accepted and ignored.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

import numpy as np
import torch
from annotated_types import Ge, Gt
from torch import nn

from paradime_core.models.layers import (
    Dropout,
    GaussianNoise,
    PCAProjection,
    Scale,
    Width,
    Widths,
    _as_input,
    _dims,
    activation_layer,
    apply_in_blocks,
    mlp_layers,
    named_parts,
    resolve_precision,
    run_hidden_layers,
)
from paradime_core.spec.registry import register_model

InputScale = Annotated[float, Gt(0)] | None
PcaComponents = Annotated[int, Ge(1)] | None
InputNoise = Annotated[float, Ge(0)]


def _front_layers(in_dim: int, input_scale: InputScale, pca_components: PcaComponents,
                  input_noise: InputNoise = 0.0) -> tuple[list[nn.Module], int]:
    layers: list[nn.Module] = []
    if input_scale is not None:
        layers.append(Scale(input_scale))
    if pca_components is not None:
        # At most in_dim components: with k = in_dim the layer still centres, rotates and
        # scales the data to a first-component std of 1, so one spec fits data of any width.
        k = min(int(pca_components), in_dim)
        layers.append(PCAProjection(in_dim, k))
        in_dim = k
    if input_noise:
        layers.append(GaussianNoise(input_noise))
    return layers, in_dim


_DATA_FREE_CHECKS = {"activation": activation_layer, "output_activation": activation_layer,
                     "precision": resolve_precision}


class _Model(nn.Module):
    """Shared bits: ``model_type``, ``config``, ``forward = embed``, ``parts``."""

    model_type: str = ""
    config: dict[str, Any]
    #: Capability: the model can be built on torch's ``meta`` device, so its size is counted
    #: (and capped) before any memory is taken.
    builds_on_meta_device: bool = True

    @classmethod
    def check_option(cls, name: str, value: Any) -> None:
        """Check an option whose value needs no data (``activation``, ``output_activation``,
        ``precision``) when the spec is validated; the rest are checked when the model is built.

        Raises ``ValueError`` or ``TypeError`` for a bad value.
        """
        check = _DATA_FREE_CHECKS.get(name)
        if check is not None:
            check(value)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.embed(x)

    def embed(self, x: torch.Tensor) -> torch.Tensor:  # pragma: no cover - overridden
        raise NotImplementedError

    @property
    def parts(self) -> list[str]:
        return named_parts(self)

    def _pca_layer(self) -> PCAProjection:
        for module in self.modules():
            if isinstance(module, PCAProjection):
                return module
        raise RuntimeError("this model has no PCA front layer (build it with pca_components=k)")

    def set_pca(self, mean: Any, components: Any) -> None:
        """Load the frozen PCA front layer: ``mean`` (in_dim,), ``components`` (k, in_dim)."""
        self._pca_layer().set_pca(mean, components)

    def _input_of(self, layer: nn.Module, data: Any) -> np.ndarray:
        """``data`` (n, in_dim) as ``layer`` of the trunk sees it: through the layers before it."""
        x = np.asarray(data).reshape(len(data), -1)
        for module in self.modules():
            if isinstance(module, nn.Sequential) and any(m is layer for m in module):
                before = list(module)[: next(i for i, m in enumerate(module) if m is layer)]
                if not before:
                    return x
                prefix = nn.Sequential(*before).eval()
                return apply_in_blocks(prefix, torch.as_tensor(x)).double().numpy()
        return x

    def fit_pca(self, data: Any) -> None:
        """Compute and load the PCA front layer from ``data`` (n, in_dim) as that layer sees it:
        after the layers before it (``input_scale``), so its mean and axes match its input."""
        pca = self._pca_layer()
        pca.fit(self._input_of(pca, data))

    def fit_front(self, data: Any) -> None:
        """Fit the data-dependent front layers on the training items: the PCA projection (if
        not set), then the input-noise unit (if not calibrated)."""
        if self.needs_pca:
            self.fit_pca(data)
        for module in self.modules():
            if isinstance(module, GaussianNoise) and not bool(module.calibrated):
                module.calibrate(self._input_of(module, data))

    def front_state_keys(self) -> list[str]:
        """``state_dict`` keys of the data-dependent front layers (PCA projection, input-noise unit)."""
        return [f"{name}.{key}" if name else key for name, module in self.named_modules()
                if isinstance(module, (PCAProjection, GaussianNoise)) for key in module.state_dict()]

    @property
    def needs_pca(self) -> bool:
        """True when a PCA front layer exists and has not been set yet."""
        return any(isinstance(m, PCAProjection) and not bool(m.fitted) for m in self.modules())

    @property
    def needs_fit(self) -> bool:
        """True when a front layer still needs the training items (PCA, input-noise unit)."""
        return self.needs_pca or any(isinstance(m, GaussianNoise) and not bool(m.calibrated)
                                     for m in self.modules())


# ----------------------------------------------------------------------------- models
@register_model("fully_connected", aliases=("fc", "mlp", "default"))
class FullyConnected(_Model):
    """MLP ``in_dim -> hidden_dims... -> out_dim`` (``hidden_dims=[]``: a linear model).

    Parts: ``trunk`` (input scaling, optional PCA projection and the hidden layers) and
    ``embedding_head`` (the last Linear layer).

    ``input_scale``: constant factor applied to the input first. ``pca_components=k``: the
    first layer is a frozen projection ``(x - mean) @ V_k.T`` onto ``min(k, in_dim)``
    principal axes (scaled so the first has std 1), loaded with :meth:`set_pca` (or computed
    with :meth:`fit_pca`) before training. ``input_noise``: see :class:`GaussianNoise`.
    ``precision``: ``float32`` (default), ``bfloat16`` or ``auto`` for the hidden layers (see
    :func:`run_hidden_layers` and :func:`resolve_precision`; ``config`` keeps the resolved one).
    """

    model_type = "fully_connected"

    def __init__(
        self,
        in_dim: int,
        out_dim: Width = 2,
        hidden_dims: Widths = (100, 50),
        activation: str = "softplus",
        dropout: Dropout = 0.0,
        batch_norm: bool = False,
        input_scale: InputScale = None,
        pca_components: PcaComponents = None,
        input_noise: InputNoise = 0.0,
        precision: str = "float32",
        n_items: int | None = None,
    ):
        super().__init__()
        in_dim, out_dim = int(in_dim), int(out_dim)
        hidden = _dims(hidden_dims)
        self.precision = resolve_precision(precision)
        front, width = _front_layers(in_dim, input_scale, pca_components, input_noise)
        self.trunk = nn.Sequential(*front, *mlp_layers(width, hidden, activation, dropout, bool(batch_norm)))
        self.embedding_head = nn.Linear(hidden[-1] if hidden else width, out_dim)
        self.config = {
            "in_dim": in_dim, "out_dim": out_dim, "hidden_dims": hidden, "activation": activation,
            "dropout": float(dropout), "batch_norm": bool(batch_norm), "input_scale": input_scale,
            "pca_components": pca_components, "input_noise": float(input_noise), "precision": self.precision,
        }

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        return self.embedding_head(run_hidden_layers(self.trunk, _as_input(x), self.precision))


@register_model("multi_head", aliases=("hybrid",))
class MultiHead(_Model):
    """Shared trunk with an embedding head and a classification head (logits).

    Parts: ``trunk``, ``embedding_head``, ``classification_head``.
    ``classify_from="trunk"`` (default): ``classify(x) = head(trunk(x))`` (paper Sec. 5.1,
    hybrid); ``"embedding"``: ``classify(x) = head(embed(x))`` (paper Sec. 5.4, the classifier
    reads the embedding). ``classifier_hidden_dims`` adds hidden layers to the classifier.
    ``precision`` applies to the trunk as in :class:`FullyConnected`; the heads stay float32.
    """

    model_type = "multi_head"

    def __init__(
        self,
        in_dim: int,
        out_dim: Width = 2,
        n_classes: Width = 10,
        hidden_dims: Widths = (100, 50),
        activation: str = "softplus",
        classify_from: Literal["trunk", "embedding"] = "trunk",
        classifier_hidden_dims: Widths = (),
        dropout: Dropout = 0.0,
        batch_norm: bool = False,
        input_scale: InputScale = None,
        pca_components: PcaComponents = None,
        input_noise: InputNoise = 0.0,
        precision: str = "float32",
        n_items: int | None = None,
    ):
        super().__init__()
        in_dim, out_dim, n_classes = int(in_dim), int(out_dim), int(n_classes)
        self.precision = resolve_precision(precision)
        hidden = _dims(hidden_dims)
        cls_hidden = _dims(classifier_hidden_dims)
        front, width = _front_layers(in_dim, input_scale, pca_components, input_noise)
        self.trunk = nn.Sequential(*front, *mlp_layers(width, hidden, activation, dropout, bool(batch_norm)))
        trunk_dim = hidden[-1] if hidden else width
        self.embedding_head = nn.Linear(trunk_dim, out_dim)
        cls_in = trunk_dim if classify_from == "trunk" else out_dim
        self.classification_head = nn.Sequential(
            *mlp_layers(cls_in, cls_hidden, activation),
            nn.Linear(cls_hidden[-1] if cls_hidden else cls_in, n_classes),
        )
        self.classify_from = classify_from
        self.config = {
            "in_dim": in_dim, "out_dim": out_dim, "n_classes": n_classes, "hidden_dims": hidden,
            "activation": activation, "classify_from": classify_from,
            "classifier_hidden_dims": cls_hidden, "dropout": float(dropout),
            "batch_norm": bool(batch_norm), "input_scale": input_scale, "pca_components": pca_components, "input_noise": float(input_noise),
            "precision": self.precision,
        }

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        return self.embedding_head(run_hidden_layers(self.trunk, _as_input(x), self.precision))

    def classify(self, x: torch.Tensor) -> torch.Tensor:
        """Class logits (n, n_classes)."""
        if self.classify_from == "embedding":
            return self.classification_head(self.embed(x))
        return self.classification_head(run_hidden_layers(self.trunk, _as_input(x), self.precision))


@register_model("autoencoder", aliases=("ae",))
class AutoEncoder(_Model):
    """Encoder ``in_dim -> hidden_dims -> out_dim`` and mirrored decoder back to ``in_dim``.

    Parts: ``encoder``, ``decoder``; ``embed = encode``. ``output_activation`` (default
    linear) ends the decoder, e.g. ``sigmoid`` for data in [0, 1]. ``input_scale`` scales the
    encoder's input only: reconstructions are in the scaled units.
    """

    model_type = "autoencoder"

    def __init__(
        self,
        in_dim: int,
        out_dim: Width = 2,
        hidden_dims: Widths = (100, 50),
        activation: str = "softplus",
        output_activation: str = "linear",
        dropout: Dropout = 0.0,
        batch_norm: bool = False,
        input_scale: InputScale = None,
        n_items: int | None = None,
    ):
        super().__init__()
        in_dim, out_dim = int(in_dim), int(out_dim)
        hidden = _dims(hidden_dims)
        front, width = _front_layers(in_dim, input_scale, None)
        self.encoder = nn.Sequential(
            *front, *mlp_layers(width, hidden, activation, dropout, bool(batch_norm)),
            nn.Linear(hidden[-1] if hidden else width, out_dim),
        )
        back = hidden[::-1]
        self.decoder = nn.Sequential(
            *mlp_layers(out_dim, back, activation, dropout, bool(batch_norm)),
            nn.Linear(back[-1] if back else out_dim, in_dim),
            activation_layer(output_activation),
        )
        self.config = {
            "in_dim": in_dim, "out_dim": out_dim, "hidden_dims": hidden, "activation": activation,
            "output_activation": output_activation, "dropout": float(dropout),
            "batch_norm": bool(batch_norm), "input_scale": input_scale,
        }

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        return self.encoder(_as_input(x))

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        return self.decoder(z)

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        return self.encode(x)


@register_model("direct", aliases=("non_parametric", "nonparametric"))
class Direct(_Model):
    """Non-parametric model: a learnable ``(n_items, out_dim)`` table of coordinates.

    It reads item *indices*, not features (``input_key = "index"``): ``embed(idx)`` returns
    ``coordinates[idx]`` (float indices are rounded down to int64; exact below 2**24 for
    float32). ``init``: an ``(n_items, out_dim)`` array, or ``"random"`` / None for a small
    Gaussian (std 1e-4, as in t-SNE) drawn from torch's global RNG. Part: ``coordinates``.
    The initial array is not kept in ``config``: the weights carry the coordinates.
    """

    model_type = "direct"
    input_key = "index"

    def __init__(self, n_items: int, out_dim: Width = 2, init: Any = None, in_dim: int | None = None):
        super().__init__()
        n_items, out_dim = int(n_items), int(out_dim)
        self.n_items = n_items
        self.coordinates = nn.Embedding(n_items, out_dim)
        with torch.no_grad():
            if init is None or (isinstance(init, str) and init == "random"):
                self.coordinates.weight.copy_(torch.randn(n_items, out_dim) * 1e-4)
            elif isinstance(init, str):
                raise ValueError(f"init must be 'random' or an (n_items, out_dim) array, got {init!r}")
            else:
                values = torch.as_tensor(np.asarray(init, dtype=np.float32))
                if tuple(values.shape) != (n_items, out_dim):
                    raise ValueError(f"init has shape {tuple(values.shape)}, expected {(n_items, out_dim)}")
                self.coordinates.weight.copy_(values)
        self.config = {"n_items": n_items, "out_dim": out_dim, "init": None}

    def embed(self, idx: torch.Tensor) -> torch.Tensor:
        idx = idx.reshape(-1) if idx.ndim > 1 else idx
        return self.coordinates(idx.long())


fully_connected = FullyConnected
multi_head = MultiHead
autoencoder = AutoEncoder
direct = Direct

__all__ = ["AutoEncoder", "Direct", "FullyConnected", "MultiHead", "autoencoder", "direct",
           "fully_connected", "multi_head"]
