"""The estimators as scikit-learn users meet them: load, errors, feature names, output
containers, the parameter names umap-learn users know, supervision and inversion."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest
from sklearn.exceptions import NotFittedError

from paradime_core import (
    DataError,
    ParametricIsomap,
    ParametricLargeVis,
    ParametricMDS,
    ParametricTSNE,
    ParametricUMAP,
)

TINY = dict(n_epochs=2, batches_per_epoch=3, batch_size=100, hidden_dims=(16,), pca_components=10)
SETTINGS = {
    ParametricUMAP: dict(**TINY, n_neighbors=10, init="random"),
    ParametricLargeVis: dict(**TINY, perplexity=10.0, init="random"),
    ParametricTSNE: dict(**TINY, perplexity=10.0),
    ParametricMDS: dict(n_epochs=2, batch_size=50, hidden_dims=(8,)),
    ParametricIsomap: dict(n_epochs=2, batch_size=50, hidden_dims=(8,), n_neighbors=15),
}


def tiny(cls, **overrides):
    return cls(**{**SETTINGS[cls], **overrides})


@pytest.mark.parametrize("cls", list(SETTINGS), ids=lambda cls: cls.__name__)
def test_load_returns_the_same_fitted_estimator(cls, digits, tmp_path):
    X, _ = digits
    fitted = tiny(cls, transform_batch_size=64).fit(X)
    loaded = cls.load(fitted.save(tmp_path / "model.pt"))
    assert type(loaded) is cls
    assert loaded.get_params() == fitted.get_params()
    assert loaded.n_features_in_ == X.shape[1]
    np.testing.assert_array_equal(loaded.transform(X), fitted.transform(X))
    np.testing.assert_array_equal(loaded.transform(X.astype(np.float64)), fitted.transform(X.astype(np.float64)))
    assert loaded.loss_history_ == fitted.loss_history_


def test_load_refuses_another_estimators_file(digits, tmp_path):
    X, _ = digits
    path = tiny(ParametricTSNE).fit(X).save(tmp_path / "tsne.pt")
    with pytest.raises(DataError, match="holds a ParametricTSNE, not a ParametricUMAP"):
        ParametricUMAP.load(path)


def test_load_names_parameters_the_class_no_longer_takes(digits, tmp_path):
    """A file of ParametricLargeVis on UMAP's graph (``n_neighbors``) is one clear error, no TypeError."""
    X, _ = digits
    fitted = tiny(ParametricLargeVis).fit(X)
    params = fitted.get_params()
    fitted.get_params = lambda deep=True: {**params, "n_neighbors": 15, "min_dist": 0.1}
    path = fitted.save(tmp_path / "largevis.pt")
    with pytest.raises(DataError, match=r"no longer takes \(min_dist, n_neighbors\); refit it"):
        ParametricLargeVis.load(path)


def test_unfitted_estimator_raises_not_fitted(digits, tmp_path):
    X, _ = digits
    umap = tiny(ParametricUMAP)
    for call in (lambda: umap.transform(X), lambda: umap.save(tmp_path / "x.pt"), lambda: umap.loss_history_,
                 lambda: umap.inverse_transform(X[:, :2])):
        with pytest.raises(NotFittedError):
            call()


def test_transform_names_the_rows_holding_nan_or_inf(digits):
    X, _ = digits
    umap = tiny(ParametricUMAP).fit(X)
    bad = X[:20].copy()
    bad[3, 5] = np.nan
    bad[17, 0] = np.inf
    with pytest.raises(ValueError, match=r"^X: 2 row\(s\) contain NaN or inf: row\(s\) 3, 17$"):
        umap.transform(bad)
    with pytest.raises(ValueError, match="Input X contains NaN"):
        tiny(ParametricUMAP).fit(bad)


def test_dataframe_input_sets_feature_names_without_warnings(digits):
    X, _ = digits
    frame = pd.DataFrame(X, columns=[f"pixel{i}" for i in range(X.shape[1])])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        umap = tiny(ParametricUMAP).fit(frame)
        embedding = umap.transform(frame)
    assert list(umap.feature_names_in_) == list(frame.columns)
    assert list(umap.get_feature_names_out()) == ["parametricumap0", "parametricumap1"]
    with pytest.warns(UserWarning, match="X does not have valid feature names"):
        np.testing.assert_array_equal(embedding, umap.transform(X))
    with pytest.raises(ValueError, match="feature names"):
        umap.transform(frame.rename(columns={"pixel0": "other"}))


def test_set_output_gives_a_dataframe(digits):
    X, _ = digits
    umap = tiny(ParametricUMAP, n_components=3).set_output(transform="pandas")
    out = umap.fit_transform(X)
    assert isinstance(out, pd.DataFrame)
    assert list(out.columns) == ["parametricumap0", "parametricumap1", "parametricumap2"]
    assert isinstance(umap.transform(X[:5]), pd.DataFrame)


def test_output_dtype_follows_the_input(digits):
    X, _ = digits
    umap = tiny(ParametricUMAP, precision="float32").fit(X)  # bfloat16 layers round to ~1e-2
    assert umap.embedding_.dtype == np.float32 and umap.transform(X).dtype == np.float32
    as_double = umap.transform(X.astype(np.float64))
    assert as_double.dtype == np.float64
    np.testing.assert_allclose(as_double, umap.transform(X), atol=1e-5)
    assert umap.transform(np.rint(X * 10).astype(np.int64)).dtype == np.float64


def test_sparse_input_is_refused_with_a_hint(digits):
    import scipy.sparse as sp

    X, _ = digits
    with pytest.raises(TypeError, match=r"Sparse data was passed.*toarray"):
        tiny(ParametricUMAP).fit(sp.csr_array(X))


# --------------------------------------------------------------------------- names users know
def test_epochs_is_a_deprecated_alias_of_n_epochs(digits):
    X, _ = digits
    with pytest.warns(FutureWarning, match="'epochs' is deprecated, use 'n_epochs'"):
        old = tiny(ParametricUMAP, n_epochs=5, epochs=2).fit(X)
    new = tiny(ParametricUMAP, n_epochs=2).fit(X)
    np.testing.assert_array_equal(old.embedding_, new.embedding_)
    assert len(new.loss_history_["embedding"]["embedding"]) == 2


@pytest.mark.parametrize("cls", [ParametricUMAP, ParametricTSNE, ParametricMDS, ParametricIsomap],
                         ids=lambda cls: cls.__name__)
def test_metric_reaches_the_relation_and_unknown_metrics_are_refused(cls, digits):
    X, _ = digits
    cosine = tiny(cls, metric="cosine")
    assert cosine.build_spec(*X.shape).relations[0].options["metric"] == "cosine"
    assert np.isfinite(cosine.fit_transform(X)).all()
    with pytest.raises(ValueError, match=r"^metric must be one of euclidean, sqeuclidean, cosine .*got 'manhattan'"):
        tiny(cls, metric="manhattan").fit(X)


def test_n_jobs_sets_the_threads_during_fit_only(digits, monkeypatch):
    import torch

    from paradime_core.routine import Routine

    X, _ = digits
    seen = []
    original = Routine.run_phase
    monkeypatch.setattr(Routine, "run_phase",
                        lambda self, *args, **kw: seen.append(torch.get_num_threads()) or original(self, *args, **kw))
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        umap = tiny(ParametricUMAP, n_jobs=1).fit(X)
        assert seen == [1] and torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)
    assert umap.build_spec(*X.shape).relations[0].options["n_threads"] == 1
    with pytest.raises(ValueError, match="n_jobs must be a non-zero integer or None, got 0"):
        tiny(ParametricUMAP, n_jobs=0).fit(X)


def test_verbose_shows_a_progress_bar_per_phase(digits, capsys):
    X, _ = digits
    tiny(ParametricUMAP, verbose=True).fit(X)
    assert "embedding" in capsys.readouterr().err
    tiny(ParametricUMAP).fit(X)
    assert capsys.readouterr().err == ""


def test_plots_at_the_top_level(digits, tmp_path):
    import paradime_core

    X, y = digits
    umap = tiny(ParametricUMAP).fit(X)
    figure = paradime_core.plot(umap, labels=y, path=tmp_path / "embedding.png")
    assert len(figure.axes[0].collections[0].get_offsets()) == len(X)
    assert (tmp_path / "embedding.png").stat().st_size > 0
    history = paradime_core.plot_loss_history(umap, path=tmp_path / "loss.png")
    assert history.axes[0].get_xlabel() == "epoch" and (tmp_path / "loss.png").exists()
    assert umap.plot_loss_history().axes[0].lines


# --------------------------------------------------------------------------- inverse_transform
def test_decoder_inverts_the_embedding_and_round_trips(digits, tmp_path):
    """decoder=True trains a decoder head beside the embedding: inverse_transform maps the
    embedding back closer to the rows than their mean is; a saved model inverts the same."""
    X, _ = digits
    umap = tiny(ParametricUMAP, decoder=True, n_epochs=5, batches_per_epoch=10, hidden_dims=(64,)).fit(X)
    assert "reconstruction" in umap.loss_history_["embedding"]
    back = umap.inverse_transform(umap.embedding_)
    assert back.shape == X.shape and back.dtype == np.float32
    assert np.mean((back - X) ** 2) < 0.9 * np.mean((X - X.mean(axis=0)) ** 2)
    loaded = ParametricUMAP.load(umap.save(tmp_path / "umap.pt"))
    np.testing.assert_array_equal(loaded.inverse_transform(umap.embedding_), back)
    assert umap.inverse_transform(umap.embedding_.astype(np.float64)).dtype == np.float64
    with pytest.raises(ValueError, match=r"expects an \(n, 2\) embedding, got shape \(3, 5\)"):
        umap.inverse_transform(np.zeros((3, 5)))
    with pytest.raises(ValueError, match="fitted without a decoder: fit with decoder=True"):
        tiny(ParametricUMAP).fit(X).inverse_transform(umap.embedding_)


def test_load_reads_a_file_written_before_n_epochs(digits, tmp_path):
    """Files saved by the earlier recipes: parameters with 'epochs', no n_features_in."""
    X, _ = digits
    umap = tiny(ParametricUMAP).fit(X)
    params = {key: value for key, value in umap.get_params().items() if key != "n_epochs"}
    path = umap.routine_.save(tmp_path / "old.pt", metadata={"recipe": "ParametricUMAP",
                                                            "params": {**params, "epochs": 2}})
    loaded = ParametricUMAP.load(path)
    assert loaded.n_epochs == 2 and loaded.epochs is None and loaded.n_features_in_ == X.shape[1]
    np.testing.assert_array_equal(loaded.transform(X), umap.transform(X))
