"""The bundled specs (``specs/*.yaml``) and how a spec argument is resolved.

Spec folders, searched in order: ``$PARADIME_SPECS`` (folders separated by ``os.pathsep``),
the ``specs/`` folder of the source checkout, and a ``specs`` folder inside the installed
``paradime_core`` or ``pipelines`` packages. A spec argument is a path to a YAML/JSON file,
YAML text, or the name of a bundled spec (``umap`` for ``specs/umap.yaml``).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pipelines import errors

SPEC_SUFFIXES = (".yaml", ".yml", ".json")


@dataclass
class BundledSpec:
    name: str
    path: Path
    description: str


def spec_dirs() -> list[Path]:
    dirs = [Path(p) for p in os.environ.get("PARADIME_SPECS", "").split(os.pathsep) if p]
    here = Path(__file__).resolve().parent
    dirs.append(here.parent / "specs")
    dirs.append(here / "specs")
    try:
        import importlib.util

        core = importlib.util.find_spec("paradime_core")
        for location in (core.submodule_search_locations or []) if core else []:
            dirs.append(Path(location) / "specs")
    except (ImportError, ValueError):
        pass
    seen, out = set(), []
    for d in dirs:
        if d.is_dir() and d.resolve() not in seen:
            seen.add(d.resolve())
            out.append(d)
    return out


def _description(path: Path) -> str:
    try:
        import yaml

        raw = yaml.safe_load(path.read_text())
    except Exception:  # a broken file still gets listed
        return "(unreadable)"
    if isinstance(raw, dict):
        text = raw.get("description") or raw.get("name") or ""
        return " ".join(str(text).split())
    return ""


def list_specs() -> list[BundledSpec]:
    """Every bundled spec (first folder wins for a repeated name), sorted by name."""
    found: dict[str, BundledSpec] = {}
    for folder in spec_dirs():
        for path in sorted(folder.iterdir()):
            if path.suffix.lower() in SPEC_SUFFIXES and path.stem not in found:
                found[path.stem] = BundledSpec(path.stem, path, _description(path))
    return sorted(found.values(), key=lambda s: s.name)


def resolve_spec_path(argument: str) -> Path | None:
    """The file a spec argument names (a path or a bundled name), or None for YAML text."""
    if "\n" in argument or argument.lstrip().startswith("{"):
        return None
    path = Path(argument).expanduser()
    if path.is_file():
        return path.resolve()
    if path.suffix.lower() in SPEC_SUFFIXES or os.sep in argument:
        raise errors.SpecError("spec", f"file not found: {argument}")
    for spec in list_specs():
        if spec.name == argument:
            return spec.path
    names = ", ".join(s.name for s in list_specs()) or "none found"
    raise errors.SpecError("spec", f"'{argument}' is neither a spec file nor a bundled spec (bundled: {names})")


def load_spec_argument(spec: Any) -> Any:
    """A :class:`~paradime_core.spec.Spec` from a Spec, dict, path, bundled name or YAML text."""
    from paradime_core.spec import Spec, load_spec

    if isinstance(spec, Spec):
        return spec
    if isinstance(spec, (str, os.PathLike)):
        path = resolve_spec_path(str(spec))
        if path is not None:
            return load_spec(path)
    return load_spec(spec)


class SpecHandle:
    """A spec argument whose parsed :class:`~paradime_core.spec.Spec` is loaded only when needed.

    A cached run needs only the spec's text (it keys the remembered plan) and its identity
    (remembered in the store under the text's fingerprint), so it never loads the core's heavy modules.
    """

    def __init__(self, argument: Any):
        self.argument = argument
        self._spec: Any = None
        self.text: str | None = None
        if isinstance(argument, (str, os.PathLike)):
            from paradime_core.spec.limits import read_spec_file

            path = resolve_spec_path(str(argument))
            self.text = read_spec_file(path) if path is not None else str(argument)
        elif type(argument).__name__ == "Spec":
            self._spec = argument

    @property
    def spec(self) -> Any:
        if self._spec is None:
            self._spec = load_spec_argument(self.argument)
        return self._spec

    def _record_path(self, seed: int, out_dim: int) -> str | None:
        from pipelines.fingerprint import text_fingerprint
        from pipelines.keys import code_version

        if self.text is None:
            return None
        digest = text_fingerprint("spec-text", self.text, int(seed), int(out_dim), code_version("phases"))
        return f"index/specs/{digest}.json"

    def validate(self, store: Any, seed: int = 0, out_dim: int = 2) -> None:
        """Parse and check the spec unless this exact text was checked (and run) before."""
        path = self._record_path(seed, out_dim)
        if path is None or store.read_json(path) is None:
            self.spec  # noqa: B018 - raises SpecError naming the problem

    def identity(self, store: Any, seed: int, out_dim: int) -> tuple[str, str | None]:
        """(spec id, spec name): from the store's record of this text, else from the parsed spec."""
        from pipelines.keys import spec_id

        record_path = self._record_path(seed, out_dim)
        if record_path is not None:
            record = store.read_json(record_path)
            if record:
                return record["spec_id"], record.get("name")
        spec = self.spec
        identity = spec_id(spec, seed, out_dim), spec.name
        if record_path is not None:
            store.write_json(record_path, {"spec_id": identity[0], "name": identity[1]})
        return identity
