"""scikit-learn's own estimator checks on every exported estimator (tiny epochs and networks)."""

from __future__ import annotations

import inspect

from sklearn.base import BaseEstimator
from sklearn.utils.estimator_checks import parametrize_with_checks

import paradime_core
from paradime_core import (
    ParametricIsomap,
    ParametricLargeVis,
    ParametricMDS,
    ParametricTSNE,
    ParametricUMAP,
)

TINY_NEIGHBOR_EMBEDDING = dict(n_epochs=1, batches_per_epoch=2, batch_size=64, hidden_dims=(8,),
                               pca_components=5, transform_batch_size=16)
CHECKED = [
    ParametricUMAP(**TINY_NEIGHBOR_EMBEDDING, init="random"),
    ParametricUMAP(**TINY_NEIGHBOR_EMBEDDING, init="random", densmap=True),
    ParametricLargeVis(**TINY_NEIGHBOR_EMBEDDING, init="random", perplexity=5.0),
    ParametricTSNE(**TINY_NEIGHBOR_EMBEDDING, perplexity=5.0),
    ParametricTSNE(**TINY_NEIGHBOR_EMBEDDING, perplexity=5.0, objective="kl"),
    ParametricMDS(n_epochs=1, batch_size=16, hidden_dims=(4,)),
    ParametricIsomap(n_epochs=1, batch_size=16, hidden_dims=(4,), n_neighbors=5),
]


def test_every_exported_estimator_is_checked():
    exported = {name for name in paradime_core.__all__
                if inspect.isclass(value := getattr(paradime_core, name)) and issubclass(value, BaseEstimator)}
    assert exported == {type(estimator).__name__ for estimator in CHECKED}


@parametrize_with_checks(CHECKED)
def test_scikit_learn_estimator_checks(estimator, check):
    check(estimator)
