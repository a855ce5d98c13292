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


def test_repeated_runs_are_summarized_by_mean_and_range():
    rows = [{"method": "m", "dataset": "d", "fit_s": 10.0, "trust10": 0.93, "knn10_acc": 0.88},
            {"method": "m", "dataset": "d", "fit_s": 14.0, "trust10": 0.94, "knn10_acc": 0.86}]
    summary = quality.summarize(rows)
    assert summary["repeats"] == 2 and summary["method"] == "m"
    assert summary["fit_s"] == 12.0 and summary["fit_s_range"] == [10.0, 14.0]
    assert summary["trust10"] == 0.935 and summary["knn10_acc"] == 0.87
    assert "train_trust10" not in summary


def test_repeats_use_consecutive_random_states(monkeypatch):
    seen = []

    def fake_run(method, overrides, split, dataset):
        seen.append(overrides["random_state"])
        return {"method": method, "dataset": dataset, "fit_s": 1.0, "trust10": 0.9, "knn10_acc": 0.8}

    monkeypatch.setattr(quality, "run_ours", fake_run)
    summary = quality.run_repeats("umap", {"random_state": 5, "epochs": 3}, None, "mnist", 3)
    assert seen == [5, 6, 7] and summary["repeats"] == 3
    with pytest.raises(SystemExit, match="at least 1"):
        quality.run_repeats("umap", {}, None, "mnist", 0)


def test_set_accepts_largevis_and_names_an_unknown_method():
    assert quality.parse_overrides(["largevis.init=random"])["largevis"] == {"init": "random"}
    with pytest.raises(SystemExit, match=r"unknown method 'tnse' \(one of tsne, umap, largevis, tsne_kl, largevis_fuzzy\)"):
        quality.parse_overrides(["tnse.lr=0.1"])


def test_the_recipe_forms_are_methods_of_the_benchmark():
    """``tsne_kl`` is ParametricTSNE's paper form; ``largevis_fuzzy`` LargeVis' training on UMAP's graph."""
    assert quality.estimator_for("tsne_kl", {"lr": 0.02}).get_params()["objective"] == "kl"
    assert quality.estimator_for("tsne", {}).get_params()["objective"] == "infonce"
    fuzzy = quality.estimator_for("largevis_fuzzy", {}).build_spec(1000, 20)
    p, q = (next(r for r in fuzzy.relations if r.name == name) for name in ("p", "q"))
    assert [t.type for t in p.transforms] == ["connect", "symmetrize"]
    assert [(t.type, dict(t.options)) for t in q.transforms] == [("t_dist", {"alpha": 1.0})]
    perplexity = quality.estimator_for("largevis", {}).build_spec(1000, 20)
    assert [t.type for t in perplexity.relations[0].transforms] == ["perplexity", "symmetrize"]
