"""ONNX export of every built-in model kind: onnxruntime's output equals torch's inference."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from paradime_core.export import float32_transform
from paradime_core.export.onnx import OPSET, export_onnx, read_metadata, run_onnx
from paradime_core.models import AutoEncoder, Direct, FullyConnected, MultiHead

WIDTH = 12


@pytest.fixture(scope="module")
def rows() -> np.ndarray:
    return np.random.default_rng(0).normal(size=(257, WIDTH)).astype(np.float32)


def _fitted(model: torch.nn.Module, rows: np.ndarray) -> torch.nn.Module:
    torch.manual_seed(0)
    if model.needs_fit:
        model.fit_front(rows)
    return model.eval()


def _torch(model: torch.nn.Module, rows: np.ndarray, method: str = "embed") -> np.ndarray:
    with torch.no_grad():
        return getattr(model, method)(torch.as_tensor(rows)).numpy()


def _front_model(precision: str = "float32") -> FullyConnected:
    return FullyConnected(WIDTH, 2, hidden_dims=[16, 8], input_scale=0.5, pca_components=6,
                          input_noise=0.4, precision=precision)


def test_fully_connected_with_front_layers(tmp_path, rows):
    model = _fitted(_front_model(), rows)
    path = export_onnx(model, tmp_path / "fc.onnx")
    got = run_onnx(path, rows)
    np.testing.assert_allclose(got, _torch(model, rows), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(run_onnx(path, rows[:1]), got[:1], rtol=1e-6, atol=1e-6)  # dynamic batch


def test_noise_is_off_and_the_model_is_untouched(tmp_path, rows):
    model = _fitted(_front_model(), rows)
    model.train()
    export_onnx(model, tmp_path / "fc.onnx")
    assert model.training  # the export works on a copy
    model.eval()
    first, second = (run_onnx(tmp_path / "fc.onnx", rows) for _ in range(2))
    np.testing.assert_array_equal(first, second)


def test_bfloat16_layers_export_as_float32(tmp_path, rows):
    model = _fitted(_front_model("bfloat16"), rows)
    path = export_onnx(model, tmp_path / "bf16.onnx")
    got = run_onnx(path, rows)
    np.testing.assert_allclose(got, float32_transform(model, rows), rtol=1e-5, atol=1e-5)
    assert model.precision == "bfloat16"
    bf16 = _torch(model, rows)  # bfloat16 products: close, not equal
    assert np.abs(got - bf16).max() < 0.05 * (np.abs(bf16).max() + 1)


def test_multi_head_exports_embedding_by_default_and_other_heads_on_request(tmp_path, rows):
    model = _fitted(MultiHead(WIDTH, 2, n_classes=4, hidden_dims=[16], pca_components=5), rows)
    embed = export_onnx(model, tmp_path / "embed.onnx")
    classify = export_onnx(model, tmp_path / "classify.onnx", method="classify")
    np.testing.assert_allclose(run_onnx(embed, rows), _torch(model, rows), rtol=1e-5, atol=1e-5)
    logits = run_onnx(classify, rows)
    assert logits.shape == (len(rows), 4)
    np.testing.assert_allclose(logits, _torch(model, rows, "classify"), rtol=1e-5, atol=1e-5)
    assert read_metadata(classify)["paradime.method"] == "classify"


def test_autoencoder_encode_and_decode(tmp_path, rows):
    model = _fitted(AutoEncoder(WIDTH, 3, hidden_dims=[10], input_scale=2.0), rows)
    encode = export_onnx(model, tmp_path / "enc.onnx")
    codes = run_onnx(encode, rows)
    np.testing.assert_allclose(codes, _torch(model, rows, "encode"), rtol=1e-5, atol=1e-5)
    decode = export_onnx(model, tmp_path / "dec.onnx", method="decode")
    np.testing.assert_allclose(run_onnx(decode, codes), _torch(model, codes, "decode"), rtol=1e-5, atol=1e-5)
    assert read_metadata(decode)["paradime.input_width"] == "3"


def test_direct_model_exports_its_coordinate_table(tmp_path):
    torch.manual_seed(0)
    model = Direct(50, 2, init=np.arange(100, dtype=np.float32).reshape(50, 2))
    path = export_onnx(model, tmp_path / "direct.onnx", train_embedding=model.coordinates.weight.detach().numpy())
    idx = np.array([0, 7, 49], dtype=np.int64)
    np.testing.assert_array_equal(run_onnx(path, idx), model.coordinates.weight.detach().numpy()[idx])
    assert read_metadata(path)["paradime.input_dtype"] == "int64"


def test_metadata_says_what_a_consumer_needs(tmp_path, rows):
    model = _fitted(_front_model(), rows)
    names = [f"f{i}" for i in range(WIDTH)]
    train = _torch(model, rows)
    path = export_onnx(model, tmp_path / "m.onnx", spec={"name": "tiny"}, feature_names=names, train_embedding=train)
    meta = read_metadata(path)
    assert json.loads(meta["paradime.spec"]) == {"name": "tiny"}
    assert meta["paradime.input_width"] == str(WIDTH) and meta["paradime.output_width"] == "2"
    assert json.loads(meta["paradime.feature_names"]) == names
    bounds = json.loads(meta["paradime.embedding_bounds"])
    np.testing.assert_allclose(bounds, np.stack([train.min(0), train.max(0)], 1), rtol=1e-6)
    assert meta["paradime.opset"] == str(OPSET)
    import onnx

    proto = onnx.load(str(path))
    assert proto.producer_name == "paradime"
    assert any(op.version == OPSET for op in proto.opset_import if op.domain in ("", "ai.onnx"))


def test_wrong_feature_names_and_unknown_method_are_refused(tmp_path, rows):
    from paradime_core.errors import SpecError

    model = _fitted(_front_model(), rows)
    with pytest.raises(SpecError, match="3 feature names for an input of width 12"):
        export_onnx(model, tmp_path / "m.onnx", feature_names=["a", "b", "c"])
    with pytest.raises(SpecError, match="no method 'classify'"):
        export_onnx(model, tmp_path / "m.onnx", method="classify")
    assert not (tmp_path / "m.onnx").exists()


def test_routine_to_onnx_matches_transform(tmp_path, digits):
    from paradime_core import ParametricMDS

    X, _ = digits
    mds = ParametricMDS(n_epochs=2, random_state=0).fit(X[:120])
    routine = mds.routine_
    path = routine.to_onnx(tmp_path / "mds.onnx", X_train=X[:120])
    np.testing.assert_allclose(run_onnx(path, X), routine.transform(X), rtol=1e-4, atol=1e-5)
    assert json.loads(read_metadata(path)["paradime.spec"])["relations"]


@pytest.mark.parametrize("spec_name, methods", [
    ("classifier", ["embed", "classify"]),
    ("autoencoder", ["embed", "encode"]),
    ("umap", ["embed"]),
])
def test_bundled_specs_export_what_transform_gives(tmp_path, digits, spec_name, methods):
    """Each bundled model kind, fitted briefly: ONNX equals the routine's transform (bfloat16
    layers: equals the float32 inference, and transform to bfloat16 rounding)."""
    import re
    from pathlib import Path

    from paradime_core import Routine, load_spec

    text = (Path(__file__).parents[1] / "specs" / f"{spec_name}.yaml").read_text()
    text = re.sub(r"epochs: \d+", "epochs: 1", text)
    text = re.sub(r"batches_per_epoch: \d+", "batches_per_epoch: 2", text)
    X, y = digits
    routine = Routine(load_spec(text), seed=0).fit({"main": X, "labels": y})
    for method in methods:
        path = routine.to_onnx(tmp_path / f"{spec_name}-{method}.onnx", method=method, X_train=X)
        got = run_onnx(path, X)
        np.testing.assert_allclose(got, float32_transform(routine.model_, X, method), rtol=1e-4, atol=1e-5)
        expected = routine.transform(X, method=method)
        if getattr(routine.model_, "precision", "float32") == "float32":
            np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-5)
        else:
            assert np.abs(got - expected).max() <= 0.02 * (np.abs(expected).max() + 1)
