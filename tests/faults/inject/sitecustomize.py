"""Test-only faults for the ``paradime`` processes that tests/faults starts (this folder is put
on their ``PYTHONPATH``; Python imports ``sitecustomize`` at start-up). Nothing here is part
of paradime.

- ``PARADIME_FAULT_PAUSE=<kind>``: a stage of that kind (``datasets``, ``knn``, ``relations``,
  ``derived``, ``phases``, ``embeddings``, ``reports``), once its temporary group exists,
  creates ``$PARADIME_FAULT_DIR/<kind>.paused`` and sleeps, so a test can signal the process
  while that stage is in progress.
- ``PARADIME_FAULT_RAISE=<kind>``: a stage of that kind raises ``RuntimeError`` (an internal
  error, not a user mistake).
"""

import os
import sys

if os.path.basename(sys.argv[0] if sys.argv else "") == "paradime" and (
        os.environ.get("PARADIME_FAULT_PAUSE") or os.environ.get("PARADIME_FAULT_RAISE")):
    import contextlib
    import time

    from pipelines.store import ArtifactStore

    _begin = ArtifactStore.begin

    @contextlib.contextmanager
    def _faulty_begin(self, kind, key, *args, **kwargs):
        with _begin(self, kind, key, *args, **kwargs) as writer:
            if kind == os.environ.get("PARADIME_FAULT_RAISE"):
                raise RuntimeError(f"injected fault in a {kind} stage")
            if kind == os.environ.get("PARADIME_FAULT_PAUSE"):
                open(os.path.join(os.environ["PARADIME_FAULT_DIR"], f"{kind}.paused"), "w").close()
                time.sleep(300)
            yield writer

    ArtifactStore.begin = _faulty_begin
