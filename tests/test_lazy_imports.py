"""Importing the core's light modules loads no torch; registries fill on first look-up.

Each case runs in a fresh interpreter (this test process has long imported everything).
"""

from __future__ import annotations

import subprocess
import sys

import pytest

HEAVY = ("torch", "sklearn", "scipy.sparse", "zarr", "prefect")


def _run(code: str) -> list[str]:
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return done.stdout.split()


def _heavy_modules_after(statement: str) -> list[str]:
    return _run(f"import sys; {statement}; print(*sorted(m for m in {HEAVY!r} if m in sys.modules), 'end')")


@pytest.mark.parametrize("statement", [
    "import paradime_core",
    "from paradime_core.errors import DataError, SpecError",
    "from paradime_core.spec.registry import RELATIONS, canonical_name",
    "from paradime_core import datasets; datasets.dataset_info('digits'); datasets.dataset_info('mnist')",
    "from pipelines.ingest import probe; probe('digits')",
])
def test_light_modules_import_no_heavy_library(statement):
    assert _heavy_modules_after(statement) == ["end"]


def test_public_names_load_on_first_use():
    out = _run("import sys, paradime_core as pc; before = 'torch' in sys.modules; "
               "cls = pc.ParametricUMAP; print(before, 'torch' in sys.modules, cls.__module__.rsplit('.', 1)[0], "
               "'paradime_core.recipes' in dir(pc) or 'ParametricUMAP' in dir(pc))")
    assert out == ["False", "True", "paradime_core.recipes", "True"]


def test_unknown_attribute_is_an_attribute_error():
    out = _run("import paradime_core as pc\ntry:\n    pc.NoSuchThing\nexcept AttributeError as e:\n    print('ok')")
    assert out == ["ok"]


def test_registry_lookup_loads_the_builtins():
    out = _run("from paradime_core.spec.registry import RELATIONS, LOSS_FUNCTIONS; "
               "print(RELATIONS.resolve('pairwise'), 'kl_div' in LOSS_FUNCTIONS)")
    assert out == ["pdist", "True"]  # 'pairwise' is pdist's alias


def test_user_overwrite_before_first_lookup_replaces_the_builtin():
    """A user's registration loads the built-ins first, so ``overwrite=True`` wins over them."""
    out = _run("from paradime_core.spec.registry import LOSS_FUNCTIONS, register_loss_function\n"
               "@register_loss_function('kl_div', overwrite=True)\n"
               "def mine(p, q):\n    return 0\n"
               "print(LOSS_FUNCTIONS.get('kl_div') is mine)")
    assert out == ["True"]


def test_user_name_clash_before_first_lookup_is_still_an_error():
    out = _run("from paradime_core.spec.registry import register_loss_function\n"
               "try:\n"
               "    register_loss_function('kl_div')(lambda p, q: 0)\n"
               "except ValueError as e:\n    print('clash')")
    assert out == ["clash"]


def test_importing_a_core_module_directly_works():
    out = _run("import paradime_core.losses as losses, paradime_core.models as models; "
               "from paradime_core.spec.registry import MODELS; print('fully_connected' in MODELS)")
    assert out == ["True"]


def test_loading_a_saved_routine_builds_no_optimizer(tmp_path):
    """Embedding with a saved model needs no optimizer: loading skips the trial construction,
    whose first call in a process imports torch._dynamo (~1.3 s)."""
    import numpy as np

    from paradime_core import ParametricUMAP

    X = np.random.default_rng(0).normal(size=(120, 6)).astype(np.float32)
    path = tmp_path / "umap.pt"
    ParametricUMAP(n_epochs=1, batches_per_epoch=2, init="random", random_state=0).fit(X).save(path)
    out = _run(f"import sys, numpy as np; from paradime_core import Routine; r = Routine.load({str(path)!r}); "
               "r.transform(np.zeros((3, 6), dtype=np.float32)); print('torch._dynamo' in sys.modules)")
    assert out == ["False"]
