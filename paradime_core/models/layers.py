"""Layers and helpers of the ready-made models.

Activation layers by name, fully connected stacks (:func:`mlp_layers`), the numeric
precision of hidden layers (``float32``, ``bfloat16``, ``auto``), model parts and their
parameters (:func:`parameters_of`), and the fixed front layers a network may start with:
input scaling, a PCA projection fitted to the training data, Gaussian input noise.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Annotated, Any

import numpy as np
import torch
from annotated_types import Ge, Interval
from torch import nn

Width = Annotated[int, Ge(1)]
Widths = Sequence[Width] | Width | None
"""Widths of hidden layers: a list, one width, or none (null)."""
Dropout = Annotated[float, Interval(ge=0, lt=1)]

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
    key = name.strip().lower().replace("-", "_").replace(" ", "_")
    if key not in _ACTIVATIONS:
        raise ValueError(f"unknown activation '{name}' (one of {', '.join(_ACTIVATIONS)})")
    return _ACTIVATIONS[key]()


def _dims(values: Widths) -> list[int]:
    """Hidden layer widths as a list of ints (one width becomes a list of one)."""
    if values is None:
        return []
    return [int(v) for v in values] if isinstance(values, Sequence) else [int(values)]


def mlp_layers(
    in_dim: int,
    hidden_dims: Sequence[int],
    activation: str = "softplus",
    dropout: float = 0.0,
    batch_norm: bool = False,
) -> list[nn.Module]:
    """``[Linear, (BatchNorm), activation, (Dropout)]`` per hidden width (no output layer)."""
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
    noise) run in float32, the rest in one bfloat16 autocast region (native matrix products
    on CPUs with AVX-512 and on GPUs), and the result is float32."""
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
        """Principal axes of ``data`` (rows = items; :func:`~paradime_core.derived.principal_axes.principal_axes`);
        features scaled so the first has std 1."""
        from paradime_core.derived.principal_axes import principal_axes

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
    gather instead of fresh normals.
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


_FRONT_TYPES = (Scale, PCAProjection, GaussianNoise)  # parameter-free front layers


__all__ = ["GaussianNoise", "PCAProjection", "Scale", "activation_layer", "apply_in_blocks",
           "mlp_layers", "named_parts", "parameters_of", "resolve_precision"]
