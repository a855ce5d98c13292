"""Malformed specs: each raises one SpecError whose message names where and what.

Problems only the data can reveal (a key the dataset lacks, an option value that does not
fit the data) surface at fit time, as DataError or SpecError naming the key or location.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

import pytest
import yaml
from spec_paths import DELETE, edited_copy, steps

from paradime_core import DataError, Routine, Spec, SpecError, load_spec

BASE_YAML = """
derived_data:
  - {name: pca, func: pca, keys: [[data, main]], options: {n_components: 2}}
relations:
  - name: p
    level: global
    type: neighbor
    options: {n_neighbors: 10}
    transforms:
      - {type: perplexity, options: {perplexity: 3}}
      - {type: symmetrize, options: {sub_prod: false}}
      - {type: normalize}
  - {name: q, level: batch, type: pdist, transforms: [{type: t_dist, options: {alpha: 1.0}}, {type: normalize}]}
losses:
  - {name: init, type: position, func: mse, keys: {data: [pca], methods: [embed]}}
  - {name: emb, type: relation, func: kl_div, keys: {rels: [p, q]}}
  - {name: tri, type: triplet, options: {margin: 1.0}}
training_phases:
  - name: first
    epochs: 2
    sampling: {type: item, options: {batch_size: 50}}
    loss: {components: [init, emb], weights: [1.0, 0.5]}
    optimizer: {type: adam, options: {lr: 0.01}}
    params: [embedding_head]
    options: {lr_schedule: linear}
  - name: second
    epochs: 2
    sampling: {type: edge, options: {rels: p, batch_size: 20, neg_rate: 3}}
    loss: {components: [emb]}
model: {type: fully_connected, options: {hidden_dims: [10], activation: relu}}
name: base
description: a valid spec every case below breaks in one place
"""
BASE: dict[str, Any] = yaml.safe_load(BASE_YAML)

def broken(path: str, value: Any) -> dict[str, Any]:
    """A copy of BASE with the element at ``path`` (``a.b[0].c``) set to ``value`` (or deleted)."""
    return edited_copy(BASE, path, value)


def appended(path: str, value: Any) -> dict[str, Any]:
    """A copy of BASE with ``value`` appended to the list at ``path``."""
    spec = copy.deepcopy(BASE)
    target = spec
    for step in steps(path):
        target = target[step]
    target.append(value)
    return spec


def test_base_spec_is_valid():
    assert Spec.from_dict(BASE).to_dict()["name"] == "base"


# (case id, malformed spec, exact location, key part of the message)
CASES: list[tuple[str, Callable[[], Any], str, str]] = [
    ("undefined relation in a loss", lambda: broken("losses[1].keys.rels[0]", "pp"),
     "losses[1].keys.rels[0]", "unknown relation 'pp' (defined: p, q)"),
    ("unknown optimizer", lambda: broken("training_phases[0].optimizer.type", "adamm"),
     "training_phases[0].optimizer.type", "'adamm' is not one of adadelta, adagrad, adam, adamax, adamw"),
    ("unknown top-level field", lambda: {**BASE, "relatons": []},
     "relatons", "unknown top-level field (allowed: derived_data, description, losses, model, name, "
                 "relations, training_phases); did you mean 'relations'?"),
    ("unknown phase field", lambda: broken("training_phases[0].epochz", 3),
     "training_phases[0].epochz", "unknown field (allowed: batch_size, epochs, loss, name, optimizer, "
                                  "options, params, report_interval, sampling); did you mean 'epochs'?"),
    ("unknown derived-data field", lambda: broken("derived_data[0].option", {}),
     "derived_data[0].option", "unknown field (allowed: func, keys, name, options); did you mean 'options'?"),
    ("epochs of the wrong type", lambda: broken("training_phases[0].epochs", "5"),
     "training_phases[0].epochs", "expected a positive integer, got '5'"),
    ("zero epochs", lambda: broken("training_phases[1].epochs", 0),
     "training_phases[1].epochs", "expected a positive integer, got 0"),
    ("missing relation level", lambda: broken("relations[0].level", DELETE),
     "relations[0].level", "required field is missing"),
    ("missing loss name", lambda: broken("losses[2].name", DELETE),
     "losses[2].name", "required field is missing"),
    ("missing losses", lambda: broken("losses", DELETE), "losses", "required field is missing"),
    ("empty training phases", lambda: broken("training_phases", []), "training_phases", "must not be empty"),
    ("missing phase loss", lambda: broken("training_phases[1].loss", DELETE),
     "training_phases[1].loss", "required field is missing"),
    ("undefined loss in a phase", lambda: broken("training_phases[1].loss.components[0]", "embb"),
     "training_phases[1].loss.components[0]", "unknown loss 'embb' (defined: init, emb, tri)"),
    ("weights/components mismatch", lambda: broken("training_phases[0].loss.weights", [1.0]),
     "training_phases[0].loss.weights", "1 weights for 2 components (must match)"),
    ("weight not a number", lambda: broken("training_phases[0].loss.weights[1]", "half"),
     "training_phases[0].loss.weights[1]", "expected a finite number, got 'half'"),
    ("non-finite weight", lambda: broken("training_phases[0].loss.weights[1]", float("nan")),
     "training_phases[0].loss.weights[1]", "expected a finite number, got nan"),
    ("batch relation used as global", lambda: broken("losses[1].keys.rels", ["q", "p"]),
     "losses[1].keys.rels[0]", "relation 'q' is batch-level; this position needs a global relation"),
    ("global-only relation type at batch level", lambda: broken("relations[1].type", "neighbor"),
     "relations[1].level", "relation type 'neighbor' is global-level only, not batch"),
    ("global-only transform on a batch relation", lambda: broken("relations[1].transforms[0].type", "perplexity"),
     "relations[1].transforms[0].type", "transform 'perplexity' applies to global relations, not batch"),
    ("misspelt relation option", lambda: broken("relations[0].options", {"n_neighbours": 10}),
     "relations[0].options.n_neighbours",
     "unknown option for relation 'neighbor' (allowed: n_neighbors, metric, method, seed, n_threads); "
     "did you mean 'n_neighbors'?"),
    ("negative perplexity", lambda: broken("relations[0].transforms[0].options.perplexity", -30),
     "relations[0].transforms[0].options.perplexity", "expected a number > 0, got -30"),
    ("unknown kNN method", lambda: broken("relations[0].options.method", "annoy"),
     "relations[0].options.method", "expected one of auto, faiss_exact, faiss_hnsw, pynndescent, got 'annoy'"),
    ("unknown transform type", lambda: broken("relations[0].transforms[1].type", "symetrize"),
     "relations[0].transforms[1].type", "'symetrize' is not one of cauchy, connect, geodesic, normalize, "
                                        "normalize_rows, perplexity, symmetrize, t_dist; did you mean 'symmetrize'?"),
    ("unknown relation type", lambda: broken("relations[0].type", "nieghbor"),
     "relations[0].type", "'nieghbor' is not one of edge_dist, neighbor, pairwise_eq, pdist, precomputed"),
    ("unknown level", lambda: broken("relations[0].level", "local"),
     "relations[0].level", "'local' is not one of global, batch"),
    ("unknown sampler", lambda: broken("training_phases[1].sampling.type", "edges"),
     "training_phases[1].sampling.type", "'edges' is not one of edge, item, triplet; did you mean 'edge'?"),
    ("sampler relation not defined", lambda: broken("training_phases[1].sampling.options.rels", "pp"),
     "training_phases[1].sampling.options.rels", "unknown global relation 'pp' (defined: p)"),
    ("sampler relation is a batch relation", lambda: broken("training_phases[1].sampling.options.rels", "q"),
     "training_phases[1].sampling.options.rels", "unknown global relation 'q' (defined: p)"),
    ("edge sampling without a relation (two to choose from)", lambda: {
        **broken("training_phases[1].sampling.options.rels", DELETE),
        "relations": [*BASE["relations"], {"name": "d", "level": "global", "type": "pdist"}],
    }, "training_phases[1].sampling.options", "sampler 'edge': 'edge' sampling needs rels"),
    ("sampler option of another sampler", lambda: broken("training_phases[0].sampling.options.neg_rate", 5),
     "training_phases[0].sampling.options.neg_rate",
     "unknown option for sampler 'item' (allowed: batch_size, shuffle, drop_last, batches_per_epoch)"),
    ("zero batch size", lambda: broken("training_phases[0].sampling.options.batch_size", 0),
     "training_phases[0].sampling.options.batch_size", "expected an integer >= 1, got 0"),
    ("duplicate relation names", lambda: broken("relations[1].name", "p"),
     "relations[1].name", "duplicate name 'p' (also relations[0])"),
    ("duplicate loss names", lambda: broken("losses[2].name", "init"),
     "losses[2].name", "duplicate name 'init' (also losses[0])"),
    ("unknown loss function", lambda: broken("losses[1].func", "kl divv"),
     "losses[1].func", "'kl divv' is not one of cross_entropy, huber, infonce, kl_div, mae, margin, mse; "
                       "did you mean 'kl_div'?"),
    ("relation loss without func", lambda: broken("losses[1].func", DELETE),
     "losses[1].func", "loss type 'relation' needs a func"),
    ("relation loss with one relation", lambda: broken("losses[1].keys.rels", ["p"]),
     "losses[1].keys.rels", "loss type 'relation' needs 2 relations (global, batch), got 1"),
    ("unknown kind of loss key", lambda: broken("losses[1].keys", {"relations": ["p", "q"]}),
     "losses[1].keys.relations", "unknown key kind (allowed: data, rels, methods)"),
    ("loss key of the wrong type", lambda: broken("losses[1].keys.rels", [3, "q"]),
     "losses[1].keys.rels[0]", "expected a non-empty string, got 3"),
    ("unknown loss field", lambda: broken("losses[1].weight", 2),
     "losses[1].options.weight", "unknown option for loss type 'relation' (allowed: repulsion_strength; "
                                 "fields of a loss: name, type, func, keys, options)"),
    ("bad loss option value", lambda: broken("losses[2].options.margin", -1),
     "losses[2].options.margin", "expected a number >= 0, got -1"),
    ("unknown loss type", lambda: broken("losses[2].type", "tripplet"),
     "losses[2].type", "'tripplet' is not one of classification, correlation, density, position, reconstruction"),
    ("unknown data function", lambda: broken("derived_data[0].func", "pcaa"),
     "derived_data[0].func", "'pcaa' is not one of log_radii, pca, select_columns, spectral, standardize"),
    ("unknown data-function option", lambda: broken("derived_data[0].options", {"n_comps": 2}),
     "derived_data[0].options.n_comps", "unknown option for data function 'pca' (allowed: n_components, "
                                        "whiten, scale)"),
    ("data function without inputs", lambda: broken("derived_data[0].keys", []),
     "derived_data[0].keys", "data function 'pca' needs 1 input(s) (data), got 0"),
    ("derived data reading an undefined relation", lambda: broken("derived_data[0].keys", [["rels", "zz"]]),
     "derived_data[0].keys[0]", "unknown global relation 'zz' (defined: p)"),
    ("derived data key kind", lambda: broken("derived_data[0].keys", [["date", "main"]]),
     "derived_data[0].keys[0]", "'date' is not one of data, rels"),
    ("reserved derived data name", lambda: broken("derived_data[0].name", "main"),
     "derived_data[0].name", "'main' is a reserved dataset key (main, index)"),
    ("derived data cycle", lambda: {
        **BASE,
        "derived_data": [{"name": "spec", "func": "spectral", "keys": [["rels", "r"]]}],
        "relations": [*BASE["relations"], {"name": "r", "level": "global", "type": "neighbor", "data": "spec"}],
    }, "derived_data[0].keys", "dependency cycle: derived data 'spec' -> relation 'r' -> derived data 'spec'"),
    ("misspelt optimizer option", lambda: broken("training_phases[0].optimizer.options.lrr", 0.1),
     "training_phases[0].optimizer.options.lrr", "unknown option for optimizer 'adam' (allowed: lr, betas"),
    ("bad optimizer option value", lambda: broken("training_phases[0].optimizer.options.betas", [2.0, 0.9]),
     "training_phases[0].optimizer.options", "optimizer 'adam': Invalid beta parameter at index 0"),
    ("negative learning rate", lambda: broken("training_phases[0].optimizer.options.lr", -1),
     "training_phases[0].optimizer.options.lr", "expected a number > 0, got -1"),
    ("unknown phase option", lambda: broken("training_phases[0].options", {"patiance": 3}),
     "training_phases[0].options.patiance", "unknown phase option (allowed: lr_schedule"),
    ("bad phase option value", lambda: broken("training_phases[0].options", {"lr_schedule": "cosin"}),
     "training_phases[0].options.lr_schedule", "'cosin' is not one of constant, linear, cosine"),
    ("empty list of model parts", lambda: broken("training_phases[0].params", []),
     "training_phases[0].params", "names no model part"),
    ("unknown model type", lambda: broken("model.type", "fcc"),
     "model.type", "'fcc' is not one of autoencoder, decoded, direct, fully_connected, multi_head"),
    ("misspelt model option", lambda: broken("model.options.hiden_dims", [3]),
     "model.options.hiden_dims", "unknown option for model 'fully_connected' (allowed: out_dim, hidden_dims"),
    ("bad model precision", lambda: broken("model.options.precision", "half"),
     "model.options.precision", "precision must be one of float32, bfloat16, auto (or bf16), got 'half'"),
    ("unknown activation", lambda: broken("model.options.activation", "relux"),
     "model.options.activation", "unknown activation 'relux' (one of relu, softplus"),
    ("option both flat and nested", lambda: broken("relations[0].n_neighbors", 5),
     "relations[0].n_neighbors", "given both flat and under options"),
    ("one field in two spellings", lambda: {**BASE, "training phases": BASE["training_phases"]},
     "training_phases", "given twice (under different spellings)"),
    ("learning rate in two spellings", lambda: broken("training_phases[0].optimizer.options.learning_rate", 0.1),
     "training_phases[0].optimizer.learning_rate", "given twice (as 'lr' and 'learning_rate')"),
    ("batch size in two places", lambda: broken("training_phases[0].batch_size", 10),
     "training_phases[0].batch_size", "given both here and under sampling"),
    ("element not a mapping", lambda: broken("relations[1]", 3),
     "relations[1]", "expected a mapping, got int (3)"),
    ("name not a string", lambda: broken("name", 3), "name", "expected a string, got 3"),
    ("non-mapping spec", lambda: [BASE], "spec", "expected a mapping, got list"),
    ("non-string key", lambda: broken("relations[0]", {**BASE["relations"][0], 1: "x"}),
     "relations[0]", "keys must be strings, got 1"),
]


@pytest.mark.parametrize("make, path, message", [case[1:] for case in CASES], ids=[case[0] for case in CASES])
def test_malformed_spec_names_location_and_problem(make, path, message):
    with pytest.raises(SpecError) as info:
        Spec.from_dict(make())
    error = info.value
    assert error.path == path
    assert message in error.problem
    assert str(error).startswith(f"{path}: ")


def test_there_are_at_least_25_distinct_cases():
    assert len({case[0] for case in CASES}) == len(CASES) >= 25
    assert len({(case[2], case[3]) for case in CASES}) == len(CASES)


# --------------------------------------------------------------------------- text and files
@pytest.mark.parametrize("text, message", [
    ("losses: [", "invalid YAML"),
    ("", "the spec is empty"),
    ("- a\n- b", "expected a mapping, got list"),
    ("just words", "expected a mapping, got str"),
])
def test_bad_yaml_text(text, message):
    with pytest.raises(SpecError, match=rf"^spec: {message}"):
        Spec.from_yaml(text)


def test_bad_json_text():
    with pytest.raises(SpecError, match=r"^spec: invalid JSON: Expecting property name"):
        Spec.from_json("{losses: 1}")


@pytest.mark.parametrize("name", ["missing.yaml", "missing.yml", "missing.json"])
def test_missing_file(tmp_path, name):
    path = tmp_path / name
    with pytest.raises(SpecError, match=rf"^spec: file not found: .*{name}$"):
        load_spec(path)
    with pytest.raises(SpecError, match=rf"^spec: file not found: .*{name}$"):
        load_spec(str(path))


def test_errors_in_a_file_name_the_location(tmp_path):
    path = tmp_path / "spec.yaml"
    path.write_text(yaml.safe_dump(broken("losses[1].keys.rels[0]", "pp")))
    with pytest.raises(SpecError, match=r"^losses\[1\]\.keys\.rels\[0\]: unknown relation 'pp' \(defined: p, q\)$"):
        load_spec(path)


# --------------------------------------------------------------------------- junk everywhere
JUNK = [None, 3, "x", [], {}]


def _paths(obj: Any, prefix: str = "") -> list[str]:
    out = []
    items = obj.items() if isinstance(obj, dict) else enumerate(obj) if isinstance(obj, list) else []
    for key, value in items:
        path = f"{prefix}[{key}]" if isinstance(key, int) else f"{prefix}.{key}" if prefix else key
        out.append(path)
        out.extend(_paths(value, path))
    return out


@pytest.mark.parametrize("path", _paths(BASE))
def test_junk_at_any_level_gives_only_spec_errors(path):
    for junk in JUNK:
        try:
            Spec.from_dict(broken(path, junk))
        except SpecError as error:
            assert error.path and error.problem
        # anything else (KeyError, TypeError, AttributeError, ...) fails the test


@pytest.mark.parametrize("junk", [*JUNK, 3.5, True, b"bytes", object()])
def test_junk_instead_of_a_spec(junk):
    with pytest.raises(SpecError):
        Spec.from_dict(junk)


@pytest.mark.parametrize("junk", [None, 3, "x", [], {}, "[1, 2]", "{a: 1}"])
def test_junk_text_instead_of_a_spec(junk):
    with pytest.raises(SpecError):
        load_spec(junk) if not isinstance(junk, str) else Spec.from_yaml(junk)


# --------------------------------------------------------------------------- fit-time problems
FIT_SPEC = """
relations:
  - {name: d, level: global, type: pdist, data: main}
  - {name: e, level: batch, type: pdist}
losses:
  - {name: mds, type: relation, func: mse, keys: {rels: [d, e]}}
training_phases:
  - {epochs: 1, sampling: {type: item, batch_size: 50}, loss: {components: mds}}
"""


def _fit(spec: str | dict, data: Any) -> Routine:
    return Routine(spec, seed=0, device="cpu", verbose=False).fit(data)


def test_data_key_missing_from_the_dataset(digits):
    X, _ = digits
    spec = FIT_SPEC.replace("data: main", "data: features")
    with pytest.raises(DataError, match=r"reads dataset key\(s\) features but the dataset has only main"):
        _fit(spec, X[:60])


def test_loss_data_key_missing_from_the_dataset(digits):
    X, _ = digits
    spec = """
losses:
  - {name: cls, type: classification, keys: {data: [labels]}}
training_phases:
  - {epochs: 1, loss: {components: cls}}
model: {type: multi_head, options: {n_classes: 10}}
"""
    with pytest.raises(DataError, match=r"reads dataset key\(s\) labels but the dataset has only main"):
        _fit(spec, X[:60])


def test_unknown_activation_is_a_spec_error(digits):
    X, _ = digits
    spec = FIT_SPEC + "model: {type: fully_connected, options: {activation: swishy}}\n"
    with pytest.raises(SpecError, match=r"^model\.options\.activation: unknown activation 'swishy'"):
        _fit(spec, X[:60])


def test_data_function_option_that_does_not_fit_the_data(digits):
    X, _ = digits
    spec = FIT_SPEC + "derived_data: [{name: pca, func: pca, options: {n_components: 500}}]\n"
    with pytest.raises(SpecError, match=r"^derived_data\[0\]\.options: data function 'pca': n_components \(500\)"):
        _fit(spec, X[:60])


def test_errors_keep_their_type_hierarchy():
    """One exception type for spec problems, still a ValueError for generic handlers."""
    with pytest.raises(ValueError):
        Spec.from_dict({})
    error = SpecError("a.b", "c")
    assert (str(error), error.path, error.problem) == ("a.b: c", "a.b", "c")


def test_saved_specs_skip_the_optimizer_trial_but_training_still_checks():
    """``without_optimizer_trials`` (used when loading a trained routine) keeps the checks of
    option names and types and skips only the trial construction; training makes the trial
    anyway."""
    import numpy as np

    from paradime_core import Routine
    from paradime_core.spec.blocks import without_optimizer_trials

    raw = broken("training_phases[0].optimizer.options.betas", [2.0, 0.9])
    with without_optimizer_trials():
        spec = Spec.from_dict(raw)  # accepted: the trial is what catches bad betas
        with pytest.raises(SpecError, match=r"training_phases\[0\].optimizer.options.lr: expected a number > 0"):
            Spec.from_dict(broken("training_phases[0].optimizer.options.lr", -1))
    with pytest.raises(SpecError, match="Invalid beta parameter"):
        Spec.from_dict(raw)  # outside the context the trial runs again
    X = np.random.default_rng(0).normal(size=(60, 5)).astype(np.float32)
    with pytest.raises(SpecError, match=r"training_phases\[0\].optimizer.options: optimizer 'adam': Invalid beta"):
        Routine(spec, seed=0, verbose=False).fit({"main": X})
