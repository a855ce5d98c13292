"""The architecture contracts of ``.importlinter`` hold (layers, no cycles in the core)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _lint_imports(config: Path) -> subprocess.CompletedProcess[str]:
    script = Path(sys.executable).parent / "lint-imports"
    return subprocess.run([str(script), "--no-cache", "--config", str(config)], cwd=ROOT,
                          capture_output=True, text=True, timeout=300)


def test_import_contracts_are_kept():
    done = _lint_imports(ROOT / ".importlinter")
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-2000:]
    assert "0 broken" in done.stdout


def test_a_core_module_importing_upwards_breaks_a_contract(tmp_path):
    """The contracts can fail: a copy that forbids what the core does is reported broken."""
    config = (ROOT / ".importlinter").read_text().replace(  # blocks above the losses that use them
        "    losses | sampling | models\n    relations | derived\n",
        "    relations | derived\n    losses | sampling | models\n")
    (tmp_path / "strict.ini").write_text(config)
    done = _lint_imports(tmp_path / "strict.ini")
    assert done.returncode != 0
    assert "broken" in done.stdout


LIBRARIES = ("paradime_core", "pipelines")


def test_no_library_module_is_over_600_lines():
    long = {str(path.relative_to(ROOT)): n for package in LIBRARIES for path in (ROOT / package).rglob("*.py")
            if (n := len(path.read_text().splitlines())) > 600}
    assert long == {}


def test_code_and_docs_cite_decisions_not_design_notes():
    """History lives in docs/decisions/ and docs/tuning-log.md; nothing cites numbered notes."""
    texts = [p for d in (*LIBRARIES, "benchmarks", "experiments", "tests", "specs") for p in (ROOT / d).rglob("*")
             if p.suffix in (".py", ".md", ".yaml") and p.name != "test_architecture.py"]
    texts += [ROOT / "README.md", ROOT / "docs" / "RESULTS.md", *sorted((ROOT / "docs" / "decisions").glob("*.md"))]
    citing = [str(p.relative_to(ROOT)) for p in texts if "design note" in p.read_text().lower()
              or "design-notes" in p.read_text()]
    assert citing == []


def test_every_recipe_parameter_is_documented():
    """numpydoc: each ``__init__`` parameter of a recipe has its ``name : type`` entry."""
    import inspect

    from paradime_core import recipes

    for cls in (recipes.ParametricTSNE, recipes.ParametricUMAP, recipes.ParametricLargeVis, recipes.ParametricMDS):
        missing = [p for p in inspect.signature(cls).parameters if f"\n    {p} :" not in cls.__doc__]
        assert missing == [], cls.__name__
