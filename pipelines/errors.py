"""Errors and warnings of the pipelines layer.

User mistakes (bad path, unknown model key, unreadable data) raise :class:`PipelineError`,
a :class:`~paradime_core.errors.ParadimeError`, which the CLI prints as one red line.
A cached artifact that is missing or damaged is reported with a :class:`CacheWarning`
and recomputed.
"""

from __future__ import annotations

from paradime_core.errors import DataError, ParadimeError, SpecError

__all__ = ["CacheWarning", "CorruptArtifact", "DataError", "ParadimeError", "PipelineError", "SpecError"]


class PipelineError(ParadimeError):
    """A user-facing problem outside the spec and the data (store, model key, option)."""


class CorruptArtifact(Exception):
    """A stored stage could not be read back (missing file, wrong size or checksum, bad bytes)."""


class CacheWarning(UserWarning):
    """A cached stage was missing or damaged and is recomputed."""
