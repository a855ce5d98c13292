"""Exceptions raised by paradime_core.

Every user mistake (a malformed spec, an unknown name, bad data) raises a
:class:`SpecError` or :class:`DataError` whose message starts with the location of
the problem, e.g. ``losses[1].keys.rels[0]: unknown relation 'pp' (defined: p, q)``.
"""

from __future__ import annotations


class ParadimeError(Exception):
    """Base class of all errors raised for user input."""


class SpecError(ParadimeError, ValueError):
    """A specification is malformed: the message names where and what.

    ``path`` is the location inside the spec (``training_phases[0].optimizer.type``),
    ``problem`` the description of what is wrong.
    """

    def __init__(self, path: str, problem: str):
        self.path = path
        self.problem = problem
        super().__init__(f"{path}: {problem}" if path else problem)


class DataError(ParadimeError, ValueError):
    """Input data is unusable (NaN rows, mismatched lengths, missing keys, ...)."""


class TrainingError(ParadimeError, RuntimeError):
    """Training diverged (NaN/inf loss) or otherwise cannot continue."""
