"""Ready-made models: shapes, named methods, parts, the direct model and config round trips."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from paradime_core.errors import SpecError
from paradime_core.models import (
    AutoEncoder,
    Direct,
    FullyConnected,
    GaussianNoise,
    MultiHead,
    activation_layer,
    parameters_of,
)
from paradime_core.models.layers import run_hidden_layers
from paradime_core.spec import ModelSpec
from paradime_core.spec.blocks import check_model
from paradime_core.spec.registry import MODELS


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


def test_fully_connected_shapes_and_layers():
    model = FullyConnected(in_dim=8, out_dim=3, hidden_dims=[16, 4], activation="relu")
    x = torch.randn(5, 8)
    out = model.embed(x)
    assert out.shape == (5, 3)
    assert torch.equal(model(x), out)  # forward is embed
    linears = [m for m in model.modules() if isinstance(m, torch.nn.Linear)]
    assert [(m.in_features, m.out_features) for m in linears] == [(8, 16), (16, 4), (4, 3)]
    assert model.parts == ["trunk", "embedding_head"]
    assert model.embedding_head is linears[-1]


def test_linear_model_is_affine():
    model = FullyConnected(in_dim=4, out_dim=2, hidden_dims=[])
    x = torch.randn(6, 4)
    w, b = model.embedding_head.weight, model.embedding_head.bias
    assert torch.allclose(model.embed(x), x @ w.T + b)


def test_input_is_flattened_and_scaled():
    model = FullyConnected(in_dim=12, hidden_dims=[], input_scale=0.5)
    images = torch.randint(0, 255, (3, 3, 4), dtype=torch.uint8)
    expected = model.embedding_head(images.reshape(3, 12).float() * 0.5)
    assert torch.allclose(model.embed(images), expected)


@pytest.mark.parametrize("name", ["relu", "softplus", "gelu", "silu", "swish", "tanh", "leaky_relu", "selu",
                                  "elu", "linear", "identity", "Leaky-ReLU"])
def test_activations_by_name(name):
    layer = activation_layer(name)
    assert layer(torch.zeros(2)).shape == (2,)


def test_bad_options_are_spec_errors_at_the_option():
    def check(kind: str, options: dict) -> str:
        with pytest.raises(SpecError) as info:
            check_model(ModelSpec(kind, options), "model")
        return str(info.value)

    assert check("fully_connected", {"activation": "swishy"}).startswith(
        "model.options.activation: unknown activation 'swishy'")
    assert check("fully_connected", {"hidden_dims": [4, 0]}) == (
        "model.options.hidden_dims: expected a list of integers >= 1 or an integer >= 1 or null, got [4, 0]")
    assert check("fully_connected", {"dropout": 1.5}) == (
        "model.options.dropout: expected a number >= 0 and < 1, got 1.5")
    assert check("multi_head", {"classify_from": "logits"}) == (
        "model.options.classify_from: expected one of trunk, embedding, got 'logits'")
    assert check("decoded", {"input_noise": -1}) == "model.options.input_noise: expected a number >= 0, got -1"
    assert check("direct", {"out_dim": True}) == "model.options.out_dim: expected an integer >= 1, got True"
    assert check_model(ModelSpec("fully_connected", {"hidden_dims": 8, "input_scale": 1}), "model") is FullyConnected


def test_multi_head_classify_from_trunk_and_embedding():
    x = torch.randn(7, 10)
    model = MultiHead(in_dim=10, out_dim=2, n_classes=4, hidden_dims=[8])
    assert model.embed(x).shape == (7, 2)
    assert model.classify(x).shape == (7, 4)
    assert model.classification_head[-1].in_features == 8
    assert model.parts == ["trunk", "embedding_head", "classification_head"]

    pli = MultiHead(in_dim=10, out_dim=2, n_classes=4, hidden_dims=[8], classify_from="embedding")
    assert pli.classification_head[-1].in_features == 2
    assert torch.allclose(pli.classify(x), pli.classification_head(pli.embed(x)))


def test_autoencoder_encode_decode():
    model = AutoEncoder(in_dim=6, out_dim=2, hidden_dims=[5, 3], output_activation="sigmoid")
    x = torch.randn(4, 6)
    z = model.encode(x)
    assert z.shape == (4, 2)
    assert torch.equal(model.embed(x), z)
    recon = model.decode(z)
    assert recon.shape == (4, 6)
    assert bool(((recon > 0) & (recon < 1)).all())
    dec = [m for m in model.decoder.modules() if isinstance(m, torch.nn.Linear)]
    assert [(m.in_features, m.out_features) for m in dec] == [(2, 3), (3, 5), (5, 6)]


def test_parameters_of_selects_parts():
    model = MultiHead(in_dim=5, hidden_dims=[4])
    assert len(parameters_of(model, None)) == len(list(model.parameters()))
    head = parameters_of(model, ["embedding_head"])
    assert [p.shape for p in head] == [torch.Size([2, 4]), torch.Size([2])]
    both = parameters_of(model, ["trunk", "classification_head"])
    ids = {id(p) for p in both}
    assert ids == {id(p) for p in model.trunk.parameters()} | {id(p) for p in model.classification_head.parameters()}


def test_parameters_of_unknown_part_lists_available():
    model = FullyConnected(in_dim=5)
    with pytest.raises(ValueError, match=r"'decoder'.*available: trunk, embedding_head"):
        parameters_of(model, ["trunk", "decoder"])


def test_direct_model_embeds_by_index():
    init = np.arange(12, dtype=np.float32).reshape(6, 2)
    model = Direct(n_items=6, out_dim=2, init=init)
    assert model.input_key == "index"
    assert model.n_items == 6
    idx = torch.tensor([4.0, 0.0, 5.0])  # float indices as the dataset stores them
    assert torch.equal(model.embed(idx), torch.tensor(init[[4, 0, 5]]))
    assert torch.equal(model(torch.tensor([[1], [2]])), torch.tensor(init[[1, 2]]))
    assert model.parts == ["coordinates"]
    assert len(parameters_of(model, ["coordinates"])) == 1


def test_direct_model_random_init_and_bad_init():
    model = Direct(n_items=1000, out_dim=2, init="random", in_dim=50)
    std = float(model.coordinates.weight.detach().std())
    assert 0.5e-4 < std < 2e-4
    with pytest.raises(ValueError, match="shape"):
        Direct(n_items=3, init=np.zeros((4, 2)))
    with pytest.raises(ValueError, match="init"):
        Direct(n_items=3, init="pca")


def test_direct_model_trains():
    model = Direct(n_items=4, out_dim=2)
    target = torch.randn(4, 2)
    optimizer = torch.optim.Adam(model.parameters(), lr=0.1)
    for _ in range(300):
        optimizer.zero_grad()
        loss = ((model.embed(torch.arange(4)) - target) ** 2).mean()
        loss.backward()
        optimizer.step()
    assert float(loss.detach()) < 1e-4


def test_pca_front_layer():
    rng = np.random.default_rng(0)
    data = rng.normal(size=(200, 6)) @ rng.normal(size=(6, 6))
    model = FullyConnected(in_dim=6, hidden_dims=[], pca_components=3)
    assert model.needs_pca
    with pytest.raises(RuntimeError, match="set_pca"):
        model.embed(torch.zeros(1, 6))
    model.fit_pca(data)
    assert not model.needs_pca
    from sklearn.decomposition import PCA

    ref = PCA(n_components=3).fit(data)
    projection = model.trunk[0]
    assert torch.allclose(projection.mean.double(), torch.tensor(ref.mean_), atol=1e-5)
    # axes equal up to sign
    cos = (projection.components.double() * torch.tensor(ref.components_)).sum(1).abs()
    assert torch.allclose(cos, torch.ones(3, dtype=torch.float64), atol=1e-5)
    assert model.embedding_head.in_features == 3
    assert list(model.trunk.parameters()) == []  # frozen: buffers only
    with pytest.raises(ValueError, match="set_pca expects"):
        model.set_pca(np.zeros(6), np.zeros((2, 6)))
    with pytest.raises(RuntimeError, match="no PCA front layer"):
        FullyConnected(in_dim=6).set_pca(np.zeros(6), np.zeros((2, 6)))


@pytest.mark.parametrize("name, options", [
    ("fully_connected", {"in_dim": 7, "hidden_dims": [9, 5], "batch_norm": True, "dropout": 0.1}),
    ("fc", {"in_dim": 7, "hidden_dims": [], "pca_components": 3, "input_scale": 0.1}),
    ("multi_head", {"in_dim": 7, "n_classes": 3, "classify_from": "embedding",
                    "classifier_hidden_dims": [4]}),
    ("autoencoder", {"in_dim": 7, "out_dim": 3}),
    ("direct", {"n_items": 11, "in_dim": 7}),
])
def test_config_round_trip(name, options):
    import json

    factory = MODELS.get(name)
    model = factory(n_items=11, **{k: v for k, v in options.items() if k != "n_items"})
    if name == "fc":
        model.set_pca(np.ones(7), np.eye(7)[:3])
    config = json.loads(json.dumps(model.config))  # plain JSON, no pickle
    rebuilt = MODELS.get(model.model_type)(**config)
    assert type(rebuilt) is type(model)
    assert rebuilt.config == model.config
    state = model.state_dict()
    assert list(rebuilt.state_dict()) == list(state)
    rebuilt.load_state_dict(state)
    model.eval()
    rebuilt.eval()
    x = torch.arange(3) if name == "direct" else torch.randn(3, 7)
    assert torch.equal(rebuilt.embed(x), model.embed(x))


def test_registered_names_and_aliases():
    for alias in ("fc", "mlp", "default", "fully connected"):
        assert MODELS.get(alias) is FullyConnected
    assert MODELS.get("direct") is Direct


def test_pca_front_layer_is_fitted_on_the_scaled_input():
    """input_scale runs before the PCA layer: the layer's mean and axes are those of scaled data."""
    from paradime_core.models import FullyConnected

    rng = np.random.default_rng(0)
    X = (rng.normal(size=(400, 12)) * np.arange(1, 13) + 100.0).astype(np.float32) * 255
    scaled = FullyConnected(in_dim=12, hidden_dims=[8], input_scale=1 / 255, pca_components=4)
    scaled.fit_pca(X)
    plain = FullyConnected(in_dim=12, hidden_dims=[8], pca_components=4)
    plain.fit_pca(X / 255)
    torch.manual_seed(0)
    probe = torch.as_tensor(X[:50])
    with torch.no_grad():
        front_scaled = scaled.trunk[:2](probe)
        front_plain = plain.trunk[0](probe / 255)
    torch.testing.assert_close(front_scaled, front_plain, rtol=1e-4, atol=1e-4)
    assert front_scaled.abs().mean() < 10  # centred: not the raw mean leaking through


def test_input_noise_unit_is_the_median_distance_to_the_15th_neighbour_over_sqrt_width():
    """input_noise is relative to the data's local scale: the same noise for data x 1000."""
    from paradime_core.models import FullyConnected, GaussianNoise

    rng = np.random.default_rng(1)
    X = rng.normal(size=(500, 9)).astype(np.float32)
    units = []
    for scale in (1.0, 1000.0):
        model = FullyConnected(in_dim=9, hidden_dims=[8], input_noise=0.5)
        assert model.needs_fit
        model.fit_front(X * scale)
        assert not model.needs_fit
        noise = next(m for m in model.modules() if isinstance(m, GaussianNoise))
        units.append(float(noise.unit) / scale)
    d = np.sqrt(((X[:, None, :] - X[None, :, :]) ** 2).sum(-1))
    expected = np.median(np.sort(d, axis=1)[:, 15]) / 3.0  # sqrt(9)
    assert units[0] == pytest.approx(expected, rel=2e-3)  # torch's median: the lower middle value
    assert units[1] == pytest.approx(units[0], rel=1e-4)


def test_bfloat16_precision_computes_the_hidden_layers_in_bfloat16_only():
    """precision=bfloat16: front layers (PCA) and the output stay float32; the hidden layers
    follow the float32 network to bfloat16 rounding."""
    data = torch.randn(200, 12)
    exact = FullyConnected(in_dim=12, hidden_dims=[32, 32], activation="relu", pca_components=6)
    exact.fit_pca(data.numpy())
    mixed = FullyConnected(in_dim=12, hidden_dims=[32, 32], activation="relu", pca_components=6,
                           precision="bf16")
    mixed.load_state_dict(exact.state_dict())
    assert mixed.config["precision"] == "bfloat16"
    out_exact, out_mixed = exact.embed(data), mixed.embed(data)
    assert out_mixed.dtype == torch.float32
    assert not torch.equal(out_exact, out_mixed)  # the hidden layers really ran in bfloat16
    scale = out_exact.abs().max()
    assert (out_mixed - out_exact).abs().max() < 0.05 * scale
    front = torch.nn.Sequential(mixed.trunk[0])
    assert torch.equal(run_hidden_layers(front, data, "bfloat16"), exact.trunk[0](data))
    with pytest.raises(ValueError, match=r"precision must be one of float32, bfloat16, auto \(or bf16\), got 'half'"):
        FullyConnected(in_dim=12, precision="half")


def test_input_noise_is_standard_normal_per_row_and_fresh_each_call():
    noise = GaussianNoise(0.5)
    noise.train()
    x = torch.zeros(20000, 6)
    torch.manual_seed(0)
    first, second = noise(x), noise(x)
    assert not torch.equal(first, second)
    eps = first / 0.5
    assert abs(float(eps.mean())) < 0.02
    assert abs(float(eps.std()) - 1.0) < 0.02
    assert abs(float(torch.corrcoef(eps.T)[0, 1])) < 0.03  # coordinates independent
    # every row is one bank row: rows repeat only as often as draws from the bank predict
    distinct = torch.unique(first, dim=0).shape[0]
    bank_rows = noise._bank.shape[0]
    expected = bank_rows * (1 - (1 - 1 / bank_rows) ** x.shape[0])
    assert abs(distinct - expected) < 0.02 * expected
    torch.manual_seed(0)
    again = GaussianNoise(0.5)
    again.train()
    assert torch.equal(again(x), first)  # seeded: reproducible
    noise.eval()
    assert torch.equal(noise(x), x)


def test_input_noise_bank_follows_width_and_stays_small():
    noise = GaussianNoise(1.0)
    noise.train()
    assert noise(torch.zeros(10, 4)).shape == (10, 4)
    assert noise(torch.zeros(10, 3000)).shape == (10, 3000)  # a new bank at the new width
    assert noise._bank.shape == (GaussianNoise.BANK_MIN_ROWS, 3000)
    assert noise(torch.zeros(5, 50, dtype=torch.float64)).dtype == torch.float64
    assert "_bank" not in FullyConnected(in_dim=4, hidden_dims=[3], input_noise=0.5).state_dict()
