"""One registry per kind of building block.

A spec element's ``type`` (or ``func``) names exactly one registered implementation.
Names are canonicalised (lower case, spaces and hyphens become underscores), so the
paper's spellings ``t-dist``, ``kl div`` and ``normalize rows`` find ``t_dist``,
``kl_div`` and ``normalize_rows``. Users add their own with a decorator::

    from paradime_core import register_loss_function

    @register_loss_function("huber")
    def huber(p, q): ...

An implementation may declare ``option_aliases = {"alias": "option"}`` (other spellings
of its options, e.g. the original ParaDime's); the spec layer stores the canonical names.

**Options.** A block's options are the keyword parameters of its constructor (or function),
and each parameter's annotation is the option's type, constraints included
(``perplexity: Annotated[float, Gt(0)] = 30.0``, ``metric: Literal["euclidean", "cosine"]``,
``n_neighbors: Annotated[int, Ge(1)] | None``). The spec layer checks every option's name and
value against them before building the block
(:func:`paradime_core.spec.option_types.check_options`), so a block checks in its
constructor only what annotations cannot say: one option against another, or against the
data. Unannotated parameters take any value. For a block whose signature is not yours,
``register(..., option_types={"lr": Annotated[float, Gt(0)]})`` gives the types.
"""

from __future__ import annotations

import difflib
import importlib
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any, Generic, TypeVar

from paradime_core.errors import SpecError

T = TypeVar("T")


def canonical_name(name: str) -> str:
    """``'Kl Div'`` -> ``'kl_div'``; ``'t-dist'`` -> ``'t_dist'``."""
    return "_".join(str(name).strip().lower().replace("-", " ").replace("_", " ").split())


class Registry(Generic[T]):
    """A name -> implementation table for one kind of building block.

    Parameters
    ----------
    kind : str
        What the registry holds, as error messages name it (``"relation"``).
    builtins : str
        The module holding the built-in implementations; importing it registers them. It is
        imported on the registry's first use (a look-up or a registration), so importing
        the registry itself loads no torch, and a user's ``overwrite=True`` registration
        replaces a built-in rather than being replaced by it.
    """

    def __init__(self, kind: str, builtins: str):
        self.kind = kind
        self.builtins = builtins
        self._entries: dict[str, T] = {}
        self._aliases: dict[str, str] = {}
        self._option_types: dict[str, Mapping[str, Any]] = {}
        self._builtins_state = "unloaded"  # -> "loading" -> "loaded"

    def _load_builtins(self) -> None:
        """Import the module of the built-ins once; a registration while it loads is theirs."""
        if self._builtins_state != "unloaded":
            return
        self._builtins_state = "loading"
        try:
            importlib.import_module(self.builtins)
        except BaseException:
            self._builtins_state = "unloaded"
            raise
        self._builtins_state = "loaded"

    def register(
        self, name: str | None = None, *, aliases: tuple[str, ...] = (), overwrite: bool = False,
        option_types: Mapping[str, Any] | None = None,
    ) -> Callable[[T], T]:
        """Decorator registering an implementation under ``name`` (default: its __name__).

        Parameters
        ----------
        name : str, optional
            The name specs use (canonicalised); default the implementation's ``__name__``.
        aliases : tuple of str
            Other names that find it.
        overwrite : bool
            Replace an implementation registered under ``name`` (else a ValueError).
        option_types : mapping, optional
            Option name -> annotation, replacing the signature's annotation of that option
            when options are checked (for implementations whose signature is not yours).
        """

        def decorator(obj: T) -> T:
            self._load_builtins()
            key = canonical_name(name or obj.__name__)
            if not overwrite and key in self._entries and self._entries[key] is not obj:
                raise ValueError(f"{self.kind} '{key}' is already registered")
            self._entries[key] = obj
            self._option_types[key] = dict(option_types or {})
            for alias in aliases:
                self._aliases[canonical_name(alias)] = key
            return obj

        return decorator

    def unregister(self, name: str) -> None:
        """Remove ``name`` and the aliases pointing to it (KeyError if it is not registered)."""
        key = self.resolve(name)
        if key is None:
            raise KeyError(f"{self.kind} '{name}' is not registered")
        del self._entries[key]
        self._option_types.pop(key, None)
        self._aliases = {alias: target for alias, target in self._aliases.items() if target != key}

    def resolve(self, name: str) -> str | None:
        """The canonical registered name for ``name`` (or None)."""
        self._load_builtins()
        key = canonical_name(name)
        key = self._aliases.get(key, key)
        return key if key in self._entries else None

    def get(self, name: str, where: str = "") -> T:
        """The implementation named ``name``; a :class:`SpecError` at ``where`` otherwise."""
        if not isinstance(name, str):
            raise SpecError(where, f"expected a {self.kind} name (string), got {type(name).__name__}")
        key = self.resolve(name)
        if key is None:
            raise SpecError(where, f"'{name}' is not one of {', '.join(self.names())}"
                            f"{did_you_mean(canonical_name(name), [*self._entries, *self._aliases])}")
        return self._entries[key]

    def option_types(self, name: str) -> Mapping[str, Any]:
        """The option types given at registration for ``name`` (empty when none were)."""
        key = self.resolve(name)
        return self._option_types.get(key, {}) if key is not None else {}

    def names(self) -> list[str]:
        self._load_builtins()
        return sorted(self._entries)

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and self.resolve(name) is not None

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def __repr__(self) -> str:
        return f"Registry({self.kind!r}: {', '.join(self.names())})"


def did_you_mean(word: str, candidates: Iterable[str]) -> str:
    """``"; did you mean 'adam'?"`` for the closest candidate, or ``""``."""
    close = difflib.get_close_matches(word, list(candidates), n=1, cutoff=0.75)
    return f"; did you mean '{close[0]}'?" if close else ""


def resolve_options(impl: Any, options: Mapping[str, Any], where: str) -> dict[str, Any]:
    """``options`` with alias names replaced by the names ``impl`` declares.

    An implementation may declare ``option_aliases = {"alias": "name", ...}`` (e.g. the
    original ParaDime's spelling of an option); option names are compared canonicalised.
    Giving both an alias and its target is a :class:`SpecError` at ``where.<alias>``.
    """
    aliases = {canonical_name(a): t for a, t in (getattr(impl, "option_aliases", None) or {}).items()}
    out: dict[str, Any] = {}
    renamed: dict[str, str] = {}
    for key, value in options.items():
        target = aliases.get(canonical_name(key), key)
        if target in out:
            first = renamed.get(target, target)
            raise SpecError(f"{where}.{key}", f"given twice (as '{first}' and '{key}')")
        out[target] = value
        renamed[target] = key
    return out


RELATIONS: Registry[Any] = Registry("relation", builtins="paradime_core.relations")
TRANSFORMS: Registry[Any] = Registry("transform", builtins="paradime_core.relations")
LOSS_FUNCTIONS: Registry[Any] = Registry("loss function", builtins="paradime_core.losses")
LOSS_TYPES: Registry[Any] = Registry("loss type", builtins="paradime_core.losses")
DATA_FUNCTIONS: Registry[Any] = Registry("data function", builtins="paradime_core.derived")
SAMPLERS: Registry[Any] = Registry("sampler", builtins="paradime_core.sampling")
OPTIMIZERS: Registry[Any] = Registry("optimizer", builtins="paradime_core.training.optimizers")
MODELS: Registry[Any] = Registry("model", builtins="paradime_core.models")

register_relation = RELATIONS.register
register_transform = TRANSFORMS.register
register_loss_function = LOSS_FUNCTIONS.register
register_loss_type = LOSS_TYPES.register
register_data_function = DATA_FUNCTIONS.register
register_sampler = SAMPLERS.register
register_optimizer = OPTIMIZERS.register
register_model = MODELS.register
