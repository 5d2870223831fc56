"""Creation-time flow decisions (``store/flow_decisions.py``) as a user sees them: when a
debounced run starts and what its ``reason`` says, on both backends."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import datetime

import pytest

import tether

START = 1_700_000_000.0  # the virtual clock starts here (and runs on at wall-clock pace)


@pytest.fixture
def clock_th(store_url: str) -> Iterator[tuple[tether.Harness, tether.VirtualClock]]:
    clock = tether.VirtualClock(START, auto_advance=False)
    th = tether.Harness(store_url, clock=clock)
    yield th, clock
    th.close()


def _starts(reason: str | None) -> float:
    """The start time a debounced run's reason gives."""
    match = re.fullmatch(r"debounced: starts (\S+) unless another trigger comes", reason or "")
    assert match, reason
    return datetime.fromisoformat(match.group(1)).timestamp()


def _due(th: tether.Harness, run_id: str) -> float:
    state = th.store.run_status(run_id)
    assert state is not None and state[0] == "queued" and state[1] is not None
    return state[1]


def _send(th: tether.Harness, data: dict[str, object]) -> tuple[float, float]:
    """Send an ``edit`` event; return the clock just before and just after."""
    before = th.clock.now()
    th.send(tether.Event("edit", data))
    return before, th.clock.now()


def _only_run(th: tether.Harness, function_id: str) -> tether.Run:
    (run,) = th.list_runs(function_id)
    return run


def test_max_wait_caps_the_first_delay(
    clock_th: tuple[tether.Harness, tether.VirtualClock],
) -> None:
    """Defect: with Debounce(period=30, max_wait=1) a lone event waited 30 s."""
    th, _ = clock_th

    @th.function(
        trigger=tether.on_event("edit"),
        debounce=tether.Debounce(period=30, key="event.data.doc", max_wait=1),
    )
    def reindex(ctx: tether.SyncContext) -> None:
        return None

    before, after = _send(th, {"doc": "d1"})
    run = _only_run(th, "reindex")
    assert before + 1 <= _due(th, run.id) <= after + 1
    assert _starts(run.reason) == pytest.approx(_due(th, run.id), abs=0.001)


def test_a_later_trigger_moves_the_start_and_the_reason_says_so(
    clock_th: tuple[tether.Harness, tether.VirtualClock],
) -> None:
    """Defect: the reason kept the first "starts ..." time after later events moved it."""
    th, clock = clock_th

    @th.function(
        trigger=tether.on_event("edit"),
        debounce=tether.Debounce(period=10, key="event.data.doc", max_wait=25),
    )
    def reindex(ctx: tether.SyncContext) -> None:
        return None

    first = _send(th, {"doc": "d1", "v": 1})
    run = _only_run(th, "reindex")
    assert first[0] + 10 <= _due(th, run.id) <= first[1] + 10
    clock.advance(4)
    second = _send(th, {"doc": "d1", "v": 2})
    run = _only_run(th, "reindex")  # still one run, now with the last event
    assert run.input == {"doc": "d1", "v": 2}
    assert second[0] + 10 <= _due(th, run.id) <= second[1] + 10
    assert _starts(run.reason) == pytest.approx(_due(th, run.id), abs=0.001)
    clock.advance(16)  # period would move it 10 s past now; max_wait caps it 25 s after the first
    _send(th, {"doc": "d1", "v": 3})
    run = _only_run(th, "reindex")
    assert first[0] + 25 <= _due(th, run.id) <= first[1] + 25
    assert _starts(run.reason) == pytest.approx(_due(th, run.id), abs=0.001)
