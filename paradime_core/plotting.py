"""Figures of embeddings and loss histories (matplotlib, no pyplot state).

Every function builds a :class:`matplotlib.figure.Figure` directly (rendered by the Agg
canvas), so nothing registers with pyplot's global figure manager and nothing leaks in
long-running processes; pass ``path`` to also write a PNG.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib import colormaps
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

MAX_LEGEND_CLASSES = 20


def save_png(fig: Figure, path: str | Path, dpi: int = 150) -> Path:
    """Write ``fig`` as a PNG (parent folders created) and return the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, format="png", dpi=dpi, bbox_inches="tight")
    return path


def auto_point_size(n: int) -> float:
    """Marker area in pt^2: ``clip(500 / sqrt(n), 0.2, 30)`` (30 at 100 items, 1.9 at 70k)."""
    return float(np.clip(500.0 / np.sqrt(max(n, 1)), 0.2, 30.0))


def _is_categorical(labels: np.ndarray) -> bool:
    if labels.dtype.kind in "biuUSOM":
        return True
    finite = labels[np.isfinite(labels)]
    return bool(np.all(finite == np.round(finite)) and len(np.unique(finite)) <= MAX_LEGEND_CLASSES)


def _class_colors(n_classes: int) -> np.ndarray:
    if n_classes <= 10:
        return np.asarray(colormaps["tab10"].colors)[:n_classes]
    if n_classes <= 20:
        return np.asarray(colormaps["tab20"].colors)[:n_classes]
    return colormaps["turbo"](np.linspace(0.05, 0.95, n_classes))[:, :3]


def scatter(
    embedding: np.ndarray,
    labels: np.ndarray | Sequence[Any] | None = None,
    path: str | Path | None = None,
    title: str | None = None,
    point_size: float | None = None,
    legend: bool = True,
    ax: Axes | None = None,
) -> Figure:
    """Scatter plot of the first two embedding dimensions.

    Categorical labels (integers, strings, or integer-valued floats with at most 20 values)
    get one colour per class and, for at most 20 classes, a legend; continuous labels a
    colourbar. Points are drawn in a fixed random order so no class hides another. With
    ``ax`` the plot goes into that axes and its figure is returned.
    """
    points = np.asarray(embedding, dtype=np.float64)
    if points.ndim != 2 or points.shape[1] < 2:
        raise ValueError(f"scatter needs an (n, >=2) embedding, got shape {points.shape}")
    n = points.shape[0]
    size = auto_point_size(n) if point_size is None else float(point_size)
    if ax is None:
        fig = Figure(figsize=(7, 6), layout="constrained")
        ax = fig.add_subplot()
    else:
        fig = ax.figure
    order = np.random.default_rng(0).permutation(n)
    common = {"s": size, "linewidths": 0, "rasterized": n > 20000}
    if labels is None:
        ax.scatter(points[order, 0], points[order, 1], color="tab:blue", **common)
    else:
        values = np.asarray(labels)
        if values.shape[0] != n:
            raise ValueError(f"labels has {values.shape[0]} entries for {n} points")
        values = values.reshape(n)
        if _is_categorical(values):
            classes, codes = np.unique(values, return_inverse=True)
            colors = _class_colors(len(classes))
            ax.scatter(points[order, 0], points[order, 1], c=colors[codes[order]], **common)
            if legend and len(classes) <= MAX_LEGEND_CLASSES:
                handles = [Line2D([], [], marker="o", linestyle="", color=colors[i], label=str(c))
                           for i, c in enumerate(classes)]
                ax.legend(handles=handles, loc="center left", bbox_to_anchor=(1.0, 0.5),
                          frameon=False, markerscale=1.2, fontsize="small")
        else:
            values = values.astype(np.float64)
            mappable = ax.scatter(points[order, 0], points[order, 1], c=values[order],
                                  cmap="viridis", **common)
            if legend:
                fig.colorbar(mappable, ax=ax)
    ax.set_aspect("equal", adjustable="datalim")
    ax.set_xticks([])
    ax.set_yticks([])
    if title:
        ax.set_title(title)
    if path is not None:
        save_png(fig, path)
    return fig


def plot(
    embedding: Any,
    labels: np.ndarray | Sequence[Any] | None = None,
    path: str | Path | None = None,
    **options: Any,
) -> Figure:
    """Scatter plot of an embedding array or of a fitted estimator's ``embedding_``.

    ``labels`` colour the points (see :func:`scatter`, which takes the other ``options``:
    ``title``, ``point_size``, ``legend``, ``ax``); ``path`` also writes a PNG.
    """
    points = getattr(embedding, "embedding_", embedding)
    if hasattr(points, "to_numpy"):  # a DataFrame from set_output(transform="pandas")
        points = points.to_numpy()
    return scatter(points, labels=labels, path=path, **options)


def _phases(history: Mapping[str, Any]) -> dict[str, dict[str, list[float]]]:
    """Normalise a flat ``{component: values}`` history to ``{phase: {component: values}}``."""
    if all(isinstance(v, Mapping) for v in history.values()):
        return {str(p): {str(c): list(map(float, vs)) for c, vs in comps.items()} for p, comps in history.items()}
    if any(isinstance(v, Mapping) for v in history.values()):
        raise ValueError("history must map phases to {component: values} or components to values, not a mix")
    return {"": {str(c): list(map(float, vs)) for c, vs in history.items()}}


def plot_loss_history(
    history: Mapping[str, Mapping[str, Sequence[float]]] | Mapping[str, Sequence[float]] | Any,
    path: str | Path | None = None,
    title: str | None = None,
    log_scale: bool | None = None,
) -> Figure:
    """Per-epoch loss means, phase after phase on one epoch axis.

    ``history`` is ``{phase: {component: [epoch means]}}`` (as a routine records it), a
    single phase's ``{component: [...]}``, or a fitted estimator (its ``loss_history_``). Each component keeps one colour across phases;
    ``total`` is drawn in black; dashed lines mark phase boundaries. ``log_scale=None``
    uses a log axis when all values are positive and span more than two decades.
    """
    phases = _phases(getattr(history, "loss_history_", history))
    fig = Figure(figsize=(8, 4.5), layout="constrained")
    ax = fig.add_subplot()
    names = sorted({c for comps in phases.values() for c in comps if c != "total"})
    palette = dict(zip(names, _class_colors(max(len(names), 1)), strict=False))
    offset = 0
    labelled: set[str] = set()
    all_values: list[float] = []
    for p_index, (phase, comps) in enumerate(phases.items()):
        length = max((len(v) for v in comps.values()), default=0)
        if p_index > 0:
            ax.axvline(offset + 0.5, color="0.6", linestyle="--", linewidth=0.8)
        if phase:
            ax.annotate(phase, xy=(offset + 1, 1.0), xycoords=("data", "axes fraction"),
                        va="bottom", fontsize="small", color="0.3")
        for comp, values in comps.items():
            if not values:
                continue
            epochs = np.arange(offset + 1, offset + len(values) + 1)
            style = {"color": "black", "linewidth": 2.2, "zorder": 1} if comp == "total" else {
                "color": palette[comp], "linewidth": 1.2, "zorder": 2}
            ax.plot(epochs, values, marker="o" if len(values) < 30 else None, markersize=3,
                    label=comp if comp not in labelled else None, **style)
            labelled.add(comp)
            all_values.extend(values)
        offset += length
    finite = np.asarray([v for v in all_values if np.isfinite(v)])
    if log_scale is None:
        log_scale = bool(finite.size and finite.min() > 0 and finite.max() / finite.min() > 100)
    if log_scale:
        ax.set_yscale("log")
    ax.set_xlabel("epoch")
    ax.set_ylabel("loss (epoch mean)")
    if labelled:
        ax.legend(fontsize="small", frameon=False)
    if title:
        ax.set_title(title, pad=14)
    if path is not None:
        save_png(fig, path)
    return fig


__all__ = ["auto_point_size", "plot", "plot_loss_history", "save_png", "scatter"]
