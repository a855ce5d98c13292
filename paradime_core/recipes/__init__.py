"""Predefined routines: thin recipes that build a spec, with a scikit-learn face.

Each class stores its parameters in ``__init__`` (scikit-learn convention), builds a
:class:`~paradime_core.spec.Spec` in :meth:`build_spec`, and fits a
:class:`~paradime_core.routine.Routine` from it. ``transform`` embeds any number of new
items in batches; learned state ends in ``_`` (``routine_``, ``embedding_``).

- :class:`ParametricTSNE`: kNN affinities calibrated to a perplexity, symmetrised and
  normalised (P); Student-t similarities of the embedding (Q); loss KL(P || Q), trained by
  its InfoNCE estimate over sampled edges or (``objective="kl"``, the paper's form) exactly
  over item batches after a PCA start.
- :class:`ParametricUMAP`: fuzzy kNN graph (connect + fuzzy union); modified Cauchy
  similarities ``1 / (1 + a d^{2b})``; fuzzy cross entropy with negative edge sampling;
  with ``densmap=True`` a final phase also preserves local density (densMAP).
- :class:`ParametricLargeVis`: t-SNE's perplexity graph (P), Student-t similarities,
  cross entropy with negative edge sampling and weighted repulsion.
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

from paradime_core.recipes.distances import ParametricIsomap, ParametricMDS
from paradime_core.recipes.neighbor_embeddings import (
    ParametricLargeVis,
    ParametricTSNE,
    ParametricUMAP,
)

__all__ = ["ParametricIsomap", "ParametricLargeVis", "ParametricMDS", "ParametricTSNE", "ParametricUMAP"]
