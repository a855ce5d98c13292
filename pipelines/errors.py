"""Errors and warnings of the pipelines layer.

User mistakes raise the core's :class:`~paradime_core.errors.SpecError` (spec) or
:class:`~paradime_core.errors.DataError` (data), or :class:`PipelineError` (store, model
key, option); the CLI prints each as one red line. A cached artifact that is missing or
damaged is reported with a :class:`CacheWarning` and recomputed.

``DataError``, ``SpecError`` and ``ParadimeError`` are the core's classes, looked up only
when used (``errors.DataError``): importing ``paradime_core`` loads torch and the whole
core, which a fully cached run never needs.
"""

from __future__ import annotations

from typing import Any

__all__ = ["CacheWarning", "CorruptArtifact", "PipelineError", "is_user_error"]

_CORE_ERRORS = ("DataError", "SpecError", "ParadimeError", "TrainingError")


class PipelineError(Exception):
    """A user-facing problem outside the spec and the data (store, model key, option)."""


class CorruptArtifact(Exception):
    """A stored stage could not be read back (missing file, wrong size or checksum, bad bytes)."""


class CacheWarning(UserWarning):
    """A cached stage was missing or damaged and is recomputed."""


def __getattr__(name: str) -> Any:
    if name in _CORE_ERRORS:
        from paradime_core import errors as core_errors

        return getattr(core_errors, name)
    raise AttributeError(f"module 'pipelines.errors' has no attribute {name!r}")


def is_user_error(exc: BaseException) -> bool:
    """A user mistake: a core ParadimeError or a PipelineError (checked without importing the core)."""
    return isinstance(exc, PipelineError) or any(cls.__name__ == "ParadimeError" for cls in type(exc).__mro__)
