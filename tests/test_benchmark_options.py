"""The benchmark scripts' command-line overrides (``benchmarks/quality.py --set``)."""

import importlib.util
from pathlib import Path

import pytest

_PATH = Path(__file__).resolve().parents[1] / "benchmarks" / "quality.py"
_SPEC = importlib.util.spec_from_file_location("quality_benchmark", _PATH)
quality = importlib.util.module_from_spec(_SPEC)
_SPEC.loader.exec_module(quality)


def test_set_values_are_json_or_python_literals_else_text():
    parsed = quality.parse_overrides([
        "tsne.lr=0.02", "tsne.ema=null", "tsne.hidden_dims=[96,96,96]", "umap.hidden_dims=(64, 64)",
        "tsne.precision=bfloat16", "umap.activation=tanh", "umap.verbose=true",
    ])
    assert parsed["tsne"] == {"lr": 0.02, "ema": None, "hidden_dims": [96, 96, 96], "precision": "bfloat16"}
    assert parsed["umap"] == {"hidden_dims": (64, 64), "activation": "tanh", "verbose": True}


def test_set_rejects_an_expression_that_looks_like_a_literal():
    with pytest.raises(SystemExit, match=r"cannot read '\(96,\)\*6'"):
        quality.parse_overrides(["tsne.hidden_dims=(96,)*6"])
