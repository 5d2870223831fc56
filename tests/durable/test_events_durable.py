"""An accepted event is never lost: the sender is SIGKILLed right after ``send`` returns,
with no clean shutdown, and a worker started afterwards completes the run it triggered.
A repeated event id creates nothing."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

import tether
from tests.durable.apps.sandbox import Sandbox, result


@pytest.fixture
def sandbox(tmp_path: Path, store_url: str) -> Iterator[Sandbox]:
    with Sandbox(tmp_path, store_url) as box:
        yield box


def test_event_accepted_before_a_sigkill_triggers_a_run_that_completes(sandbox: Sandbox) -> None:
    sender = sandbox.sender("order-1")
    assert sandbox.read_line(sender, timeout=30) == "sent"
    sandbox.kill(sender)

    th = sandbox.harness
    (run,) = th.list_runs("on-order")
    assert run.status == "queued"
    assert run.input == {"order": "order-1", "qty": 3, "unit": 7}

    # The same event id again, before and after the run completes: no second run.
    assert th.send(
        tether.Event("order.placed", {"order": "dup", "qty": 1, "unit": 1}, id="order-1")
    ) == ["order-1"]
    assert [r.id for r in th.list_runs("on-order")] == [run.id]

    sandbox.worker()
    handle = tether.RunHandle(th, run.id)
    assert result(sandbox, handle, timeout=30) == {"order": "order-1", "total": 21}
    duplicate = sandbox.sender("order-1")
    assert sandbox.read_line(duplicate, timeout=30) == "sent"
    assert [r.id for r in th.list_runs("on-order")] == [run.id]
    assert th.get_run(run.id).status == "completed"
