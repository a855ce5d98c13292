"""Fixtures of the pipelines tests: a private Prefect home and server, tiny data, tiny specs.

``PREFECT_HOME`` (Prefect's database and result storage) and ``PARADIME_STORE`` point at
temporary folders *before* prefect is imported (removed when the session's process exits),
so no run of this suite sees another's results; one ``prefect_test_harness`` serves the whole session (it takes ~10 s to start).
"""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile

_ROOT = tempfile.mkdtemp(prefix="paradime-pipelines-tests-")
atexit.register(shutil.rmtree, _ROOT, ignore_errors=True)  # the Prefect database and stores
os.environ["PREFECT_HOME"] = os.path.join(_ROOT, "prefect-home")
os.environ["PARADIME_STORE"] = os.path.join(_ROOT, "default-store")
os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "90")
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("DO_NOT_TRACK", "1")

import numpy as np  # noqa: E402
import pytest  # noqa: E402
from _pipeline_specs import N_ROWS, tiny_spec  # noqa: E402


@pytest.fixture(scope="session")
def prefect_server():
    """One Prefect test server for the session (offline, private database)."""
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=90):
        from prefect.settings import PREFECT_API_URL

        yield PREFECT_API_URL.value()


@pytest.fixture(scope="session")
def digits() -> tuple[np.ndarray, np.ndarray]:
    from sklearn.datasets import load_digits

    X, y = load_digits(return_X_y=True)
    return X[:N_ROWS].astype(np.float32), y[:N_ROWS].astype(np.int64)


@pytest.fixture(scope="session")
def data_dir(tmp_path_factory, digits) -> str:
    """digits as npz (X, y) plus a copy with other values (new data)."""
    folder = tmp_path_factory.mktemp("data")
    X, y = digits
    np.savez(folder / "digits.npz", X=X, y=y)
    rng = np.random.default_rng(1)
    np.savez(folder / "digits_new.npz", X=X + rng.normal(0, 0.5, X.shape).astype(np.float32), y=y)
    return str(folder)


@pytest.fixture()
def spec_file(tmp_path) -> str:
    path = tmp_path / "tiny.yaml"
    path.write_text(tiny_spec())
    return str(path)
