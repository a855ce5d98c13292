"""Attributions: which input features drive an output dimension of a trained routine.

Integrated gradients (Sundararajan et al. 2017), as the paper's Fig. 5 uses them: for an
input ``x``, a baseline ``x'`` and output dimension ``d`` of a model method ``f`` (``embed``
by default, any method such as ``classify`` or ``encode``),

.. math:: \\mathrm{IG}_j(x) = (x_j - x'_j) \\int_0^1
          \\frac{\\partial f_d(x' + \\alpha (x - x'))}{\\partial x_j}\\, d\\alpha,

approximated by captum's Gauss-Legendre rule with ``n_steps`` points. The attributions of
one item sum to ``f_d(x) - f_d(x')`` (completeness). captum is an optional dependency (the
``explain`` extra: ``pip install "paradime[explain]"``).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from paradime_core.batch import call_model_method


def _integrated_gradients_class() -> Any:
    try:
        from captum.attr import IntegratedGradients
    except ImportError:
        raise ImportError("integrated gradients need captum: pip install \"paradime[explain]\" "
                          "(or pip install captum)") from None
    return IntegratedGradients


def integrated_gradients(
    model: torch.nn.Module,
    X: np.ndarray | torch.Tensor,
    dim: int,
    *,
    method: str = "embed",
    baseline: np.ndarray | torch.Tensor | None = None,
    n_steps: int = 50,
) -> np.ndarray:
    """(n, n_features) integrated-gradients attributions of output ``dim`` of ``model.<method>``.

    Parameters
    ----------
    model : torch.nn.Module
        A trained model (a routine's ``model_``); it is put in eval mode.
    X : array of shape (n, n_features)
        The items to explain.
    dim : int
        The output dimension explained (0 for an embedding's x axis, a class for ``classify``).
    method : str
        The model method whose output is explained (``embed``, ``classify``, ``encode``, ...).
    baseline : array of shape (n_features,) or (n, n_features), optional
        The reference input ``x'``; default the mean of ``X``.
    n_steps : int
        Integration points of the path integral.

    Returns
    -------
    numpy.ndarray of shape (n, n_features)
        Each row sums to ``f_dim(x) - f_dim(x')`` up to the integration error.
    """
    integrated = _integrated_gradients_class()
    inputs = torch.as_tensor(np.asarray(X), dtype=torch.float32)
    if inputs.ndim != 2:
        raise ValueError(f"X must be a 2-D array (items x features), got shape {tuple(inputs.shape)}")
    reference = inputs.mean(dim=0, keepdim=True) if baseline is None else torch.as_tensor(
        np.asarray(baseline), dtype=torch.float32).reshape(-1, inputs.shape[1])
    model.eval()
    explainer = integrated(lambda x: call_model_method(model, method, x))
    attributions = explainer.attribute(inputs, baselines=reference.expand_as(inputs), target=int(dim),
                                       n_steps=int(n_steps))
    return attributions.detach().numpy()


def feature_importance(model: torch.nn.Module, X: np.ndarray | torch.Tensor, dims: tuple[int, ...] = (0, 1),
                       **options: Any) -> np.ndarray:
    """(len(dims), n_features) shares of mean |integrated gradients| per output dimension.

    Row ``k`` is ``mean_i |IG_j(x_i)|`` for dimension ``dims[k]``, divided by its sum over the
    features (each row sums to 1). ``options`` go to :func:`integrated_gradients`.
    """
    shares = []
    for dim in dims:
        mean_abs = np.abs(integrated_gradients(model, X, dim, **options)).mean(axis=0)
        shares.append(mean_abs / mean_abs.sum())
    return np.asarray(shares)


__all__ = ["feature_importance", "integrated_gradients"]
