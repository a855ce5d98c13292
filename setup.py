"""Build hook: the wheel carries the bundled specs.

``specs/*.yaml`` stays at the top of the source tree (where users and docs refer to it); when
a wheel or a regular install is built, the specs are copied into ``pipelines/specs/``, one of
the folders :func:`pipelines.bundled.spec_dirs` searches. Editable installs read ``specs/``
in place and copy nothing. Everything else is configured in ``pyproject.toml``.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

SPECS = Path(__file__).resolve().parent / "specs"


class BuildWithSpecs(build_py):
    """``build_py`` plus a copy of ``specs/*.yaml`` into the built ``pipelines`` package."""

    def run(self) -> None:
        super().run()
        if getattr(self, "editable_mode", False):
            return
        target = Path(self.build_lib) / "pipelines" / "specs"
        target.mkdir(parents=True, exist_ok=True)
        for path in sorted(SPECS.glob("*.yaml")):
            shutil.copy2(path, target / path.name)


setup(cmdclass={"build_py": BuildWithSpecs})
