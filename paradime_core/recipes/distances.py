"""The distance-preserving recipes: parametric metric MDS and Isomap (see the package doc)."""

from __future__ import annotations

from typing import Any

from paradime_core.estimator import ParametricEstimator, store_params
from paradime_core.recipes.shared import RUN_PARAMETERS, _model_section
from paradime_core.spec import Spec


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
