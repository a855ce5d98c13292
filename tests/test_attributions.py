"""Integrated gradients of any model method's output dimension (paper Fig. 5)."""

from __future__ import annotations

import sys

import numpy as np
import pytest
import torch

from paradime_core.attributions import feature_importance, integrated_gradients
from paradime_core.models import MultiHead


@pytest.fixture
def model() -> torch.nn.Module:
    torch.manual_seed(0)
    return MultiHead(in_dim=5, n_classes=3, hidden_dims=[8])


def test_attributions_are_complete_for_embed_and_classify(model):
    X = np.random.default_rng(0).normal(size=(20, 5)).astype(np.float32)
    baseline = X.mean(axis=0)
    for method, dim in (("embed", 1), ("classify", 2)):
        attributions = integrated_gradients(model, X, dim, method=method, n_steps=64)
        with torch.no_grad():
            f = getattr(model, method)
            gap = (f(torch.as_tensor(X))[:, dim] - f(torch.as_tensor(baseline[None]))[:, dim]).numpy()
        assert attributions.shape == (20, 5)
        assert np.allclose(attributions.sum(axis=1), gap, atol=1e-3)


def test_a_linear_map_attributes_weight_times_displacement():
    linear = torch.nn.Linear(3, 2, bias=True)
    with torch.no_grad():
        linear.weight.copy_(torch.tensor([[1.0, -2.0, 0.0], [0.5, 0.0, 3.0]]))
    X = np.array([[1.0, 2.0, 3.0], [3.0, 0.0, -1.0]], dtype=np.float32)
    got = integrated_gradients(linear, X, 0, baseline=np.zeros(3))
    assert np.allclose(got, X * np.array([1.0, -2.0, 0.0]), atol=1e-5)
    shares = feature_importance(linear, X, dims=(0, 1), baseline=np.zeros(3))
    assert np.allclose(shares.sum(axis=1), 1.0) and shares[0, 2] == 0.0


def test_without_captum_one_clear_error(monkeypatch, model):
    monkeypatch.setitem(sys.modules, "captum.attr", None)
    with pytest.raises(ImportError, match=r"paradime\[explain\]"):
        integrated_gradients(model, np.zeros((2, 5), dtype=np.float32), 0)
