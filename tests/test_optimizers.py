"""Optimizer defaults: fused Adam/AdamW unless the spec chose an implementation."""

from __future__ import annotations

import torch

from paradime_core.training.optimizers import with_fast_defaults


def test_adam_gets_fused_unless_chosen():
    params = [torch.nn.Parameter(torch.zeros(3))]
    assert with_fast_defaults(torch.optim.Adam, {"lr": 0.1}, params) == {"lr": 0.1, "fused": True}
    assert with_fast_defaults(torch.optim.AdamW, {}, params) == {"fused": True}
    assert with_fast_defaults(torch.optim.Adam, {"foreach": False}, params) == {"foreach": False}
    assert with_fast_defaults(torch.optim.Adam, {"fused": False}, params) == {"fused": False}
    assert with_fast_defaults(torch.optim.SGD, {"lr": 0.1}, params) == {"lr": 0.1}
    assert with_fast_defaults(torch.optim.Adam, {}, []) == {}


def test_fused_adam_follows_the_plain_update():
    torch.manual_seed(0)
    target = torch.randn(64, 8)
    results = []
    for options in ({"foreach": False}, with_fast_defaults(torch.optim.Adam, {}, [torch.zeros(1)])):
        weight = torch.nn.Parameter(torch.zeros(64, 8))
        optimizer = torch.optim.Adam([weight], lr=0.05, **options)
        for _ in range(50):
            optimizer.zero_grad()
            ((weight - target) ** 2).sum().backward()
            optimizer.step()
        results.append(weight.detach())
    torch.testing.assert_close(results[0], results[1], rtol=1e-5, atol=1e-5)
