"""What the recipes share: the model section, the neighbour-embedding training set-up
(edge phase, initialisation, perplexity graph), shared defaults and parameter docs."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from paradime_core.estimator import ParametricEstimator


def _model_section(estimator: Any, in_dim: int) -> dict[str, Any]:
    options: dict[str, Any] = {
        "out_dim": estimator.n_components,
        "hidden_dims": list(estimator.hidden_dims),
        "activation": estimator.activation,
    }
    pca = getattr(estimator, "pca_components", None)
    if pca and pca < in_dim:
        options["pca_components"] = int(pca)
    if getattr(estimator, "dropout", 0.0):
        options["dropout"] = float(estimator.dropout)
    precision = getattr(estimator, "precision", "float32")
    if precision not in (None, "float32"):
        options["precision"] = precision
    return {"type": "fully_connected", "options": options}


class _NeighborEmbedding(ParametricEstimator):
    """Shared training set-up of the neighbour-embedding recipes (t-SNE, UMAP, LargeVis).

    Training samples positive edges of the kNN graph in proportion to their weight, with
    ``neg_rate`` negative edges each, and takes ``n_epochs * batches_per_epoch`` Adam steps with
    a linearly decaying learning rate. The network reads the data through a frozen PCA layer
    and, in training only, Gaussian input noise: a smoothness regulariser that narrows the
    gap between training and held-out quality. Their parameters are listed in
    :data:`NEIGHBOR_EMBEDDING_PARAMETERS`.
    """

    graph_relation = "p"

    def _model_and_phase(self, in_dim: int, loss: str, batch_size: int | None = None
                         ) -> tuple[dict[str, Any], dict[str, Any]]:
        """The model section and the edge-sampled embedding phase (``batch_size`` positives a step)."""
        model = _model_section(self, in_dim)
        if self.input_noise:
            model["options"]["input_noise"] = float(self.input_noise)
        phase = {
            "name": "embedding", "epochs": self.resolved_n_epochs(),
            "sampling": {"type": "edge", "rels": "p", "batch_size": batch_size or self.batch_size,
                         "neg_rate": self.neg_rate,
                         "batches_per_epoch": self.batches_per_epoch, "negatives": self.negatives},
            "loss": {"components": [loss]},
            "optimizer": {"type": "adam", "options": {"lr": self.lr}},
            "options": {"lr_schedule": "linear"},
        }
        if self.negatives == "shared":
            phase["sampling"]["group_size"] = int(self.negative_group_size)
        if self.pool_size is not None:  # the sampler reads it only for negatives="pool"
            phase["sampling"]["pool_size"] = int(self.pool_size)
        if self.edges_per_source != 1:
            phase["sampling"]["edges_per_source"] = self.edges_per_source
        if self.ema is not None:
            phase["options"]["ema"] = float(self.ema)
        return model, phase

    def _init_section(self, n_items: int, init: str) -> tuple[list[dict[str, Any]], list[dict[str, Any]],
                                                              list[dict[str, Any]]]:
        """Derived data, losses and phases of the initialisation ``init`` (empty for ``random``)."""
        if init not in UMAP_INITS:
            raise ValueError(f"init must be one of {', '.join(UMAP_INITS)}, got {init!r}")
        if init == "random" or n_items <= self.n_components + 1:
            return [], [], []
        source = ({"func": "pca", "keys": [["data", "main"]]} if init == "pca"
                  else {"func": "spectral", "keys": [["rels", "p"]]})
        derived = [{"name": "init", **source, "options": {"n_components": self.n_components}}]
        losses = [{"name": "init", "type": "position", "func": "mse", "keys": {"data": ["init"]}}]
        phases = [{"name": "init", "epochs": 2,
                   "sampling": {"type": "item", "batch_size": INIT_BATCH_SIZE, "batches_per_epoch": INIT_STEPS // 2},
                   "loss": {"components": ["init"]}, "optimizer": {"type": "adam", "options": {"lr": self.lr}}}]
        return derived, losses, phases

    def _perplexity_graph(self, n_items: int, normalize: bool = False) -> dict[str, Any]:
        """t-SNE's P: kNN rows calibrated to ``self.perplexity`` (at most ``(n - 1) / 3``), symmetrised."""
        perplexity = min(self.perplexity, max((n_items - 1) / 3.0, 1.0))
        transforms = [{"type": "perplexity", "options": {"perplexity": perplexity}}, {"type": "symmetrize"}]
        return {"name": "p", "level": "global", "type": "neighbor", "options": self._knn_options(),
                "transforms": transforms + ([{"type": "normalize"}] if normalize else [])}


UMAP_INITS = ("pca", "spectral", "random")
INIT_STEPS = 200
INIT_BATCH_SIZE = 1024


def check_density_options(densmap: Any, dens_lambda: Any, dens_frac: Any, dens_var_shift: Any) -> None:
    """Refuse densMAP options outside their ranges, naming the parameter (as umap-learn does)."""
    if not isinstance(densmap, (bool, np.bool_)):
        raise ValueError(f"densmap must be True or False, got {densmap!r}")
    for name, value, low, high in (("dens_lambda", dens_lambda, 0.0, math.inf), ("dens_frac", dens_frac, 0.0, 1.0),
                                   ("dens_var_shift", dens_var_shift, 0.0, math.inf)):
        if isinstance(value, bool) or not isinstance(value, (int, float, np.number)) or not low <= value <= high:
            bounds = f"in [{low:g}, {high:g}]" if high < math.inf else f">= {low:g}"
            raise ValueError(f"{name} must be a number {bounds}, got {value!r}")


_SHARED_DEFAULTS = dict(
    batches_per_epoch=100, batch_size=4096, lr=0.01, hidden_dims=(96,) * 6, activation="relu",
    pca_components=50, input_noise=1.0, negatives="pool", negative_group_size=64, pool_size=None, edges_per_source=1,
    ema=None, precision="float32",
)

#: Where and how every recipe runs (numpydoc), appended to the recipes' docstrings.
RUN_PARAMETERS = """    metric : str
        Distance of the kNN or pairwise relation: ``euclidean``, ``sqeuclidean`` or ``cosine``.
    decoder : bool
        Also train a decoder head (reconstruction loss, no gradient into the embedding), for
        :meth:`inverse_transform` (:mod:`paradime_core.decoder`).
    device : str or None
        Torch device (None: CUDA when available, else the CPU).
    n_jobs : int or None
        Torch and kNN threads during fit and transform (None: unchanged; -1: all cores).
    verbose : bool
        Show a progress bar per training phase.
    transform_batch_size : int
        Rows embedded at once by :meth:`transform`.
    epochs : int, deprecated
        Former name of ``n_epochs``.
"""

#: The parameters the neighbour-embedding recipes share (numpydoc), appended to their docstrings.
NEIGHBOR_EMBEDDING_PARAMETERS = """
    n_epochs : int
        Training epochs of the embedding phase.
    batches_per_epoch : int
        Steps per epoch; one step draws ``batch_size`` positive edges.
    batch_size : int
        Positive edges per step.
    lr : float
        Adam's learning rate at the start; it decays linearly to 0 over the phase.
    hidden_dims : tuple of int
        Widths of the network's hidden layers.
    activation : str
        Activation of the hidden layers (``relu``, ``silu``, ``softplus``, ...).
    pca_components : int or None
        Width of the frozen PCA layer the network reads the data through (None: no PCA layer).
    input_noise : float
        Length of the Gaussian input noise vector in training, in units of the median distance
        from a training item to its 15th nearest neighbour (0: none).
    negatives : str
        Where negatives come from: ``pool`` (a uniform pool of items per step), ``uniform``,
        ``batch`` (the step's own items) or ``shared`` (groups of positives share theirs).
    negative_group_size : int
        Positives per group that share their negatives (``negatives="shared"``).
    pool_size : int or None
        Items in the per-step pool (``negatives="pool"``; None: the sampler's default).
    edges_per_source : int or "auto"
        Positives drawn in runs of this many edges per source item (``auto``: runs of 8 on
        data of at least ``8 * batch_size`` items, single draws below).
    ema : float or None
        Decay of an exponential moving average of the parameters that ends training (None: off).
    precision : str
        Numeric precision of the hidden layers: ``float32``, ``bfloat16`` or ``auto``
        (bfloat16 where the hardware computes it natively).
    knn_method : str
        kNN backend: ``auto``, ``faiss_exact``, ``faiss_hnsw`` or ``pynndescent``.
    target_metric : str
        How ``fit(X, y)`` compares labels: ``categorical`` or a distance for numeric targets
        (:mod:`paradime_core.supervision`; ``-1`` marks an unlabelled row).
    target_weight : float
        Weight of the labels against the data's graph, in [0, 1] (0: labels ignored).
    random_state : int
        Seed of the network's initialisation, the sampling and the kNN search.
""" + RUN_PARAMETERS
