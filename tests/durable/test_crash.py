"""Crash recovery with real processes: a worker SIGKILLed in the middle of a step.

Runs execute in ``tether worker`` subprocesses on a SQLite file under tmp_path; the test
process only enqueues and reads. Each step callable appends ``<step> <pid>`` to ``begun``
when it starts and ``<step>`` to ``effects`` when it is done, so the files count every
execution; the gate step blocks until the test releases it, so the kill lands inside it.
"""

from __future__ import annotations

import collections
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.durable.apps.durable_app import STEPS
from tests.durable.apps.sandbox import Sandbox, lines, result, wait_for

EXPECTED = {"squares": [i * i for i in range(1, STEPS + 1)], "total": 385}


@pytest.fixture
def sandbox(tmp_path: Path, store_url: str) -> Iterator[Sandbox]:
    with Sandbox(tmp_path, store_url) as box:
        yield box


def _in_flight(files: dict[str, str], k: int) -> list[str] | None:
    """The begun lines once steps 1..k-1 are done and step k has started, else None."""
    begun = lines(Path(files["begun"]))
    done = lines(Path(files["effects"]))
    return begun if len(done) == k - 1 and len(begun) == k else None


@pytest.mark.parametrize(
    ("function", "k"),
    [("ten-steps-sync", 5), ("ten-steps-async", 5), ("ten-steps-sync", 1), ("ten-steps-async", 10)],
)
def test_run_killed_in_step_k_resumes_without_repeating_earlier_steps(
    sandbox: Sandbox, function: str, k: int
) -> None:
    files = sandbox.step_files(gate=k)
    handle = sandbox.harness.enqueue(function, files)
    first = sandbox.worker()
    begun = wait_for(lambda: _in_flight(files, k), 30, f"step {k} to start")
    assert {line.split()[1] for line in begun} == {str(first.pid)}

    sandbox.kill(first)
    killed_at = time.monotonic()
    # Step k was cut off before its side effect; releasing the gate lets its re-run finish.
    assert len(lines(Path(files["effects"]))) == k - 1
    Path(files["release"]).touch()
    second = sandbox.worker()

    assert result(sandbox, handle, timeout=30) == EXPECTED
    print(
        f"\n{function}, SIGKILL in step {k}: restart to completion {time.monotonic() - killed_at:.2f}s"
    )
    begun_by = collections.Counter(line.split()[0] for line in lines(Path(files["begun"])))
    effects = collections.Counter(lines(Path(files["effects"])))
    # Steps 1..k-1 ran once, in the killed worker; step k once more; the rest once.
    assert begun_by == {str(i): 2 if i == k else 1 for i in range(1, STEPS + 1)}
    assert effects == {str(i): 1 for i in range(1, STEPS + 1)}
    after = [line.split()[1] for line in lines(Path(files["begun"]))[k:]]
    assert set(after) == {str(second.pid)}
    run = sandbox.harness.get_run(handle.run_id)
    assert run.status == "completed"
    assert [s.id for s in run.steps] == [f"step-{i}" for i in range(1, STEPS + 1)]
    assert all(s.status == "completed" for s in run.steps)


def test_live_worker_takes_over_the_run_of_a_killed_worker(sandbox: Sandbox) -> None:
    k = 4
    workers = {str(p.pid): p for p in (sandbox.worker(), sandbox.worker())}
    files = sandbox.step_files(gate=k)
    handle = sandbox.harness.enqueue("ten-steps-async", files)
    begun = wait_for(lambda: _in_flight(files, k), 30, f"step {k} to start")
    (owner,) = {line.split()[1] for line in begun}
    (survivor,) = set(workers) - {owner}

    sandbox.kill(workers[owner])
    killed_at = time.monotonic()
    Path(files["release"]).touch()
    assert result(sandbox, handle, timeout=30) == EXPECTED
    recovery = time.monotonic() - killed_at
    print(f"\ntakeover by the live worker: SIGKILL to completion {recovery:.2f}s (lease 2s)")
    assert recovery < 10
    assert workers[survivor].poll() is None
    rest = [line.split() for line in lines(Path(files["begun"]))[k:]]
    assert rest == [[str(i), survivor] for i in range(k, STEPS + 1)]
