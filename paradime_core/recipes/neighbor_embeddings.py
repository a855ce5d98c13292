"""The neighbour-embedding recipes: parametric t-SNE, UMAP and LargeVis (see the package doc)."""

from __future__ import annotations

from typing import Any

from paradime_core.estimator import store_params
from paradime_core.recipes.shared import (
    _SHARED_DEFAULTS,
    NEIGHBOR_EMBEDDING_PARAMETERS,
    _NeighborEmbedding,
    check_density_options,
)
from paradime_core.spec import Spec

TSNE_OBJECTIVES = ("infonce", "kl")
EDGE_BATCH_SIZE = _SHARED_DEFAULTS["batch_size"]
KL_BATCH_SIZE = 500
"""Items per batch of the paper's t-SNE (``objective="kl"``): its Sec. 4.2 and ParaDime's default."""


class ParametricTSNE(_NeighborEmbedding):
    __doc__ = """Parametric t-SNE (van der Maaten 2009) as a ParaDime spec.

    P: ``p_{j|i} ∝ exp(-β_i d_ij²)`` over ``3·perplexity`` neighbours, each row calibrated
    to ``2^{H(P_i)} = perplexity``, symmetrised ``(p_{j|i} + p_{i|j}) / 2``.
    Q: ``q_ij = (1 + ||y_i - y_j||²)^{-1}``. t-SNE minimises ``KL(P || Q) = Σ p_ij log(p_ij / q_ij)``
    with P and Q normalised to sum 1; ``objective`` chooses how:

    - ``"infonce"`` (default): the InfoNCE estimate of that loss (Damrich et al. 2023) over
      sampled edges: positive edges ``(i, j) ~ P``, ``m = neg_rate`` negatives each,
      ``-log( q_ij / (q_ij + Σ_m q_im) )``; as ``m`` grows it approaches t-SNE.
    - ``"kl"``: the ParaDime paper's form (Sec. 4.2, ``specs/tsne.yaml``): 200 steps that
      regress the data's first principal components (position loss, item batches of 1,024),
      then ``KL(P_B || Q_B)`` over item batches ``B``, P and Q normalised within the batch.

    The default is not the paper's form because it generalises better: an item batch of
    ``b`` of ``n`` items holds about ``b / n`` of each item's neighbours, so most steps see
    little attraction, where every sampled edge is a neighbour pair. On the held-out protocol
    of ``benchmarks/quality.py`` the InfoNCE form embeds unseen items with higher
    trustworthiness and 10-NN accuracy (``docs/RESULTS.md``, "The recipes as the paper
    defines them"), also at equal fit time (a KL step costs less, so the comparison there gives
    it more steps). The network, the step budget (``n_epochs * batches_per_epoch``), the
    learning rate and its decay are the same in both.

    Parameters
    ----------
    n_components : int
        Dimension of the embedding.
    perplexity : float
        Target perplexity of each item's neighbour distribution (at most ``(n - 1) / 3``).
    objective : str
        ``infonce`` (contrastive, over sampled edges) or ``kl`` (the paper's KL over item
        batches after a PCA start).
    neg_rate : int
        Negative edges per positive edge (``objective="infonce"``).
    """ + NEIGHBOR_EMBEDDING_PARAMETERS.replace(
        "    batch_size : int\n        Positive edges per step.\n",
        f"    batch_size : int or None\n        Positive edges per step (``infonce``; None: {EDGE_BATCH_SIZE}) or items"
        f" per step (``kl``; None: {KL_BATCH_SIZE}).\n")

    def __init__(
        self,
        n_components: int = 2,
        perplexity: float = 30.0,
        objective: str = "infonce",
        neg_rate: int = 64,
        n_epochs: int = 20,
        batches_per_epoch: int = _SHARED_DEFAULTS["batches_per_epoch"],
        batch_size: int | None = None,
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
        if self.objective not in TSNE_OBJECTIVES:
            raise ValueError(f"objective must be one of {', '.join(TSNE_OBJECTIVES)}, got {self.objective!r}")
        if self.objective == "kl":
            return self._kl_over_items_spec(n_items, in_dim)
        model, phase = self._model_and_phase(in_dim, "tsne", self.batch_size or EDGE_BATCH_SIZE)
        return Spec.from_dict({
            "name": "parametric_tsne",
            "model": model,
            "relations": [
                self._perplexity_graph(n_items),
                {"name": "q", "level": "batch", "type": "edge_dist",
                 "transforms": [{"type": "t_dist", "options": {"alpha": 1.0}}]},
            ],
            "losses": [{"name": "tsne", "type": "relation", "func": "infonce", "keys": {"rels": ["p", "q"]}}],
            "training_phases": [phase],
        })

    def _kl_over_items_spec(self, n_items: int, in_dim: int) -> Spec:
        """The paper's t-SNE: a PCA start, then KL(P || Q) over item batches."""
        model, _ = self._model_and_phase(in_dim, "tsne")
        derived, init_losses, init_phases = self._init_section(n_items, "pca")
        phase: dict[str, Any] = {
            "name": "embedding", "epochs": self.resolved_n_epochs(),
            "sampling": {"type": "item", "batch_size": self.batch_size or KL_BATCH_SIZE,
                         "batches_per_epoch": self.batches_per_epoch},
            "loss": {"components": ["tsne"]},
            "optimizer": {"type": "adam", "options": {"lr": self.lr}},
            "options": {"lr_schedule": "linear", **({} if self.ema is None else {"ema": float(self.ema)})},
        }
        return Spec.from_dict({
            "name": "parametric_tsne",
            "model": model,
            "derived_data": derived,
            "relations": [
                self._perplexity_graph(n_items, normalize=True),
                {"name": "q", "level": "batch", "type": "pdist",
                 "transforms": [{"type": "t_dist", "options": {"alpha": 1.0}}, {"type": "normalize"}]},
            ],
            "losses": [*init_losses, {"name": "tsne", "type": "relation", "func": "kl_div", "keys": {"rels": ["p", "q"]}}],
            "training_phases": [*init_phases, phase],
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
        derived, init_losses, init_phases = self._init_section(n_items, self.init)
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


class ParametricLargeVis(_NeighborEmbedding):
    __doc__ = """Parametric LargeVis (Tang et al. 2016) as a ParaDime spec (the paper's Sec. 4.4).

    LargeVis combines t-SNE's high-dimensional relations with negative edge sampling. Graph:
    t-SNE's P, ``p_{j|i} ∝ exp(-β_i d_ij²)`` over ``3·perplexity`` neighbours, each row
    calibrated to ``2^{H(P_i)} = perplexity``, symmetrised ``p_ij = (p_{j|i} + p_{i|j}) / 2``.
    Embedding similarity ``q_ij = 1 / (1 + ||y_i - y_j||²)`` (Student-t). Loss: the cross
    entropy of sampled edges, positives ``(i, j)`` drawn ∝ ``p_ij`` (target 1) with
    ``neg_rate`` uniformly drawn negatives ``(i, k)`` each (target 0), repulsion weighted by
    ``γ = repulsion_strength``,

        ``L = -(1/N) Σ_e [ t_e log q_e + γ (1 - t_e) log(1 - q_e) ]``

    over the ``N`` edges of a step. Before the embedding phase, ``init`` may train the network
    for 200 steps (item batches of 1,024, position loss ``mean ||f(x_i) - z_i||²``) to
    reproduce a starting layout ``z``.

    Graph, kernel and loss are the paper's and LargeVis' (perplexity 50 as in LargeVis). The
    training defaults are not LargeVis' own 5 negatives with ``γ = 7``
    (``neg_rate=5, repulsion_strength=7`` select them): they weight repulsion 35 to 1 against
    attraction, and with a network trained by Adam that embeds unseen items with clearly lower
    trustworthiness and 10-NN accuracy on the held-out protocol of ``benchmarks/quality.py``
    than 10 unweighted negatives, the setting :class:`ParametricUMAP` uses (``docs/RESULTS.md``,
    "The recipes as the paper defines them"). There, the same training on UMAP's fuzzy graph
    (``benchmarks/quality.py --methods largevis_fuzzy``) embedded held-out items a little
    better; the graph stays t-SNE's, which defines LargeVis.

    Parameters
    ----------
    n_components : int
        Dimension of the embedding.
    perplexity : float
        Target perplexity of each item's neighbour distribution (at most ``(n - 1) / 3``).
    neg_rate : int
        Negative edges per positive edge.
    repulsion_strength : float
        Weight γ of the negative edges' terms against the positives' (>= 0).
    init : str
        Starting layout: ``pca`` (the data's first principal components at unit scale),
        ``spectral`` (the Laplacian eigenmap of the graph) or ``random`` (no init phase).
    """ + NEIGHBOR_EMBEDDING_PARAMETERS

    def __init__(
        self,
        n_components: int = 2,
        perplexity: float = 50.0,
        neg_rate: int = 10,
        repulsion_strength: float = 1.0,
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
        model, phase = self._model_and_phase(in_dim, "embedding")
        derived, init_losses, init_phases = self._init_section(n_items, self.init)
        return Spec.from_dict({
            "name": type(self).__name__.lower(),
            "model": model,
            "derived_data": derived,
            "relations": [
                self._perplexity_graph(n_items),
                {"name": "q", "level": "batch", "type": "edge_dist",
                 "transforms": [{"type": "t_dist", "options": {"alpha": 1.0}}]},
            ],
            "losses": [*init_losses, {"name": "embedding", "type": "relation", "func": "cross_entropy",
                                      "keys": {"rels": ["p", "q"]},
                                      "options": {"repulsion_strength": self.repulsion_strength}}],
            "training_phases": [*init_phases, phase],
        })
