"""Code versions of the stages, derived from the code itself.

A stage's code version is the package version plus a hash of the source of every core
module the stage runs: its entry modules and, transitively, every ``paradime_core`` module
they import. Imports are read from the sources (``import`` and ``from ... import``
statements anywhere in a module, with the packages that contain each module, and module
names passed as strings to a call, which is how each registry names the module of its
built-in blocks). Files are read, never imported, so a cached run loads no torch.

Editing any core module a stage depends on therefore changes the stage's key; editing one
it does not import (the metrics, for a kNN graph) leaves the key alone.
"""

from __future__ import annotations

import ast
import functools
import importlib.util
from pathlib import Path

from pipelines.fingerprint import text_fingerprint

PIPELINE_FORMAT = "paradime-pipelines/1"
CORE = "paradime_core"

#: The core modules each stage kind calls into (the rest follows from their imports).
STAGE_ENTRY_MODULES: dict[str, tuple[str, ...]] = {
    "knn": ("paradime_core.neighbors",),
    "relations": ("paradime_core.routine",),
    "derived": ("paradime_core.routine",),
    "phases": ("paradime_core.routine",),
    "embeddings": ("paradime_core.routine",),
    "reports": ("paradime_core.metrics", "paradime_core.plotting"),
}


def core_folder() -> Path:
    """The folder of the installed ``paradime_core`` package (found, not imported)."""
    spec = importlib.util.find_spec(CORE)
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("paradime_core is not importable")
    return Path(list(spec.submodule_search_locations)[0])


def module_files(folder: Path) -> dict[str, Path]:
    """Dotted module name -> source file, for every module of the core package in ``folder``."""
    files = {}
    for path in sorted(folder.rglob("*.py")):
        parts = list(path.relative_to(folder).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        files[".".join([CORE, *parts])] = path
    return files


def _parents(module: str) -> list[str]:
    parts = module.split(".")
    return [".".join(parts[:i]) for i in range(1, len(parts))]


@functools.lru_cache(maxsize=1024)
def imported_modules(source: str, module: str, is_package: bool, known: frozenset[str]) -> frozenset[str]:
    """The core modules that the source of ``module`` imports (see the module docstring)."""
    found: set[str] = set()
    package = module if is_package else module.rpartition(".")[0]
    for node in ast.walk(ast.parse(source)):
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                base = ".".join([*anchor, *([base] if base else [])])
            names = [base, *(f"{base}.{alias.name}" for alias in node.names)]
        elif isinstance(node, ast.Call):
            names = [arg.value for arg in [*node.args, *(k.value for k in node.keywords)]
                     if isinstance(arg, ast.Constant) and isinstance(arg.value, str)]
        for name in names:
            if name in known:
                found.update([name, *_parents(name)])
    return frozenset(found)


def dependencies(entries: tuple[str, ...], files: dict[str, Path]) -> list[str]:
    """``entries`` and every core module they import, transitively, sorted."""
    known = frozenset(files)
    seen: set[str] = set()
    todo = [m for entry in entries for m in (entry, *_parents(entry)) if m in known]
    while todo:
        module = todo.pop()
        if module in seen:
            continue
        seen.add(module)
        path = files[module]
        source = path.read_text(encoding="utf-8")
        todo.extend(imported_modules(source, module, path.name == "__init__.py", known) - seen)
    return sorted(seen)


def compute_code_version(kind: str, folder: Path) -> str:
    """Package version + hash of the sources of the core modules stage ``kind`` runs."""
    try:
        from importlib.metadata import version

        package = version("paradime")
    except Exception:  # not installed (running from a checkout)
        package = "0+unknown"
    files = module_files(folder)
    modules = dependencies(STAGE_ENTRY_MODULES.get(kind, ()), files)
    sources = {m: text_fingerprint(files[m].read_text(encoding="utf-8")) for m in modules}
    return text_fingerprint(PIPELINE_FORMAT, package, sources)


@functools.cache
def code_version(kind: str) -> str:
    """The code version of stage ``kind`` for the installed core (computed once per process)."""
    return compute_code_version(kind, core_folder())
