"""The scikit-learn face shared by the recipe estimators.

:class:`ParametricEstimator` turns a recipe (a class whose ``build_spec(n_items, in_dim)``
returns a :class:`~paradime_core.spec.Spec`) into a scikit-learn transformer:

- ``__init__`` only stores parameters; ``fit`` validates declaratively and fails early
  (2-D numeric finite arrays of at least two rows, dense only: a sparse matrix is refused
  with a message naming ``.toarray()``), records ``n_features_in_`` and, for a DataFrame,
  ``feature_names_in_``; learned state ends in ``_`` (``routine_``, ``embedding_``).
- ``transform`` before ``fit`` raises :class:`~sklearn.exceptions.NotFittedError`; rows
  holding NaN or inf are refused with their row numbers; the output has the input's
  floating dtype (float32 stays float32, anything else becomes float64).
- ``get_feature_names_out`` gives ``<classname>0, <classname>1, ...`` and ``set_output``
  switches ``transform`` to pandas or polars output.
- ``fit(X, y)`` hands ``y`` to :meth:`supervise` (the neighbour-embedding recipes mix a
  label relation into their graph; see :mod:`paradime_core.supervision`); the others
  ignore it.
- ``decoder=True`` (where a recipe offers it) trains a decoder head beside the embedding
  and enables ``inverse_transform``.
- ``save(path)`` writes one file (spec, weights, parameters; no pickle) and the
  classmethod ``load(path)`` returns a fitted estimator of the same class with the same
  parameters and outputs.
- ``n_jobs`` sets torch's (and the kNN search's) threads during ``fit`` and ``transform``
  (None: unchanged, -1: every core); ``verbose`` shows one progress bar per training phase.
"""

from __future__ import annotations

import contextlib
import inspect
import os
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch
from sklearn.base import BaseEstimator, ClassNamePrefixFeaturesOutMixin, TransformerMixin
from sklearn.utils.validation import check_array, check_is_fitted, validate_data

from paradime_core.errors import DataError
from paradime_core.relation_data import RelationValue
from paradime_core.routine import Routine
from paradime_core.spec import Spec

FLOAT_DTYPES = (np.float64, np.float32)
MAX_ROWS_NAMED = 10
"""How many offending row numbers an error message lists."""


def store_params(estimator: Any, params: dict[str, Any]) -> None:
    """scikit-learn convention: ``__init__`` stores its arguments as they are, nothing else."""
    for name, value in params.items():
        if name not in ("self", "__class__"):
            setattr(estimator, name, value)


def n_threads_of(n_jobs: int | None) -> int | None:
    """Threads for ``n_jobs``: None stays None (unchanged), -1 every core, -2 all but one, ..."""
    if n_jobs is None:
        return None
    if isinstance(n_jobs, bool) or not isinstance(n_jobs, (int, np.integer)) or n_jobs == 0:
        raise ValueError(f"n_jobs must be a non-zero integer or None, got {n_jobs!r}")
    cores = os.cpu_count() or 1
    return int(n_jobs) if n_jobs > 0 else max(cores + 1 + int(n_jobs), 1)


@contextlib.contextmanager
def torch_threads(n_threads: int | None) -> Iterator[None]:
    """Run torch with ``n_threads`` intra-op threads (restored afterwards); None: unchanged."""
    if n_threads is None:
        yield
        return
    before = torch.get_num_threads()
    torch.set_num_threads(n_threads)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def refuse_non_finite_rows(X: np.ndarray, what: str = "X") -> None:
    """Raise :class:`DataError` (a ``ValueError``) listing the rows of ``X`` that hold NaN or inf."""
    if not np.issubdtype(X.dtype, np.floating):
        return
    bad = np.flatnonzero(~np.isfinite(X).all(axis=1))
    if bad.size:
        listed = ", ".join(str(int(row)) for row in bad[:MAX_ROWS_NAMED])
        more = f" and {bad.size - MAX_ROWS_NAMED} more" if bad.size > MAX_ROWS_NAMED else ""
        raise DataError(f"{what}: {bad.size} row(s) contain NaN or inf: row(s) {listed}{more}")


class ParametricEstimator(ClassNamePrefixFeaturesOutMixin, TransformerMixin, BaseEstimator):
    """Fit, transform, invert, save and load of the recipe estimators (see the module doc).

    Subclasses define ``__init__`` (storing ``n_components``, ``random_state``, ``device``,
    ``verbose``, ``n_jobs``, ``transform_batch_size`` and their own parameters) and
    ``build_spec(n_items, in_dim)``; a recipe with a neighbour graph names it in
    :attr:`graph_relation` (and says in :attr:`fuzzy_graph` whether it is UMAP's kind), so
    that ``fit(X, y)`` mixes the labels into it; :meth:`supervise` may be overridden.
    """

    graph_relation: str | None = None
    """The global relation a supervised fit mixes the labels into (None: ``y`` is ignored)."""
    fuzzy_graph: bool = True
    """Whether that relation is a fuzzy graph (UMAP's), reset to local connectivity after mixing."""

    # ------------------------------------------------------------------ recipe hooks
    def build_spec(self, n_items: int, in_dim: int) -> Spec:  # pragma: no cover - abstract
        raise NotImplementedError

    def supervise(self, relations: dict[str, RelationValue], y: np.ndarray) -> None:
        """Mix the labels ``y`` into :attr:`graph_relation` in place (see :mod:`paradime_core.supervision`)."""
        if self.graph_relation is None:
            return
        from paradime_core import supervision

        graph = relations[self.graph_relation]
        if self.target_metric == "categorical":
            mixed = supervision.categorical_intersection(graph, y, self.target_weight, reset=self.fuzzy_graph)
        else:
            target = supervision.target_graph(y, getattr(self, "n_neighbors", 15), self.target_metric)
            mixed = supervision.fuzzy_intersection(graph, target, self.target_weight)
        relations[self.graph_relation] = mixed

    def _checked_options(self) -> None:
        """Fail early, naming the parameter, on values no spec check would name as well."""
        from paradime_core.neighbors import METRICS
        from paradime_core.supervision import TARGET_METRICS

        if self.metric not in METRICS:
            raise ValueError(f"metric must be one of {', '.join(METRICS)} (the kNN backends' metrics), "
                             f"got {self.metric!r}")
        if self.graph_relation is not None and self.target_metric not in TARGET_METRICS:
            raise ValueError(f"target_metric must be one of {', '.join(TARGET_METRICS)}, got {self.target_metric!r}")
        n_threads_of(self.n_jobs)

    def _knn_options(self) -> dict[str, Any]:
        """Options of the kNN relation: backend, metric and (with ``n_jobs``) threads."""
        options: dict[str, Any] = {"method": self.knn_method, "metric": self.metric}
        n_threads = n_threads_of(self.n_jobs)
        if n_threads is not None:
            options["n_threads"] = n_threads
        return options

    def resolved_n_epochs(self) -> int:
        """``n_epochs``, or the deprecated ``epochs`` where that one is given."""
        epochs = getattr(self, "epochs", None)
        if epochs is not None:
            warnings.warn(f"{type(self).__name__}: 'epochs' is deprecated, use 'n_epochs'",
                          FutureWarning, stacklevel=3)
            return epochs
        return self.n_epochs

    # ------------------------------------------------------------------ scikit-learn tags
    def __sklearn_tags__(self) -> Any:
        tags = super().__sklearn_tags__()
        tags.input_tags.sparse = False
        tags.input_tags.allow_nan = False
        tags.transformer_tags.preserves_dtype = ["float64", "float32"]
        return tags

    def __sklearn_is_fitted__(self) -> bool:
        return hasattr(self, "routine_")

    # ------------------------------------------------------------------ fit / transform
    def fit(self, X: Any, y: Any = None) -> ParametricEstimator:
        """Learn the embedding of ``X`` (n_samples, n_features); ``y``: optional labels (-1: unknown)."""
        if y is None:
            X = validate_data(self, X, dtype=FLOAT_DTYPES, ensure_min_samples=2)
        else:
            X, y = validate_data(self, X, y, dtype=FLOAT_DTYPES, ensure_min_samples=2, y_numeric=False)
        if not X.flags.writeable:  # torch wraps the training rows and warns on read-only memory
            X = X.copy()
        self._checked_options()
        n_threads = n_threads_of(self.n_jobs)
        spec = self.build_spec(X.shape[0], X.shape[1])
        if getattr(self, "decoder", False):
            from paradime_core.decoder import with_decoder

            spec = with_decoder(spec, X)
        data: dict[str, Any] = {"main": X}
        if y is not None and any(loss.data and "labels" in loss.data for loss in spec.losses):
            data["labels"] = np.asarray(y)
        routine = Routine(spec, seed=self.random_state, device=self.device, verbose=bool(self.verbose))
        hook = None if y is None else (lambda relations: self.supervise(relations, np.asarray(y)))
        with torch_threads(n_threads):
            routine.fit(data, relation_hook=hook)
            self.routine_ = routine
            self.embedding_ = self._embed(X)
        self._n_features_out = self.embedding_.shape[1]
        return self

    def fit_transform(self, X: Any, y: Any = None, **fit_params: Any) -> np.ndarray:
        """``fit(X, y)`` and the embedding of ``X``."""
        return self.fit(X, y, **fit_params).embedding_

    def transform(self, X: Any) -> np.ndarray:
        """Embed new rows (any number, in batches of ``transform_batch_size``)."""
        check_is_fitted(self)
        X = validate_data(self, X, reset=False, dtype=FLOAT_DTYPES, ensure_all_finite=False)
        refuse_non_finite_rows(X)
        with torch_threads(n_threads_of(self.n_jobs)):
            return self._embed(X)

    def inverse_transform(self, X: Any) -> np.ndarray:
        """Map embedding coordinates back to data space with the decoder (``decoder=True``)."""
        check_is_fitted(self)
        if not hasattr(self.routine_.model_, "decode"):
            raise ValueError(f"{type(self).__name__} was fitted without a decoder: "
                             "fit with decoder=True to use inverse_transform")
        Y = check_array(X, dtype=FLOAT_DTYPES, ensure_all_finite=False, input_name="X")
        if Y.shape[1] != self._n_features_out:
            raise ValueError(f"inverse_transform expects an (n, {self._n_features_out}) embedding, "
                             f"got shape {Y.shape}")
        refuse_non_finite_rows(Y)
        with torch_threads(n_threads_of(self.n_jobs)):
            return self._embed(Y, method="decode")

    def _embed(self, X: np.ndarray, method: str = "embed") -> np.ndarray:
        """``model.<method>`` of the rows of ``X``, computed and returned in ``X``'s dtype
        (float32 or float64): a row's result does not depend on the rows batched with it."""
        return self.routine_.transform(X, method=method, batch_size=self.transform_batch_size, dtype=X.dtype.type)

    # ------------------------------------------------------------------ fitted extras
    @property
    def loss_history_(self) -> dict[str, dict[str, list[float]]]:
        """Per-phase, per-component epoch means of the loss (``{phase: {component: [...]}}``)."""
        check_is_fitted(self)
        return self.routine_.history_

    def plot_loss_history(self, path: str | Path | None = None, **options: Any) -> Any:
        """A figure of :attr:`loss_history_` (see :func:`paradime_core.plotting.plot_loss_history`)."""
        from paradime_core.plotting import plot_loss_history

        return plot_loss_history(self.loss_history_, path=path, **options)

    # ------------------------------------------------------------------ persistence
    def save(self, path: str | Path) -> Path:
        """One file: spec, architecture, weights, loss history and this estimator's parameters."""
        check_is_fitted(self)
        metadata = {"recipe": type(self).__name__, "params": self.get_params(),
                    "n_features_in": int(self.n_features_in_)}
        if hasattr(self, "feature_names_in_"):
            metadata["feature_names_in"] = [str(name) for name in self.feature_names_in_]
        return self.routine_.save(path, metadata=metadata)

    @classmethod
    def load(cls, path: str | Path, device: str | None = None) -> ParametricEstimator:
        """A fitted ``cls`` from :meth:`save`'s file: same parameters, same ``transform``.

        ``embedding_`` of the training items is not stored; ``transform`` them again.
        """
        routine = Routine.load(path, device=device)
        recipe = routine.metadata_.get("recipe")
        if recipe != cls.__name__:
            raise DataError(f"{path}: holds a {recipe or 'plain routine'}, not a {cls.__name__}")
        params = dict(routine.metadata_["params"])
        if "n_epochs" not in params and "epochs" in params:  # a file written before the rename
            params["n_epochs"] = params.pop("epochs")
        signature = inspect.signature(cls.__init__).parameters
        unknown = sorted(set(params) - set(signature))
        if unknown:
            raise DataError(f"{path}: was saved with parameters {cls.__name__} no longer takes "
                            f"({', '.join(unknown)}); refit it with this version")
        for name, value in params.items():  # JSON turned tuples into lists
            if isinstance(value, list) and name in signature and isinstance(signature[name].default, tuple):
                params[name] = tuple(value)
        if device is not None:
            params["device"] = device
        estimator = cls(**params)
        estimator.routine_ = routine
        in_dim = routine.model_spec_.options.get("in_dim") if routine.model_spec_ is not None else None
        estimator.n_features_in_ = int(routine.metadata_.get("n_features_in", in_dim))
        if "feature_names_in" in routine.metadata_:
            estimator.feature_names_in_ = np.asarray(routine.metadata_["feature_names_in"], dtype=object)
        estimator._n_features_out = int(routine.out_dim if routine.model_spec_ is None
                                         else routine.model_spec_.options.get("out_dim", routine.out_dim))
        return estimator
