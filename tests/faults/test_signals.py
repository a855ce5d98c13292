"""SIGINT, SIGTERM and SIGKILL of real ``paradime run`` processes, in every stage kind and both
modes (Prefect's temporary server, ``--no-prefect``), each followed by a run that resumes.

An interrupted command ends within seconds with exit status 130/143 and one ``interrupted``
line, removes the stage it was writing and leaves no process behind; after SIGKILL the
temporary Prefect server ends too. The next run reuses every stage completed before.

Most cases reach a stage through the test-only pause of ``inject/sitecustomize.py``; one
interrupts real training work. The default run holds three representative cases; the full
matrix is ``slow``.
"""

from __future__ import annotations

import signal

import pytest

from ._processes import STAGE_KINDS, complete_stages, leftovers, paused, start, write_inputs

EXIT_SECONDS = 10.0  # "within a few seconds" on a loaded two-core machine
LINES = {signal.SIGINT: "interrupted", signal.SIGTERM: "interrupted (SIGTERM)"}


def _assert_interrupted(command, signum: int, store) -> None:
    code = command.finish(timeout=120)
    text = command.text()
    if signum == signal.SIGKILL:
        assert code == -signal.SIGKILL, text
    else:
        assert code == 128 + signum, text
        assert command.stderr_lines() == [LINES[signum]], text
        assert "Traceback" not in text
        assert leftovers(store) == [], "an interrupted stage must remove its temporary group"
    assert command.seconds_to_exit < EXIT_SECONDS, f"{command.seconds_to_exit:.1f} s to exit"
    assert command.survivors(timeout=10) == [], "no process may outlive the command"
    print(f"{signal.Signals(signum).name}: exit after {command.seconds_to_exit:.2f} s, "
          f"no descendant after {command.seconds_to_no_children:.2f} s")


def _resume(args, tmp_path, before: dict[str, str], name: str = "resume") -> dict:
    """Run to the end (no Prefect: faster) and check that every earlier stage was reused."""
    command = start([*args, "--json"], tmp_path, prefect=False, name=name)
    assert command.finish(timeout=600) == 0, command.text()
    status = {f"{r['kind']}/{r['key']}": r["status"] for r in command.result()["records"]}
    reused = {key for key in before if key in status}
    assert reused == set(before), "every stage completed before the interrupt is part of the run"
    assert all(status[key] == "cached" for key in before), status
    after = complete_stages(tmp_path / "store")
    assert all(after[key] == created for key, created in before.items()), "completed stages are not rewritten"
    return status


def _interrupt_paused(tmp_path, spec, data, kind: str, signum: int, prefect: bool, name: str) -> dict[str, str]:
    store = tmp_path / "store"
    (tmp_path / f"{kind}.paused").unlink(missing_ok=True)
    args = ["run", spec, "--data", data, "--store", str(store)]
    command = start(args, tmp_path, prefect=prefect, pause=kind, name=name)
    try:
        assert command.wait_for(paused(tmp_path, kind)), command.text()
        before = complete_stages(store)
        command.send(signum)
        _assert_interrupted(command, signum, store)
    finally:
        command.kill_all()
    assert complete_stages(store) == before, "an interrupt publishes nothing and removes nothing"
    return before


# --------------------------------------------------------------------------- default run
def test_ctrl_c_in_training_with_the_temporary_prefect_server(tmp_path):
    """The reported hang: Ctrl-C during a phase in ephemeral mode. Real training work."""
    spec, data = write_inputs(tmp_path, epochs=150)
    store = tmp_path / "store"
    args = ["run", spec, "--data", data, "--store", str(store)]
    command = start(args, tmp_path, prefect=True)
    try:
        def training_main_phase() -> bool:
            phases = [key for key in complete_stages(store) if key.startswith("phases/")]
            return len(phases) == 1 and any(name.startswith("phases-") for name in leftovers(store))

        assert command.wait_for(training_main_phase), command.text()
        before = complete_stages(store)
        assert any("uvicorn" in line for line in command.children()), "the temporary Prefect server runs"
        command.send(signal.SIGINT)
        _assert_interrupted(command, signal.SIGINT, store)
    finally:
        command.kill_all()
    status = _resume(args, tmp_path, before)
    assert [key for key, value in status.items() if value == "computed"] == [
        key for key in status if key.startswith(("phases/", "embeddings/", "reports/")) and key not in before]


def test_sigkill_does_not_leave_the_temporary_prefect_server(tmp_path):
    spec, data = write_inputs(tmp_path)
    before = _interrupt_paused(tmp_path, spec, data, "derived", signal.SIGKILL, prefect=True, name="killed")
    _resume(["run", spec, "--data", data, "--store", str(tmp_path / "store")], tmp_path, before)


def test_sigterm_in_knn_without_prefect(tmp_path):
    spec, data = write_inputs(tmp_path)
    before = _interrupt_paused(tmp_path, spec, data, "knn", signal.SIGTERM, prefect=False, name="terminated")
    _resume(["run", spec, "--data", data, "--store", str(tmp_path / "store")], tmp_path, before)


# --------------------------------------------------------------------------- full matrix
@pytest.mark.slow
@pytest.mark.timeout(1800)  # eight runs, seven of them interrupted, each starting Python (and Prefect)
@pytest.mark.parametrize("prefect", [True, False], ids=["prefect", "no-prefect"])
@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM, signal.SIGKILL],
                         ids=["SIGINT", "SIGTERM", "SIGKILL"])
def test_interrupt_in_every_stage_kind_then_resume(tmp_path, signum, prefect):
    """One store: each run is interrupted in the next stage kind, then a run completes.

    Each run after the first is also the resume of the one before: every stage completed
    before it is reused (never rewritten) while it goes on to the next kind.
    """
    spec, data = write_inputs(tmp_path)
    store = tmp_path / "store"
    completed: dict[str, str] = {}
    for kind in STAGE_KINDS:
        before = _interrupt_paused(tmp_path, spec, data, kind, signum, prefect, name=f"{kind}")
        assert all(before.get(key) == created for key, created in completed.items()), kind
        assert not any(key.startswith(f"{kind}/") for key in before if key not in completed), kind
        completed = before
    _resume(["run", spec, "--data", data, "--store", str(store)], tmp_path, completed)
