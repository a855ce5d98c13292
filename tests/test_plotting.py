"""Plots write real PNG files and leave no pyplot state behind."""

from __future__ import annotations

import sys

import numpy as np
import pytest
from matplotlib.figure import Figure

from paradime_core.plotting import auto_point_size, plot_loss_history, save_png, scatter

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _is_png(path):
    data = path.read_bytes()
    return data[:8] == PNG_MAGIC and len(data) > 1000


@pytest.fixture
def embedding():
    return np.random.default_rng(0).normal(size=(500, 2))


def test_scatter_categorical_with_legend(tmp_path, embedding):
    labels = np.repeat(np.arange(5), 100)
    fig = scatter(embedding, labels, path=tmp_path / "sub" / "cat.png", title="five classes")
    assert isinstance(fig, Figure)
    assert _is_png(tmp_path / "sub" / "cat.png")
    ax = fig.axes[0]
    legend = ax.get_legend()
    assert [t.get_text() for t in legend.get_texts()] == ["0", "1", "2", "3", "4"]
    assert ax.get_title() == "five classes"
    colors = ax.collections[0].get_facecolors()
    assert len(np.unique(colors.round(6), axis=0)) == 5


def test_scatter_string_labels_and_many_classes(tmp_path, embedding):
    fig = scatter(embedding, np.array(list("abcde") * 100))
    assert len(fig.axes[0].get_legend().get_texts()) == 5
    many = scatter(embedding, np.arange(500) % 26)  # 26 classes: colours, no legend
    assert many.axes[0].get_legend() is None
    assert len(np.unique(many.axes[0].collections[0].get_facecolors().round(6), axis=0)) == 26


def test_scatter_continuous_has_colorbar(tmp_path, embedding):
    fig = scatter(embedding, embedding[:, 0], path=tmp_path / "cont.png")
    assert len(fig.axes) == 2  # plot + colourbar
    assert _is_png(tmp_path / "cont.png")


def test_scatter_into_given_axes_and_no_labels(embedding):
    fig = Figure()
    ax = fig.add_subplot(1, 2, 2)
    assert scatter(embedding, ax=ax, point_size=3) is fig
    assert ax.collections[0].get_sizes()[0] == 3


def test_scatter_checks_shapes(embedding):
    with pytest.raises(ValueError, match="embedding"):
        scatter(np.zeros(5))
    with pytest.raises(ValueError, match="labels"):
        scatter(embedding, np.zeros(3))


def test_auto_point_size_decreases():
    assert auto_point_size(100) == pytest.approx(30.0)
    assert auto_point_size(10_000) == pytest.approx(5.0)
    assert auto_point_size(70_000) < auto_point_size(10_000)


def test_plot_loss_history_phases(tmp_path):
    history = {
        "pca_init": {"init": [1.0, 0.5, 0.2], "total": [1.0, 0.5, 0.2]},
        "embedding": {"emb": [3.0, 2.0, 1.5, 1.2], "init": [0.3, 0.3, 0.3, 0.3],
                      "total": [3.3, 2.3, 1.8, 1.5]},
    }
    fig = plot_loss_history(history, path=tmp_path / "loss.png")
    assert _is_png(tmp_path / "loss.png")
    ax = fig.axes[0]
    lines = [line for line in ax.get_lines() if len(line.get_xdata()) > 2]
    assert len(lines) == 5
    emb = next(line for line in lines if line.get_label() == "emb")
    np.testing.assert_array_equal(emb.get_xdata(), [4, 5, 6, 7])  # second phase follows the first
    assert sorted(t.get_text() for t in ax.get_legend().get_texts()) == ["emb", "init", "total"]


def test_plot_loss_history_flat_and_log(tmp_path):
    fig = plot_loss_history({"kl": [100.0, 10.0, 0.5]}, path=tmp_path / "flat.png")
    assert fig.axes[0].get_yscale() == "log"
    assert _is_png(tmp_path / "flat.png")
    with pytest.raises(ValueError, match="mix"):
        plot_loss_history({"a": {"x": [1.0]}, "b": [1.0]})


def test_save_png_and_no_pyplot_state(tmp_path, embedding):
    fig = scatter(embedding)
    path = save_png(fig, tmp_path / "a" / "b.png")
    assert _is_png(path)
    pyplot = sys.modules.get("matplotlib.pyplot")
    if pyplot is not None:
        assert pyplot.get_fignums() == []
