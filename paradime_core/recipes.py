"""Predefined routines: thin recipes that build a spec, with a scikit-learn face.

Each class stores its parameters in ``__init__`` (scikit-learn convention), builds a
:class:`~paradime_core.spec.Spec` in :meth:`build_spec`, and fits a
:class:`~paradime_core.routine.Routine` from it. ``transform`` embeds any number of new
items in batches; learned state ends in ``_`` (``routine_``, ``embedding_``).

- :class:`ParametricTSNE`: kNN affinities calibrated to a perplexity, symmetrised and
  normalised (P); Student-t similarities of the embedding (Q); loss KL(P || Q).
- :class:`ParametricUMAP`: fuzzy kNN graph (connect + fuzzy union); modified Cauchy
  similarities ``1 / (1 + a d^{2b})``; fuzzy cross entropy with negative edge sampling;
  with ``densmap=True`` a final phase also preserves local density (densMAP).
- :class:`ParametricLargeVis`: the same graph as UMAP, Student-t similarities, negative
  sampling.
- :class:`ParametricMDS`: exact pairwise distances; loss mean squared difference
  (metric stress) between high- and low-dimensional distances.
- :class:`ParametricIsomap`: geodesic distances over the kNN graph; MDS loss.

Parameters the recipes share (the scikit-learn face is :mod:`paradime_core.estimator`):

- ``n_epochs``: training epochs of the last phase (``epochs``: deprecated alias).
- ``metric``: distance of the kNN or pairwise relation (``euclidean``, ``sqeuclidean``, ``cosine``).
- ``target_metric``, ``target_weight`` (neighbour embeddings): how ``fit(X, y)`` mixes
  labels into the graph (:mod:`paradime_core.supervision`; ``-1`` marks an unlabelled row).
- ``decoder``: also train a decoder head, for ``inverse_transform`` (:mod:`paradime_core.decoder`).
- ``n_jobs``: torch and kNN threads during fit and transform (None: unchanged; -1: all cores).
- ``verbose``: a progress bar per training phase; ``random_state``: seed; ``device``:
  ``cpu``/``cuda`` (default CUDA when present); ``transform_batch_size``: rows per forward pass.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from paradime_core.estimator import ParametricEstimator, store_params
from paradime_core.spec import Spec


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

    def _model_and_phase(self, in_dim: int, loss: str) -> tuple[dict[str, Any], dict[str, Any]]:
        model = _model_section(self, in_dim)
        if self.input_noise:
            model["options"]["input_noise"] = float(self.input_noise)
        phase = {
            "name": "embedding", "epochs": self.resolved_n_epochs(),
            "sampling": {"type": "edge", "rels": "p", "batch_size": self.batch_size, "neg_rate": self.neg_rate,
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


class ParametricTSNE(_NeighborEmbedding):
    __doc__ = """Parametric t-SNE (van der Maaten 2009) as a ParaDime spec, trained contrastively.

    P: ``p_{j|i} ∝ exp(-β_i d_ij²)`` over ``3·perplexity`` neighbours, each row calibrated
    to ``2^{H(P_i)} = perplexity``, symmetrised ``(p_{j|i} + p_{i|j}) / 2``.
    Q: ``q_ij = (1 + ||y_i - y_j||²)^{-1}``. Loss: the InfoNCE estimate of t-SNE's KL loss
    (Damrich et al. 2023): positive edges ``(i, j) ~ P``, ``m = neg_rate`` negatives each,
    ``-log( q_ij / (q_ij + Σ_m q_im) )``; as ``m`` grows it approaches t-SNE. The defaults
    (64 negatives, six hidden layers of 128 with SiLU ``x σ(x)``, 2,000 steps) were chosen on
    the held-out MNIST protocol of ``benchmarks/quality.py`` (``docs/RESULTS.md``).

    Parameters
    ----------
    n_components : int
        Dimension of the embedding.
    perplexity : float
        Target perplexity of each item's neighbour distribution (at most ``(n - 1) / 3``).
    neg_rate : int
        Negative edges per positive edge.
    """ + NEIGHBOR_EMBEDDING_PARAMETERS

    def __init__(
        self,
        n_components: int = 2,
        perplexity: float = 30.0,
        neg_rate: int = 64,
        n_epochs: int = 20,
        batches_per_epoch: int = _SHARED_DEFAULTS["batches_per_epoch"],
        batch_size: int = _SHARED_DEFAULTS["batch_size"],
        lr: float = _SHARED_DEFAULTS["lr"],
        hidden_dims: tuple[int, ...] = (128,) * 6,
        activation: str = "silu",
        pca_components: int | None = _SHARED_DEFAULTS["pca_components"],
        input_noise: float = _SHARED_DEFAULTS["input_noise"],
        negatives: str = _SHARED_DEFAULTS["negatives"],
        negative_group_size: int = _SHARED_DEFAULTS["negative_group_size"],
        pool_size: int | None = _SHARED_DEFAULTS["pool_size"],
        edges_per_source: int | str = _SHARED_DEFAULTS["edges_per_source"],
        ema: float | None = _SHARED_DEFAULTS["ema"],
        precision: str = _SHARED_DEFAULTS["precision"],
        knn_method: str = "auto",
        metric: str = "euclidean",
        target_metric: str = "categorical",
        target_weight: float = 0.5,
        decoder: bool = False,
        random_state: int = 0,
        device: str | None = None,
        n_jobs: int | None = None,
        verbose: bool = False,
        transform_batch_size: int = 65536,
        epochs: int | None = None,
    ):
        store_params(self, locals())

    fuzzy_graph = False

    def build_spec(self, n_items: int, in_dim: int) -> Spec:
        perplexity = min(self.perplexity, max((n_items - 1) / 3.0, 1.0))
        model, phase = self._model_and_phase(in_dim, "tsne")
        return Spec.from_dict({
            "name": "parametric_tsne",
            "model": model,
            "relations": [
                {"name": "p", "level": "global", "type": "neighbor", "options": self._knn_options(),
                 "transforms": [{"type": "perplexity", "options": {"perplexity": perplexity}},
                                {"type": "symmetrize"}]},
                {"name": "q", "level": "batch", "type": "edge_dist",
                 "transforms": [{"type": "t_dist", "options": {"alpha": 1.0}}]},
            ],
            "losses": [{"name": "tsne", "type": "relation", "func": "infonce", "keys": {"rels": ["p", "q"]}}],
            "training_phases": [phase],
        })


class ParametricUMAP(_NeighborEmbedding):
    __doc__ = """Parametric UMAP (Sainburg et al. 2021) as a ParaDime spec.

    Graph: ``w_{j|i} = exp(-(d_ij - ρ_i)/σ_i)`` with ``Σ_j w_{j|i} = log2 k``, fuzzy union
    ``w_ij = w_{j|i} + w_{i|j} - w_{j|i} w_{i|j}``. Embedding similarity
    ``q_ij = 1 / (1 + a ||y_i - y_j||^{2b})`` (a, b from spread and min_dist). Loss: fuzzy
    cross entropy over positive edges drawn ∝ w_ij and ``neg_rate`` negatives each. Before
    the embedding phase, ``init`` may train the network for 200 steps (item batches of 1,024,
    position loss ``mean ||f(x_i) - z_i||²``) to reproduce a starting layout ``z``. The
    defaults were chosen on the held-out protocol of ``benchmarks/quality.py``
    (``docs/RESULTS.md``).

    Parameters
    ----------
    n_components : int
        Dimension of the embedding.
    n_neighbors : int
        Neighbours per item in the kNN graph (at most ``n - 1``).
    min_dist : float
        Smallest distance between embedded points the kernel fit aims at (sets ``a``, ``b``).
    spread : float
        Scale of the embedded clusters the kernel fit aims at (sets ``a``, ``b``).
    neg_rate : int
        Negative edges per positive edge.
    init : str
        Starting layout: ``pca`` (the data's first principal components at unit scale),
        ``spectral`` (the Laplacian eigenmap of the graph) or ``random`` (no init phase).
    densmap : bool
        Also preserve local density (densMAP): the last ``dens_frac`` of the epochs add the
        density loss ``1 - ρ(log R, log r)`` (:mod:`paradime_core.losses.density`) with weight
        ``dens_lambda / (1 + neg_rate)``, which balances it against the edge cross entropy
        as umap-learn's densMAP objective does.
    dens_lambda : float
        Weight of the density term relative to the UMAP objective (>= 0; 0: off).
    dens_frac : float
        Fraction of the embedding epochs, at their end, during which the density term is
        active, in [0, 1]; that phase starts at ``lr * dens_frac``, where the linear decay
        over the whole embedding would be.
    dens_var_shift : float
        Shift added to the variance of the embedded log radii in the correlation (>= 0).
    """ + NEIGHBOR_EMBEDDING_PARAMETERS

    def __init__(
        self,
        n_components: int = 2,
        n_neighbors: int = 15,
        min_dist: float = 0.1,
        spread: float = 1.0,
        neg_rate: int = 10,
        n_epochs: int = 30,
        batches_per_epoch: int = _SHARED_DEFAULTS["batches_per_epoch"],
        batch_size: int = _SHARED_DEFAULTS["batch_size"],
        lr: float = _SHARED_DEFAULTS["lr"],
        hidden_dims: tuple[int, ...] = _SHARED_DEFAULTS["hidden_dims"],
        activation: str = _SHARED_DEFAULTS["activation"],
        pca_components: int | None = _SHARED_DEFAULTS["pca_components"],
        input_noise: float = 0.45,
        negatives: str = _SHARED_DEFAULTS["negatives"],
        negative_group_size: int = _SHARED_DEFAULTS["negative_group_size"],
        pool_size: int | None = _SHARED_DEFAULTS["pool_size"],
        edges_per_source: int | str = "auto",
        ema: float | None = _SHARED_DEFAULTS["ema"],
        precision: str = "auto",
        init: str = "pca",
        densmap: bool = False,
        dens_lambda: float = 2.0,
        dens_frac: float = 0.3,
        dens_var_shift: float = 0.1,
        knn_method: str = "auto",
        metric: str = "euclidean",
        target_metric: str = "categorical",
        target_weight: float = 0.5,
        decoder: bool = False,
        random_state: int = 0,
        device: str | None = None,
        n_jobs: int | None = None,
        verbose: bool = False,
        transform_batch_size: int = 65536,
        epochs: int | None = None,
    ):
        store_params(self, locals())

    def _similarity(self) -> dict[str, Any]:
        return {"type": "cauchy", "options": {"spread": self.spread, "min_dist": self.min_dist}}

    def _init_section(self, n_items: int) -> tuple[list[dict[str, Any]], list[dict[str, Any]], list[dict[str, Any]]]:
        """Derived data, losses and phases of the initialisation (empty for ``init="random"``)."""
        if self.init not in UMAP_INITS:
            raise ValueError(f"init must be one of {', '.join(UMAP_INITS)}, got {self.init!r}")
        if self.init == "random" or n_items <= self.n_components + 1:
            return [], [], []
        source = ({"func": "pca", "keys": [["data", "main"]]} if self.init == "pca"
                  else {"func": "spectral", "keys": [["rels", "p"]]})
        derived = [{"name": "init", **source, "options": {"n_components": self.n_components}}]
        losses = [{"name": "init", "type": "position", "func": "mse", "keys": {"data": ["init"]}}]
        phases = [{"name": "init", "epochs": 2,
                   "sampling": {"type": "item", "batch_size": INIT_BATCH_SIZE, "batches_per_epoch": INIT_STEPS // 2},
                   "loss": {"components": ["init"]}, "optimizer": {"type": "adam", "options": {"lr": self.lr}}}]
        return derived, losses, phases

    def _density_section(self, phase: dict[str, Any]) -> tuple[list[dict[str, Any]], list[dict[str, Any]],
                                                             list[dict[str, Any]]]:
        """Derived log radii, the density loss and the phases that replace ``phase`` (densMAP)."""
        check_density_options(self.densmap, self.dens_lambda, self.dens_frac, self.dens_var_shift)
        if not self.densmap or self.dens_lambda == 0 or self.dens_frac == 0:
            return [], [], [phase]
        epochs = phase["epochs"]
        density_epochs = min(epochs, max(1, round(self.dens_frac * epochs)))
        derived = [{"name": "log_radii", "func": "log_radii", "keys": [["rels", "p"], ["data", "main"]]}]
        loss = [{"name": "density", "type": "density", "keys": {"rels": ["p", "q"], "data": ["log_radii"]},
                 "options": {"var_shift": float(self.dens_var_shift)}}]
        density = {**phase, "name": "density", "epochs": density_epochs,
                   "loss": {"components": ["embedding", "density"],
                            "weights": [1.0, float(self.dens_lambda) / (1 + self.neg_rate)]},
                   "optimizer": {"type": "adam", "options": {"lr": self.lr * self.dens_frac}}}
        phases = [density] if density_epochs == epochs else [{**phase, "epochs": epochs - density_epochs}, density]
        return derived, loss, phases

    def build_spec(self, n_items: int, in_dim: int) -> Spec:
        k = min(self.n_neighbors, n_items - 1)
        model, phase = self._model_and_phase(in_dim, "embedding")
        derived, init_losses, init_phases = self._init_section(n_items)
        density_derived, density_loss, phases = self._density_section(phase)
        return Spec.from_dict({
            "name": type(self).__name__.lower(),
            "model": model,
            "derived_data": [*derived, *density_derived],
            "relations": [
                {"name": "p", "level": "global", "type": "neighbor",
                 "options": {**self._knn_options(), "n_neighbors": k},
                 "transforms": [{"type": "connect"}, {"type": "symmetrize", "options": {"sub_prod": True}}]},
                {"name": "q", "level": "batch", "type": "edge_dist", "transforms": [self._similarity()]},
            ],
            "losses": [*init_losses, {"name": "embedding", "type": "relation", "func": "cross_entropy",
                                      "keys": {"rels": ["p", "q"]}}, *density_loss],
            "training_phases": [*init_phases, *phases],
        })


class ParametricLargeVis(ParametricUMAP):
    __doc__ = """Parametric LargeVis (Tang et al. 2016): UMAP's graph, Student-t similarity
    ``q_ij = 1 / (1 + ||y_i - y_j||²)``, negative-sampling cross entropy.

    Parameters
    ----------
    The same as :class:`ParametricUMAP`'s (``min_dist`` and ``spread`` are unused).
    """

    def _similarity(self) -> dict[str, Any]:
        return {"type": "t_dist", "options": {"alpha": 1.0}}


class ParametricMDS(ParametricEstimator):
    __doc__ = """Parametric metric MDS: minimise ``mean_ij (d_ij - ||y_i - y_j||)²`` over batches.

    ``d_ij`` are exact Euclidean distances (``pdist``); the network is (in, hidden..., out)
    with softplus activations as in the paper (Sec. 4.1).

    Parameters
    ----------
    n_components : int
        Dimension of the embedding.
    n_epochs : int
        Training epochs (one epoch: every item once, in item batches).
    batch_size : int
        Items per batch; the loss compares the batch's ``(b, b)`` distance blocks.
    lr : float
        Adam's learning rate.
    hidden_dims : tuple of int
        Widths of the network's hidden layers.
    activation : str
        Activation of the hidden layers.
    random_state : int
        Seed of the network's initialisation and the sampling.
""" + RUN_PARAMETERS

    def __init__(
        self,
        n_components: int = 2,
        n_epochs: int = 500,
        batch_size: int = 10,
        lr: float = 0.01,
        hidden_dims: tuple[int, ...] = (5,),
        activation: str = "softplus",
        metric: str = "euclidean",
        decoder: bool = False,
        random_state: int = 0,
        device: str | None = None,
        n_jobs: int | None = None,
        verbose: bool = False,
        transform_batch_size: int = 65536,
        epochs: int | None = None,
    ):
        store_params(self, locals())

    def _global_relation(self) -> dict[str, Any]:
        return {"name": "d_high", "level": "global", "type": "pdist", "options": {"metric": self.metric}}

    def build_spec(self, n_items: int, in_dim: int) -> Spec:
        return Spec.from_dict({
            "name": type(self).__name__.lower(),
            "model": _model_section(self, in_dim),
            "relations": [self._global_relation(), {"name": "d_low", "level": "batch", "type": "pdist"}],
            "losses": [{"name": "mds", "type": "relation", "func": "mse", "keys": {"rels": ["d_high", "d_low"]}}],
            "training_phases": [{
                "name": "mds", "epochs": self.resolved_n_epochs(), "sampling": {"type": "item", "batch_size": self.batch_size},
                "loss": {"components": ["mds"]}, "optimizer": {"type": "adam", "options": {"lr": self.lr}},
            }],
        })


class ParametricIsomap(ParametricMDS):
    """Parametric Isomap: MDS on geodesic distances (shortest paths over the kNN graph).

    Parameters
    ----------
    n_neighbors : int
        Neighbours per item in the graph the geodesic distances follow.
    The others as :class:`ParametricMDS`'s.
    """

    def __init__(self, n_components: int = 2, n_neighbors: int = 10, n_epochs: int = 100, batch_size: int = 256,
                 lr: float = 0.005, hidden_dims: tuple[int, ...] = (100, 50), activation: str = "softplus",
                 metric: str = "euclidean", decoder: bool = False, random_state: int = 0,
                 device: str | None = None, n_jobs: int | None = None, verbose: bool = False,
                 transform_batch_size: int = 65536, epochs: int | None = None):
        store_params(self, locals())

    def _global_relation(self) -> dict[str, Any]:
        return {"name": "d_high", "level": "global", "type": "neighbor",
                "options": {"n_neighbors": self.n_neighbors, "metric": self.metric}, "transforms": [{"type": "geodesic"}]}
