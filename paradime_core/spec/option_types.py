"""The options a spec gives a block, checked against the block's signature in one place.

A block (relation, transform, loss type, sampler, data function, model, optimizer) takes
its spec options as keyword parameters. The parameter's name is the option's name, and its
annotation is the option's type, constraints included::

    from typing import Annotated, Literal
    from annotated_types import Ge, Gt

    @register_transform("perplexity")
    class Perplexity:
        def __init__(self, perplexity: Annotated[float, Gt(0)] = 30.0,
                     maxiter: Annotated[int, Ge(1)] = 200,
                     method: Literal["bisect", "brentq"] | None = None): ...

:func:`check_options` reads the signature and checks, before the block is built:

- every option names a keyword parameter (any name when the block takes ``**kwargs``);
- every given value matches its parameter's annotation, checked by pydantic in strict mode:
  ``int`` takes integers only (not ``true``, ``3.0`` or ``"3"``); ``float`` takes integers
  and finite floats (no NaN, no infinity); ``bool`` takes ``true``/``false`` only;
  ``Literal[...]`` one of its values; ``X | None`` also ``null``; ``Sequence[X]`` or
  ``list[X]`` a list; ``tuple[X, Y]`` a list of that length (spec files have no tuples).
  Constraints come from annotated-types inside ``Annotated``: ``Gt``, ``Ge``, ``Lt``,
  ``Le``, ``Interval``, ``Len``, ... NumPy scalars are checked as the Python numbers they
  hold, and a class in an annotation (``torch.Tensor``) is an ``isinstance`` check.

A parameter without an annotation, annotated ``Any``, or whose annotation cannot be resolved
(a name imported only under ``TYPE_CHECKING`` or defined inside a function) or checked (a
``Protocol`` that is not runtime-checkable) takes any value. Defaults are not checked. A
block whose signature is not ours (torch's optimizers) is given option types where it is
registered (``Registry.register(..., option_types=...)``); they replace the annotations of
the options they name.

Each problem is one :class:`~paradime_core.errors.SpecError` at the option's spec path
(``relations[0].transforms[1].options.perplexity: expected a number > 0, got -30``). What
the annotations cannot say (one option against another, an option against the data) the
block still checks itself, raising ``ValueError``.

Checking a block built directly in Python (``Perplexity(perplexity=-1)``) is the caller's
business: the blocks trust their arguments.
"""

from __future__ import annotations

import functools
import inspect
import reprlib
import types
import typing
from collections.abc import Iterable, Mapping, Sequence
from typing import Annotated, Any, Literal, Union, get_args, get_origin

import annotated_types as at
import numpy as np
from pydantic import ConfigDict, Strict, TypeAdapter, ValidationError

from paradime_core.errors import SpecError
from paradime_core.spec.registry import did_you_mean

STRICT = ConfigDict(strict=True, allow_inf_nan=False, arbitrary_types_allowed=True)
"""How an option value is checked against its annotation (see the module docstring)."""

_SHOW = reprlib.Repr()
_SHOW.maxstring = _SHOW.maxother = 60
_SHOW.maxlist = _SHOW.maxtuple = 6


def check_options(impl: Any, options: Mapping[str, Any], where: str, what: str, *,
                  exclude: Iterable[str] = (), option_types: Mapping[str, Any] | None = None,
                  note: str = "") -> None:
    """Check the names and values of ``options`` against the signature of ``impl``.

    Parameters
    ----------
    impl : class or callable
        The block: a class (its constructor's parameters) or a function.
    options : mapping
        Option name -> value, as the spec gives them (aliases already resolved).
    where : str
        Spec path of the options (``relations[0].options``); a problem is reported at
        ``<where>.<option>``.
    what : str
        The block as messages name it (``relation 'neighbor'``).
    exclude : iterable of str
        Parameters the spec layer fills itself (a loss type's ``func``, a model's ``in_dim``):
        not options, so neither allowed as names nor checked.
    option_types : mapping, optional
        Option name -> annotation, replacing the signature's annotation of that option.
    note : str
        Appended to the list of allowed names in the unknown-option message.

    Raises
    ------
    SpecError
        At ``<where>.<option>`` for the first unknown option or value of the wrong type.
    """
    exclude = tuple(exclude)
    allowed = accepted_options(impl, exclude)
    if allowed is not None:
        for key in options:
            if key not in allowed:
                raise SpecError(f"{where}.{key}", f"unknown option for {what} (allowed: "
                                                  f"{', '.join(allowed) or 'none'}{note}){did_you_mean(key, allowed)}")
    annotations = {**option_annotations(impl), **(option_types or {})}
    for key, value in options.items():
        if key in exclude or key not in annotations:
            continue
        adapter = _adapter(annotations[key])
        if adapter is None:
            continue
        try:
            adapter.validate_python(_plain(value))
        except ValidationError:
            raise SpecError(f"{where}.{key}", f"expected {describe(annotations[key])}, "
                                              f"got {_SHOW.repr(value)}") from None


def accepted_options(impl: Any, exclude: Iterable[str] = ()) -> list[str] | None:
    """The option names ``impl`` takes (its keyword parameters, less ``exclude``), read from
    its signature; None when it takes any (``**kwargs``) or has no signature."""
    try:
        params = inspect.signature(impl).parameters
    except (TypeError, ValueError):  # builtins without a signature
        return None
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
        return None
    keyword = (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
    exclude = tuple(exclude)
    return [n for n, p in params.items() if p.kind in keyword and n not in (*exclude, "self")]


def option_annotations(impl: Any) -> dict[str, Any]:
    """Parameter name -> resolved annotation (``Annotated`` extras kept) of ``impl``'s
    constructor or function; unannotated, ``Any`` and unresolvable parameters are left out.
    Cached per block."""
    try:
        return _cached_annotations(impl)
    except TypeError:  # an unhashable block (a callable instance): resolved each time
        return _annotations(impl)


@functools.cache
def _cached_annotations(impl: Any) -> dict[str, Any]:
    return _annotations(impl)


def _annotations(impl: Any) -> dict[str, Any]:
    target = impl.__init__ if inspect.isclass(impl) else impl
    try:
        hints = typing.get_type_hints(target, include_extras=True)
    except Exception:  # noqa: BLE001 - any failure means: resolve one parameter at a time
        hints = _hints_one_by_one(target)
    hints.pop("return", None)
    return {name: hint for name, hint in hints.items() if hint is not Any}


def _hints_one_by_one(target: Any) -> dict[str, Any]:
    """The annotations of ``target`` that resolve on their own (the others are left out)."""
    raw = getattr(target, "__annotations__", None) or {}
    namespace = getattr(inspect.unwrap(target), "__globals__", {})
    hints = {}
    for name, annotation in raw.items():
        try:
            if isinstance(annotation, str):
                annotation = eval(annotation, namespace)  # noqa: S307 - the block's own source text
            hints[name] = annotation
        except Exception:  # noqa: BLE001 - an annotation that cannot be resolved is not checked
            continue
    return hints


def _adapter(annotation: Any) -> TypeAdapter | None:
    """A strict pydantic validator of ``annotation`` (None if pydantic cannot check it),
    cached per annotation."""
    try:
        return _cached_adapter(annotation)
    except TypeError:  # unhashable metadata inside the annotation: built each time
        return _new_adapter(annotation)


@functools.cache
def _cached_adapter(annotation: Any) -> TypeAdapter | None:
    return _new_adapter(annotation)


def _new_adapter(annotation: Any) -> TypeAdapter | None:
    try:
        return TypeAdapter(_lists_for_tuples(annotation), config=STRICT)
    except Exception:  # noqa: BLE001 - an annotation pydantic cannot check takes any value
        return None


def _lists_for_tuples(annotation: Any) -> Any:
    """``annotation`` with every ``tuple[...]`` accepting a list too (spec files have no tuples)."""
    origin, args = get_origin(annotation), get_args(annotation)
    if not args:
        return annotation
    if origin is Annotated:
        return Annotated[(_lists_for_tuples(args[0]), *annotation.__metadata__)]
    if origin is Literal:
        return annotation
    inner = tuple(a if a is Ellipsis else _lists_for_tuples(a) for a in args)
    if origin in (Union, types.UnionType):
        return Union[inner]  # noqa: UP007 - a union of a computed tuple of members
    if origin is tuple:
        return Annotated[tuple[inner], Strict(False)]
    try:
        return origin[inner if len(inner) > 1 else inner[0]]
    except TypeError:
        return annotation


def _plain(value: Any) -> Any:
    """``value`` with NumPy scalars as Python numbers (inside lists and tuples too)."""
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, (list, tuple)):
        return type(value)(_plain(v) for v in value)
    return value


# --------------------------------------------------------------------------- descriptions
_NOUNS: dict[Any, tuple[str, str]] = {
    int: ("an integer", "integers"),
    float: ("a number", "numbers"),
    bool: ("true or false", "true/false values"),
    str: ("a string", "strings"),
    type(None): ("null", "nulls"),
}


def describe(annotation: Any) -> str:
    """What ``annotation`` accepts, in words: ``int`` -> ``an integer``,
    ``Annotated[float, Gt(0)] | None`` -> ``a number > 0 or null``,
    ``Literal["a", "b"]`` -> ``one of a, b``, ``Sequence[int]`` -> ``a list of integers``."""
    return _describe(annotation, plural=False)


def _describe(annotation: Any, plural: bool) -> str:
    origin, args = get_origin(annotation), get_args(annotation)
    if origin is Annotated:
        bounds = [text for text in map(_constraint, annotation.__metadata__) if text]
        sizes = [text for text in bounds if text.startswith("with ")]
        values = " and ".join(text for text in bounds if not text.startswith("with "))
        return " ".join(part for part in (_describe(args[0], plural), values, *sizes) if part)
    if origin is Literal:
        values = ", ".join(str(v) for v in args)
        return (f"values from {values}" if plural else f"one of {values}") if len(args) > 1 else values
    if origin in (Union, types.UnionType):
        parts = [_describe(a, plural) for a in args if a is not type(None)]
        if type(None) in args:
            parts.append("null")
        return " or ".join(parts)
    if origin is tuple and args and args[-1] is not Ellipsis:
        items = ", ".join(_describe(a, False) for a in args)
        return f"lists [{items}]" if plural else f"a list [{items}]"
    if origin in (list, tuple, set, frozenset, Sequence) or (
            isinstance(origin, type) and issubclass(origin, Sequence) and origin is not str):
        element = _describe(args[0], plural=True) if args else "values"
        return f"lists of {element}" if plural else f"a list of {element}"
    if origin is not None and isinstance(origin, type) and issubclass(origin, Mapping):
        return "mappings" if plural else "a mapping"
    if annotation in _NOUNS:
        return _NOUNS[annotation][plural]
    name = getattr(annotation, "__name__", str(annotation))
    return f"{name} objects" if plural else f"{'an' if name[:1].lower() in 'aeiou' else 'a'} {name}"


def _constraint(metadata: Any) -> str:
    """``Gt(0)`` -> ``> 0``, ``Interval(ge=0, lt=1)`` -> ``>= 0 and < 1``, ``Len(2, 2)`` ->
    ``with 2 items``; other metadata -> ``""``."""
    if isinstance(metadata, at.Interval):
        return " and ".join(_constraint(part) for part in metadata)
    for kind, field, symbol in ((at.Gt, "gt", ">"), (at.Ge, "ge", ">="), (at.Lt, "lt", "<"), (at.Le, "le", "<=")):
        if isinstance(metadata, kind):
            bound = getattr(metadata, field)
            return f"{symbol} {bound:g}" if isinstance(bound, float) else f"{symbol} {bound}"
    if isinstance(metadata, (at.Len, at.MinLen, at.MaxLen)):
        low, high = getattr(metadata, "min_length", 0), getattr(metadata, "max_length", None)
        if high == low:
            return f"with {low} item{'s' if low != 1 else ''}"
        if high is None:
            return f"with at least {low} item{'s' if low != 1 else ''}"
        return f"with at most {high} items" if low == 0 else f"with {low}..{high} items"
    if isinstance(metadata, at.MultipleOf):
        return f"a multiple of {metadata.multiple_of}"
    return ""
