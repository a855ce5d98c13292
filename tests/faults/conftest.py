"""Fixtures of the fault-injection suite: a private Prefect home and store for the session.

``PREFECT_HOME`` and ``PARADIME_STORE`` point at temporary folders before prefect is
imported, so no case sees another run's results.
"""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile

_ROOT = tempfile.mkdtemp(prefix="paradime-faults-tests-")
atexit.register(shutil.rmtree, _ROOT, ignore_errors=True)
os.environ.setdefault("PREFECT_HOME", os.path.join(_ROOT, "prefect-home"))
os.environ.setdefault("PARADIME_STORE", os.path.join(_ROOT, "default-store"))
os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "90")
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("DO_NOT_TRACK", "1")
