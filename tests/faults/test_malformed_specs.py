"""Malformed spec files: each is refused with one SpecError naming the field, before any work.

Every case is a spec *file* as a user writes it (YAML text, or JSON), loaded by the library
(``load_spec``): the error's ``path`` is the field and its message is one line. A
representative subset runs the real ``paradime run`` command: exit status 1, one ``error:``
line naming the field, no traceback. The caps (spec size, YAML alias expansion, epochs,
model size) are among the cases.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml
from spec_paths import DELETE, edited_copy

from paradime_core import SpecError, load_spec

from ._cli import assert_one_line_error, run_cli

BASE_YAML = """
name: faults-base
derived_data: [{name: pca, func: pca, keys: [[data, main]], options: {n_components: 2}}]
relations:
  - {name: p, level: global, type: neighbor, options: {n_neighbors: 10, method: faiss_exact},
     transforms: [{type: perplexity, options: {perplexity: 5}}, {type: symmetrize}, {type: normalize}]}
  - {name: q, level: batch, type: pdist, transforms: [{type: t_dist}, {type: normalize}]}
losses:
  - {name: init, type: position, func: mse, keys: {data: [pca]}}
  - {name: emb, type: relation, func: kl_div, keys: {rels: [p, q]}}
model: {type: fully_connected, options: {hidden_dims: [16]}}
training_phases:
  - {name: init, epochs: 2, sampling: {type: item, batch_size: 50}, loss: {components: [init]},
     optimizer: {type: adam, options: {lr: 0.01}}}
  - {name: main, epochs: 3, sampling: {type: item, batch_size: 50}, loss: {components: [emb]}}
"""
BASE: dict[str, Any] = yaml.safe_load(BASE_YAML)


def edited(path: str, value: Any) -> str:
    """BASE as YAML with the field at ``path`` (``a.b[0].c``) set to ``value`` (or deleted)."""
    return yaml.safe_dump(edited_copy(BASE, path, value), sort_keys=False)


def billion_laughs() -> str:
    lines = ["a: &a [lol, lol, lol, lol, lol, lol, lol, lol, lol]"]
    for i, name in enumerate("bcdefghi"):
        prev = "abcdefghi"[i]
        lines.append(f"{name}: &{name} [" + ", ".join([f"*{prev}"] * 9) + "]")
    return "\n".join(lines) + "\nlosses: *i\ntraining_phases: *i\n"


# (id, spec text or bytes, file suffix, field named, fragment of the message)
Case = tuple[str, Callable[[], Any], str, str, str]
CASES: list[Case] = [
    # --- the document
    ("empty file", lambda: "", ".yaml", "spec", "the spec is empty"),
    ("only a comment", lambda: "# nothing here\n", ".yaml", "spec", "the spec is empty"),
    ("unclosed bracket", lambda: "losses: [\n", ".yaml", "spec", "invalid YAML"),
    ("tab indentation", lambda: "losses:\n\t- {name: a}\n", ".yaml", "spec", "invalid YAML"),
    ("top level is a list", lambda: "- losses\n- training_phases\n", ".yaml", "spec", "expected a mapping"),
    ("top level is a number", lambda: "42\n", ".yaml", "spec", "expected a mapping"),
    ("key given twice", lambda: BASE_YAML + "name: again\n", ".yaml", "spec", "key 'name' is given twice"),
    ("python object tag", lambda: "losses: !!python/object/apply:os.system [echo hi]\n", ".yaml", "spec",
     "invalid YAML"),
    ("billion laughs", billion_laughs, ".yaml", "spec", "once YAML aliases are expanded"),
    ("recursive alias", lambda: "losses: &a [*a]\ntraining_phases: []\n", ".yaml", "spec", "refers to itself"),
    ("file over the size cap", lambda: BASE_YAML + "description: '" + "x" * (1 << 20) + "'\n", ".yaml", "spec",
     "above the cap"),
    ("not UTF-8", lambda: b"losses: \xff\xfe\x00\x01\n", ".yaml", "spec", "not UTF-8"),
    ("nested too deeply", lambda: "losses: " + "[" * 5000 + "]" * 5000 + "\n", ".yaml", "spec", "nested too deeply"),
    ("invalid JSON", lambda: '{"losses": [}', ".json", "spec", "invalid JSON"),
    ("non-string key", lambda: "1: x\n" + BASE_YAML, ".yaml", "spec", "keys must be strings"),
    # --- top-level fields
    ("misspelt top-level field", lambda: BASE_YAML.replace("training_phases:", "trainig_phases:"), ".yaml",
     "trainig_phases", "unknown top-level field"),
    ("missing losses", lambda: edited("losses", DELETE), ".yaml", "losses", "required field is missing"),
    ("missing training phases", lambda: edited("training_phases", DELETE), ".yaml", "training_phases",
     "required field is missing"),
    ("empty losses", lambda: edited("losses", []), ".yaml", "losses", "must not be empty"),
    ("name is a list", lambda: edited("name", [1, 2]), ".yaml", "name", "expected a string"),
    # --- training phases
    ("zero epochs", lambda: edited("training_phases[0].epochs", 0), ".yaml", "training_phases[0].epochs",
     "positive integer"),
    ("negative epochs", lambda: edited("training_phases[1].epochs", -3), ".yaml", "training_phases[1].epochs",
     "positive integer"),
    ("epochs as text", lambda: edited("training_phases[0].epochs", "ten"), ".yaml", "training_phases[0].epochs",
     "positive integer"),
    ("fractional epochs", lambda: edited("training_phases[0].epochs", 2.5), ".yaml", "training_phases[0].epochs",
     "positive integer"),
    ("epochs as a boolean", lambda: edited("training_phases[0].epochs", True), ".yaml",
     "training_phases[0].epochs", "positive integer"),
    ("epochs over the cap", lambda: edited("training_phases[1].epochs", 10**9), ".yaml",
     "training_phases[1].epochs", "above the cap of 100,000"),
    ("phase without loss", lambda: edited("training_phases[0].loss", DELETE), ".yaml", "training_phases[0].loss",
     "required field is missing"),
    ("undefined loss component", lambda: edited("training_phases[1].loss.components", ["embb"]), ".yaml",
     "training_phases[1].loss.components[0]", "unknown loss 'embb'"),
    ("weights do not match components", lambda: edited("training_phases[1].loss.weights", [1.0, 2.0]), ".yaml",
     "training_phases[1].loss.weights", "2 weights for 1 components"),
    ("NaN weight", lambda: edited("training_phases[1].loss.weights", [float("nan")]), ".yaml",
     "training_phases[1].loss.weights[0]", "finite number"),
    ("infinite weight", lambda: edited("training_phases[1].loss.weights", [float("inf")]), ".yaml",
     "training_phases[1].loss.weights[0]", "finite number"),
    ("misspelt phase field", lambda: edited("training_phases[0].epoch", 3), ".yaml", "training_phases[0].epoch",
     "unknown field"),
    ("unknown sampler", lambda: edited("training_phases[0].sampling.type", "items"), ".yaml",
     "training_phases[0].sampling.type", "items"),
    ("zero batch size", lambda: edited("training_phases[0].sampling.batch_size", 0), ".yaml",
     "training_phases[0].sampling.options.batch_size", "expected an integer >= 1, got 0"),
    ("unknown optimizer", lambda: edited("training_phases[0].optimizer.type", "adamm"), ".yaml",
     "training_phases[0].optimizer.type", "adamm"),
    ("negative learning rate", lambda: edited("training_phases[0].optimizer.options.lr", -0.1), ".yaml",
     "training_phases[0].optimizer.options.lr", "expected a number > 0, got -0.1"),
    ("unknown phase option", lambda: edited("training_phases[0].options", {"warmup": 3}), ".yaml",
     "training_phases[0].options.warmup", "unknown phase option"),
    ("EMA decay of 1.5", lambda: edited("training_phases[0].options", {"ema": 1.5}), ".yaml",
     "training_phases[0].options.ema", "[0, 1)"),
    # --- relations and losses
    ("unknown relation type", lambda: edited("relations[0].type", "neighbour_graph"), ".yaml",
     "relations[0].type", "neighbour_graph"),
    ("unknown relation level", lambda: edited("relations[0].level", "local"), ".yaml", "relations[0].level",
     "local"),
    ("zero neighbours", lambda: edited("relations[0].options.n_neighbors", 0), ".yaml",
     "relations[0].options.n_neighbors", "expected an integer >= 1 or null, got 0"),
    ("negative perplexity", lambda: edited("relations[0].transforms[0].options.perplexity", -5), ".yaml",
     "relations[0].transforms[0].options.perplexity", "expected a number > 0, got -5"),
    ("unknown transform", lambda: edited("relations[0].transforms[1].type", "symmetrise_twice"), ".yaml",
     "relations[0].transforms[1].type", "symmetrise_twice"),
    ("duplicate relation name", lambda: edited("relations[1].name", "p"), ".yaml", "relations[1].name",
     "duplicate name 'p'"),
    ("loss reads an undefined relation", lambda: edited("losses[1].keys.rels", ["p", "qq"]), ".yaml",
     "losses[1].keys.rels[1]", "unknown relation 'qq'"),
    ("unknown loss function", lambda: edited("losses[1].func", "kl_divergence_x"), ".yaml", "losses[1].func",
     "kl_divergence_x"),
    # --- derived data
    ("unknown data function", lambda: edited("derived_data[0].func", "pcaa"), ".yaml", "derived_data[0].func",
     "pcaa"),
    ("derived data named main", lambda: edited("derived_data[0].name", "main"), ".yaml",
     "derived_data[0].name", "reserved dataset key"),
    ("derived data reads an undefined relation", lambda: edited("derived_data[0].keys", [["rels", "zz"]]),
     ".yaml", "derived_data[0].keys[0]", "unknown global relation 'zz'"),
    # --- the model
    ("model of terabytes", lambda: edited("model.options.hidden_dims", [1_000_000, 1_000_000]), ".yaml",
     "model.options", "above the cap of 1,000,000,000"),
    ("unknown model option", lambda: edited("model.options.hidden", [16]), ".yaml", "model.options.hidden",
     "unknown option"),
    ("unknown activation", lambda: edited("model.options.activation", "relux"), ".yaml",
     "model.options.activation", "relux"),
    ("unknown model type", lambda: edited("model.type", "transformer_xl"), ".yaml", "model.type",
     "transformer_xl"),
]
CLI_CASES = {"empty file", "key given twice", "billion laughs", "file over the size cap", "misspelt top-level field"}
SLOW_CLI_CASES = {"epochs over the cap", "undefined loss component", "model of terabytes",  # import torch
                  "negative perplexity"}


def _write(folder: Path, text: Any, suffix: str) -> Path:
    path = folder / f"spec{suffix}"
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text)
    return path


def test_the_base_spec_is_valid(tmp_path):
    assert load_spec(_write(tmp_path, BASE_YAML, ".yaml")).name == "faults-base"


def test_there_are_at_least_forty_cases():
    assert len(CASES) >= 40
    assert len({case[0] for case in CASES}) == len(CASES)


@pytest.mark.parametrize(("make", "suffix", "field", "fragment"), [pytest.param(*c[1:], id=c[0]) for c in CASES])
def test_library_names_the_field(tmp_path, make, suffix, field, fragment):
    path = _write(tmp_path, make(), suffix)
    with pytest.raises(SpecError) as info:
        load_spec(str(path))
    message = str(info.value)
    assert info.value.path == field, message
    assert message.startswith(f"{field}: ") and fragment in message, message
    assert "\n" not in message


@pytest.mark.parametrize(("make", "suffix", "field", "fragment"),
                         [pytest.param(*c[1:], id=c[0]) for c in CASES if c[0] in CLI_CASES]
                         + [pytest.param(*c[1:], id=c[0], marks=pytest.mark.slow) for c in CASES
                            if c[0] in SLOW_CLI_CASES])
def test_cli_exits_1_with_one_line(tmp_path, make, suffix, field, fragment):
    path = _write(tmp_path, make(), suffix)
    np.save(tmp_path / "rows.npy", np.random.default_rng(0).normal(size=(50, 4)))
    result = run_cli("run", str(path), "--data", "rows.npy", "--no-prefect", "--no-progress", workdir=tmp_path)
    assert_one_line_error(result, f"error: {field}: ", fragment)
    assert not (tmp_path / "store" / "datasets").exists()  # refused before any work


def test_caps_can_be_raised_for_one_process(tmp_path, monkeypatch):
    monkeypatch.setenv("PARADIME_MAX_EPOCHS", str(10**9))
    spec = load_spec(_write(tmp_path, edited("training_phases[1].epochs", 10**9), ".yaml"))
    assert spec.training_phases[1].epochs == 10**9


def test_a_yaml_merge_may_override_keys(tmp_path):
    text = BASE_YAML + "description: merged\n"
    text = text.replace("  - {name: main, epochs: 3, sampling: {type: item, batch_size: 50}, loss: {components: [emb]}}",
                        "  - &main {name: main, epochs: 3, sampling: {type: item, batch_size: 50}, "
                        "loss: {components: [emb]}}\n  - {<<: *main, name: again, epochs: 4}")
    spec = load_spec(_write(tmp_path, text, ".yaml"))
    assert [p.epochs for p in spec.training_phases] == [2, 3, 4]
