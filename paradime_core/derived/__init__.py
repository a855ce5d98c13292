"""Derived data: dataset entries computed before training (``derived_data:`` in a spec).

- :mod:`~paradime_core.derived.functions`: the registered data functions (``pca``,
  ``spectral``, ``standardize``, ``select_columns``).
- :mod:`~paradime_core.derived.local_radii`: densMAP's log local radii of the items over a
  global graph (``log_radii``), the original-space side of the density loss.
- :mod:`~paradime_core.derived.principal_axes`: principal axes of data too large for one
  dense decomposition, shared with the models' PCA front layer.

Importing this package registers the built-in data functions.
"""

from __future__ import annotations

from paradime_core.derived.functions import pca, select_columns, spectral, standardize
from paradime_core.derived.local_radii import log_radii

__all__ = ["log_radii", "pca", "select_columns", "spectral", "standardize"]
