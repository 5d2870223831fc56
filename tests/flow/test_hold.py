"""``Concurrency(hold=True)``: a run keeps its slot through durable sleeps and waits, so
two messages of one conversation never interleave; without it, a sleeping run gives its
slot back and the next one starts."""

from __future__ import annotations

import time
from typing import Any

import pytest

import tether


def _wait(th: tether.Harness, n: int, timeout: float = 30) -> list[tether.Run]:
    limit = time.monotonic() + timeout
    while True:
        runs = th.list_runs(function_id="reply")
        if len([r for r in runs if r.status == "completed"]) == n:
            return runs
        assert time.monotonic() < limit, [r.status for r in runs]
        time.sleep(0.05)


@pytest.mark.parametrize("hold", [True, False], ids=["hold", "release"])
def test_a_held_slot_is_kept_through_a_durable_sleep(th: tether.Harness, hold: bool) -> None:
    @th.function(
        id="reply",
        trigger=tether.on_event("user.message"),
        concurrency=tether.Concurrency(1, key="event.data.conversation_id", hold=hold),
    )
    async def reply(ctx: tether.Context) -> dict[str, Any]:
        start = await ctx.step.run("start", time.time)
        await ctx.step.sleep("think", 0.4)  # the run leaves the worker here
        end = await ctx.step.run("end", time.time)
        return {"start": start, "end": end}

    with th.worker(concurrency=4):
        th.send(tether.Event("user.message", {"conversation_id": "c1"}))
        time.sleep(0.1)
        th.send(tether.Event("user.message", {"conversation_id": "c1"}))
        runs = _wait(th, 2)
    first, second = sorted((r.output["start"], r.output["end"]) for r in runs)
    if hold:
        assert second[0] >= first[1], "the second message started while the first slept"
    else:
        assert second[0] < first[1], "without hold the sleeping run gives its slot back"


def test_hold_must_agree_on_both_limits(th: tether.Harness) -> None:
    with pytest.raises(tether.ConfigurationError, match="hold= must be the same"):
        th.function(
            concurrency=[
                tether.Concurrency(5),
                tether.Concurrency(1, key="event.data.user", hold=True),
            ]
        )(lambda ctx: None)
    with pytest.raises(tether.ConfigurationError, match="hold"):
        tether.Concurrency(1, hold="yes")  # type: ignore[arg-type]
