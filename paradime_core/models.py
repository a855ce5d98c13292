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

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch
from torch import nn

from paradime_core.registry import register_model

# ----------------------------------------------------------------------------- helpers
_ACTIVATIONS: dict[str, Callable[[], nn.Module]] = {
    "relu": nn.ReLU,
    "softplus": nn.Softplus,
    "gelu": nn.GELU,
    "silu": nn.SiLU,
    "swish": nn.SiLU,
    "tanh": nn.Tanh,
    "sigmoid": nn.Sigmoid,
    "leaky_relu": nn.LeakyReLU,
    "selu": nn.SELU,
    "elu": nn.ELU,
    "linear": nn.Identity,
    "identity": nn.Identity,
}


def activation_layer(name: str) -> nn.Module:
    """A fresh activation module by name (``relu``, ``softplus``, ..., ``linear``)."""
    if not isinstance(name, str):
        raise TypeError(f"activation must be a name, got {type(name).__name__}")
    key = name.strip().lower().replace("-", "_").replace(" ", "_")
    if key not in _ACTIVATIONS:
        raise ValueError(f"unknown activation '{name}' (one of {', '.join(_ACTIVATIONS)})")
    return _ACTIVATIONS[key]()


def _positive_int(value: Any, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")
    return int(value)


def _dims(values: Any, name: str) -> list[int]:
    if values is None:
        return []
    if isinstance(values, (int, np.integer)) and not isinstance(values, bool):
        values = [values]
    if not isinstance(values, Sequence) or isinstance(values, str):
        raise TypeError(f"{name} must be a list of layer widths, got {values!r}")
    return [_positive_int(v, f"{name}[{i}]") for i, v in enumerate(values)]


def mlp_layers(
    in_dim: int,
    hidden_dims: Sequence[int],
    activation: str = "softplus",
    dropout: float = 0.0,
    batch_norm: bool = False,
) -> list[nn.Module]:
    """``[Linear, (BatchNorm), activation, (Dropout)]`` per hidden width (no output layer)."""
    if not 0.0 <= float(dropout) < 1.0:
        raise ValueError(f"dropout must lie in [0, 1), got {dropout!r}")
    layers: list[nn.Module] = []
    width = in_dim
    for hidden in hidden_dims:
        layers.append(nn.Linear(width, hidden))
        if batch_norm:
            layers.append(nn.BatchNorm1d(hidden))
        layers.append(activation_layer(activation))
        if dropout > 0:
            layers.append(nn.Dropout(float(dropout)))
        width = hidden
    return layers


@torch.no_grad()
def apply_in_blocks(module: nn.Module, x: torch.Tensor, block: int = 65536) -> torch.Tensor:
    """``module(x)`` computed over row blocks of ``block`` (float32 input, no gradients)."""
    return torch.cat([module(x[i:i + block].float()) for i in range(0, x.shape[0], block)])


PRECISIONS = ("float32", "bfloat16", "auto")


def fast_bfloat16_available() -> bool:
    """Whether bfloat16 matrix products are native here: a CUDA device that supports them
    (Ampere or newer), else a CPU whose oneDNN kernels do (AVX-512 or newer)."""
    if torch.cuda.is_available():
        return bool(torch.cuda.is_bf16_supported())
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):  # a torch build without oneDNN
        return False


def resolve_precision(value: Any) -> str:
    """``float32`` or ``bfloat16`` (also ``fp32``, ``bf16``); ``auto``: bfloat16 where
    :func:`fast_bfloat16_available`, else float32."""
    key = str(value).strip().lower()
    key = {"fp32": "float32", "float": "float32", "bf16": "bfloat16"}.get(key, key)
    if key not in PRECISIONS:
        raise ValueError(f"precision must be one of {', '.join(PRECISIONS)} (or bf16), got {value!r}")
    if key == "auto":
        return "bfloat16" if fast_bfloat16_available() else "float32"
    return key


def run_hidden_layers(layers: nn.Sequential, x: torch.Tensor, precision: str) -> torch.Tensor:
    """``layers(x)``; with ``precision="bfloat16"`` the leading front layers (input scale, PCA,
    noise) run in float32, the rest in one bfloat16 autocast region (about 2x faster for a
    whole network on CPUs with AVX-512, the norm on GPUs), and the result is float32."""
    if precision != "bfloat16":
        return layers(x)
    modules = list(layers)
    front = next((i for i, m in enumerate(modules) if not isinstance(m, _FRONT_TYPES)), len(modules))
    for module in modules[:front]:
        x = module(x)
    with torch.autocast(device_type=x.device.type, dtype=torch.bfloat16):
        for module in modules[front:]:
            x = module(x)
    return x.float()


def _as_input(x: torch.Tensor) -> torch.Tensor:
    """Flatten all but the batch dimension and make floating point."""
    x = x.reshape(x.shape[0], -1) if x.ndim != 2 else x
    return x if x.is_floating_point() else x.float()


def named_parts(model: nn.Module) -> list[str]:
    """The parts a phase may select: the names of the model's direct child modules."""
    return [name for name, _ in model.named_children()]


def parameters_of(model: nn.Module, parts: list[str] | None) -> list[nn.Parameter]:
    """All parameters (``parts`` None) or those of the named child modules, in order.

    Raises ValueError naming the unknown parts and listing the available ones.
    """
    if parts is None:
        return list(model.parameters())
    if isinstance(parts, str):
        parts = [parts]
    children = dict(model.named_children())
    unknown = [p for p in parts if p not in children]
    if unknown:
        raise ValueError(
            f"unknown model part(s) {', '.join(map(repr, unknown))} "
            f"(available: {', '.join(children) or 'none'})"
        )
    params: list[nn.Parameter] = []
    seen: set[int] = set()
    for part in parts:
        for p in children[part].parameters():
            if id(p) not in seen:
                seen.add(id(p))
                params.append(p)
    return params


class PCAProjection(nn.Module):
    """Frozen ``x -> (x - mean) @ components.T`` (buffers, no trainable parameters).

    Load the axes with :meth:`set_pca` (or :meth:`fit`) before the first forward pass;
    they are buffers, so they are saved in and restored from the ``state_dict``.
    """

    def __init__(self, in_dim: int, n_components: int):
        super().__init__()
        if n_components > in_dim:
            raise ValueError(f"pca_components ({n_components}) exceeds the input dimension ({in_dim})")
        self.register_buffer("mean", torch.zeros(in_dim))
        self.register_buffer("components", torch.zeros(n_components, in_dim))
        self.register_buffer("scale", torch.ones(()))
        self.register_buffer("fitted", torch.zeros((), dtype=torch.bool))

    def set_pca(self, mean: Any, components: Any, scale: float = 1.0) -> None:
        mean = torch.as_tensor(np.asarray(mean), dtype=self.mean.dtype).reshape(-1)
        components = torch.as_tensor(np.asarray(components), dtype=self.components.dtype)
        if mean.shape != self.mean.shape or components.shape != self.components.shape:
            raise ValueError(
                f"set_pca expects mean {tuple(self.mean.shape)} and components "
                f"{tuple(self.components.shape)}, got {tuple(mean.shape)} and {tuple(components.shape)}"
            )
        self.mean.copy_(mean)
        self.components.copy_(components)
        self.scale.fill_(float(scale))
        self.fitted.fill_(True)

    def fit(self, data: Any) -> None:
        """Principal axes of ``data`` (rows = items; :func:`~paradime_core.principal_axes.principal_axes`);
        features scaled so the first has std 1."""
        from paradime_core.principal_axes import principal_axes

        axes = principal_axes(np.asarray(data), self.components.shape[0])
        first_std = float(np.sqrt(axes.variances[0]))
        self.set_pca(axes.mean, axes.components, scale=1.0 / first_std if first_std > 0 else 1.0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not bool(self.fitted):
            raise RuntimeError("the PCA front layer is not set: call model.set_pca(mean, components) "
                               "or model.fit_pca(data) before training")
        return ((x - self.mean) @ self.components.T) * self.scale


class GaussianNoise(nn.Module):
    """``x + sigma * u * eps``, ``eps ~ N(0, I)``, in training mode only (identity in eval).

    A smoothness regulariser: the network must map a neighbourhood of each training item,
    not only the item, which narrows the gap between training and held-out quality.
    ``u`` (a buffer, 1 until :meth:`calibrate` sets it from the training items) is
    ``median_i d_15(i) / sqrt(w)``, with ``d_15(i)`` the distance from item ``i`` to its
    15th nearest neighbour and ``w`` the width of the layer's input: the noise vector's
    length is then about ``sigma * median d_15`` whatever the data's scale, width and
    density, so one ``sigma`` suits MNIST and 16-feature tables alike.

    ``eps`` comes from a bank of standard normal rows (``BANK_ROWS``, fewer for wide inputs:
    at most ``BANK_VALUES`` values, at least ``BANK_MIN_ROWS`` rows) drawn once (from torch's
    global generator, on the first training call at the input's width, dtype and device):
    each call takes every row of its batch from a uniformly random bank row. The rows of a
    batch are then i.i.d. draws from the bank's empirical distribution, which for 65,536
    rows is a Gaussian for every practical purpose, while a call costs an index draw and a
    gather instead of fresh normals (on two CPU cores, 7,270 x 50 fresh normals took
    1.24 ms, a quarter of the cost of the rest of a UMAP step outside its matrix products).
    """

    stochastic = True
    NEIGHBOR = 15
    BANK_ROWS = 65536
    BANK_MIN_ROWS = 8192
    BANK_VALUES = 2**22

    def __init__(self, sigma: float):
        super().__init__()
        self.sigma = float(sigma)
        self.register_buffer("unit", torch.ones(()))
        self.register_buffer("calibrated", torch.zeros((), dtype=torch.bool))
        self._bank: torch.Tensor | None = None

    def standard_normal_like(self, x: torch.Tensor) -> torch.Tensor:
        """Rows of ``eps`` for the rows of ``x`` (2-D), drawn from the bank (see class doc)."""
        bank = self._bank
        width = x.shape[1:]
        if bank is None or bank.shape[1:] != width or bank.dtype != x.dtype or bank.device != x.device:
            row_values = max(int(np.prod(width)), 1)
            rows = min(self.BANK_ROWS, max(self.BANK_MIN_ROWS, self.BANK_VALUES // row_values))
            bank = torch.randn((rows, *width), dtype=x.dtype, device=x.device)
            self._bank = bank
        rows = torch.randint(0, bank.shape[0], (x.shape[0],), device=x.device)
        return bank.index_select(0, rows)

    @torch.no_grad()
    def calibrate(self, features: Any, queries: int = 2000, index_rows: int = 200_000, seed: int = 0) -> None:
        """Set ``u`` from ``features`` (n, w): exact neighbours of up to ``queries`` random items
        among up to ``index_rows`` random items (the queries included)."""
        z = torch.as_tensor(np.asarray(features), dtype=torch.float32).reshape(len(features), -1)
        n, width = z.shape
        rng = np.random.default_rng(seed)
        query_rows = rng.choice(n, size=min(queries, n), replace=False)
        index = z if n <= index_rows else z[np.union1d(rng.choice(n, size=index_rows, replace=False), query_rows)]
        k = min(self.NEIGHBOR, index.shape[0] - 1)
        if k < 1:
            return
        kth = [torch.cdist(z[query_rows[i:i + 256]], index).topk(k + 1, largest=False).values[:, k]
               for i in range(0, len(query_rows), 256)]
        median = float(torch.cat(kth).median())
        if np.isfinite(median) and median > 0:
            self.unit.fill_(median / np.sqrt(width))
        self.calibrated.fill_(True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.training and self.sigma > 0:
            return x + (self.sigma * self.unit) * self.standard_normal_like(x)
        return x

    def extra_repr(self) -> str:
        return f"sigma={self.sigma}"


class Scale(nn.Module):
    """Multiply by a constant (e.g. 1/255 for 8-bit pixels)."""

    def __init__(self, factor: float):
        super().__init__()
        self.factor = float(factor)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.factor

    def extra_repr(self) -> str:
        return f"factor={self.factor}"


_FRONT_TYPES = (Scale, PCAProjection, GaussianNoise)


def _front_layers(in_dim: int, input_scale: float | None, pca_components: int | None,
                  input_noise: float = 0.0) -> tuple[list[nn.Module], int]:
    layers: list[nn.Module] = []
    if input_scale is not None:
        if isinstance(input_scale, bool) or not isinstance(input_scale, (int, float)) or input_scale <= 0:
            raise ValueError(f"input_scale must be a positive number, got {input_scale!r}")
        layers.append(Scale(input_scale))
    if pca_components is not None:
        # At most in_dim components: with k = in_dim the layer still centres, rotates and
        # scales the data to a first-component std of 1, so one spec fits data of any width.
        k = min(_positive_int(pca_components, "pca_components"), in_dim)
        layers.append(PCAProjection(in_dim, k))
        in_dim = k
    if input_noise:
        if isinstance(input_noise, bool) or not isinstance(input_noise, (int, float)) or input_noise < 0:
            raise ValueError(f"input_noise must be a non-negative number, got {input_noise!r}")
        layers.append(GaussianNoise(input_noise))
    return layers, in_dim


class _Model(nn.Module):
    """Shared bits: ``model_type``, ``config``, ``forward = embed``, ``parts``."""

    model_type: str = ""
    config: dict[str, Any]

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
        out_dim: int = 2,
        hidden_dims: Sequence[int] = (100, 50),
        activation: str = "softplus",
        dropout: float = 0.0,
        batch_norm: bool = False,
        input_scale: float | None = None,
        pca_components: int | None = None,
        input_noise: float = 0.0,
        precision: str = "float32",
        n_items: int | None = None,
    ):
        super().__init__()
        in_dim = _positive_int(in_dim, "in_dim")
        out_dim = _positive_int(out_dim, "out_dim")
        hidden = _dims(hidden_dims, "hidden_dims")
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
        out_dim: int = 2,
        n_classes: int = 10,
        hidden_dims: Sequence[int] = (100, 50),
        activation: str = "softplus",
        classify_from: str = "trunk",
        classifier_hidden_dims: Sequence[int] = (),
        dropout: float = 0.0,
        batch_norm: bool = False,
        input_scale: float | None = None,
        pca_components: int | None = None,
        input_noise: float = 0.0,
        precision: str = "float32",
        n_items: int | None = None,
    ):
        super().__init__()
        in_dim = _positive_int(in_dim, "in_dim")
        out_dim = _positive_int(out_dim, "out_dim")
        n_classes = _positive_int(n_classes, "n_classes")
        self.precision = resolve_precision(precision)
        if classify_from not in ("trunk", "embedding"):
            raise ValueError(f"classify_from must be 'trunk' or 'embedding', got {classify_from!r}")
        hidden = _dims(hidden_dims, "hidden_dims")
        cls_hidden = _dims(classifier_hidden_dims, "classifier_hidden_dims")
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
        out_dim: int = 2,
        hidden_dims: Sequence[int] = (100, 50),
        activation: str = "softplus",
        output_activation: str = "linear",
        dropout: float = 0.0,
        batch_norm: bool = False,
        input_scale: float | None = None,
        n_items: int | None = None,
    ):
        super().__init__()
        in_dim = _positive_int(in_dim, "in_dim")
        out_dim = _positive_int(out_dim, "out_dim")
        hidden = _dims(hidden_dims, "hidden_dims")
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

    def __init__(self, n_items: int, out_dim: int = 2, init: Any = None, in_dim: int | None = None):
        super().__init__()
        n_items = _positive_int(n_items, "n_items")
        out_dim = _positive_int(out_dim, "out_dim")
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

__all__ = [
    "AutoEncoder", "Direct", "FullyConnected", "MultiHead", "PCAProjection", "activation_layer",
    "autoencoder", "direct", "fully_connected", "mlp_layers", "multi_head", "named_parts",
    "parameters_of",
]
