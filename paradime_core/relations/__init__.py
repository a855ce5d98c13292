"""Relations between items: relation types, their transforms, and distances.

- :mod:`~paradime_core.relations.relation_types`: how a relation is first computed
  (``pdist``, ``neighbor``, ``pairwise_eq``, ``precomputed``, ``edge_dist``).
- :mod:`~paradime_core.relations.transforms`: the steps of a ``transforms:`` chain
  (``perplexity``, ``connect``, ``symmetrize``, ``normalize``, ``t_dist``, ``cauchy``, ...).
- :mod:`~paradime_core.relations.rows`: the row layout the row-wise calibrations solve on.
- :mod:`~paradime_core.relations.distances`: dense and batch distances.

Importing this package registers the built-in relation types and transforms.
"""

from __future__ import annotations

from paradime_core.relations.distances import dense_distances, paired_distances, pairwise_distances
from paradime_core.relations.relation_types import (
    EdgeDist,
    Neighbor,
    PairwiseEq,
    PDist,
    Precomputed,
)
from paradime_core.relations.transforms import (
    Cauchy,
    Connect,
    Geodesic,
    Normalize,
    NormalizeRows,
    Perplexity,
    Symmetrize,
    TDist,
    fit_ab,
)

__all__ = [
    "Cauchy", "Connect", "EdgeDist", "Geodesic", "Neighbor", "Normalize", "NormalizeRows", "PDist",
    "PairwiseEq", "Perplexity", "Precomputed", "Symmetrize", "TDist", "dense_distances", "fit_ab",
    "paired_distances", "pairwise_distances",
]
