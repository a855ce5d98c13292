"""Helpers of the store fault tests: a private Prefect home, tiny data and spec, byte flips.

Importing this module points ``PREFECT_HOME`` and ``PARADIME_STORE`` at a temporary folder
before anything imports prefect, so no test sees another run's state.
"""

from __future__ import annotations

import atexit
import os
import shutil
import sys
import tempfile
from pathlib import Path

_ROOT = tempfile.mkdtemp(prefix="paradime-store-faults-")
atexit.register(shutil.rmtree, _ROOT, ignore_errors=True)
os.environ.setdefault("PREFECT_HOME", os.path.join(_ROOT, "prefect-home"))
os.environ.setdefault("PARADIME_STORE", os.path.join(_ROOT, "default-store"))
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("DO_NOT_TRACK", "1")

import numpy as np  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "pipelines"))
from _pipeline_specs import N_ROWS, tiny_spec  # noqa: E402  (the pipelines tests' tiny spec)


def write_inputs(folder: Path, rows: int = N_ROWS, features: int | None = None, seed: int = 0) -> tuple[str, str]:
    """A tiny spec file and an npz of digits (or of random rows with ``features`` columns)."""
    folder.mkdir(parents=True, exist_ok=True)
    spec = folder / "tiny.yaml"
    spec.write_text(tiny_spec())
    if features is None:
        from sklearn.datasets import load_digits

        X, y = load_digits(return_X_y=True)
        X, y = X[:rows].astype(np.float32), y[:rows].astype(np.int64)
    else:
        rng = np.random.default_rng(seed)
        X = rng.normal(size=(rows, features)).astype(np.float32)
        y = rng.integers(0, 5, rows)
    data = folder / "data.npz"
    np.savez(data, X=X, y=y)
    return str(spec), str(data)


def fit(spec: str, data: str, store: Path) -> object:
    """One plain-Python run (no Prefect) of ``spec`` on ``data`` in ``store``."""
    from pipelines.flows import run_spec

    return run_spec(spec, data, str(store), progress=False)


def flip_byte(path: Path, offset: int | None = None) -> None:
    """Invert one byte of a file (the middle one by default); its size stays the same."""
    data = bytearray(path.read_bytes())
    position = len(data) // 2 if offset is None else offset
    data[position] ^= 0xFF
    path.write_bytes(bytes(data))


def chunk_files(stage: Path) -> list[Path]:
    """The chunk files of a stage folder (every file but the zarr.json metadata), largest first."""
    files = [p for p in stage.rglob("*") if p.is_file() and p.name != "zarr.json"]
    return sorted(files, key=lambda p: (-p.stat().st_size, str(p)))


def embedding(store: Path, key: str) -> np.ndarray:
    from pipelines.store import ArtifactStore

    return np.asarray(ArtifactStore(store).open_group("embeddings", key)["embedding"][...])


_FITTED: dict[str, tuple] = {}


def fitted_store() -> tuple[Path, str, str, object, dict[str, str]]:
    """The tiny spec fitted once per test session (store, spec, data, run result, stage keys
    by ``kind:name``). Tests that damage it work on a copy."""
    if "tiny" not in _FITTED:
        root = Path(_ROOT) / "fitted"
        spec, data = write_inputs(root / "inputs")
        result = fit(spec, data, root / "store")
        keys = {f"{r.kind}:{r.name}": r.key for r in result.records}
        _FITTED["tiny"] = (root / "store", spec, data, result, keys)
    return _FITTED["tiny"]
