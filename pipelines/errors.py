"""Errors and warnings of the pipelines layer.

User mistakes raise the core's :class:`~paradime_core.errors.SpecError` (spec) or
:class:`~paradime_core.errors.DataError` (data), or :class:`PipelineError` (store, model
key, option); the CLI prints each as one red line. A cached artifact that is missing or
damaged is reported with a :class:`CacheWarning` and recomputed.

``DataError``, ``SpecError``, ``ParadimeError`` and ``TrainingError`` are the core's
classes, re-exported here (``paradime_core.errors`` is light: the core's package loads its
heavy modules only on first use, so a fully cached run never imports torch).
"""

from __future__ import annotations

from paradime_core.errors import DataError, ParadimeError, SpecError, TrainingError

__all__ = ["CacheWarning", "CorruptArtifact", "DataError", "ParadimeError", "PipelineError", "SpecError",
           "TrainingError", "is_user_error"]


class PipelineError(Exception):
    """A user-facing problem outside the spec and the data (store, model key, option)."""


class CorruptArtifact(Exception):
    """A stored stage could not be read back (missing file, wrong size or checksum, bad bytes)."""


class CacheWarning(UserWarning):
    """A cached stage was missing or damaged and is recomputed."""


def is_user_error(exc: BaseException) -> bool:
    """A user mistake: a core :class:`ParadimeError` or a :class:`PipelineError`."""
    return isinstance(exc, (PipelineError, ParadimeError))
