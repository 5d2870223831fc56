"""Async steps never hold the engine's event loop on a store call that can wait.

A sleep, a wait, an invoke or a send whose write waits on a locked SQLite file (another
process holds the write lock) runs on the engine's I/O threads: meanwhile every other
async run of the process goes on, and so does the loop."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
import time
from pathlib import Path
from typing import Any

import pytest

import tether

HOLD = 1.0  # seconds another process holds the write lock


def _gaps(loop: asyncio.AbstractEventLoop, stop: threading.Event) -> list[float]:
    """Start a ticker on ``loop`` recording the gaps between its ticks."""
    gaps: list[float] = []

    async def tick() -> None:
        last = time.monotonic()
        while not stop.is_set():
            await asyncio.sleep(0.01)
            now = time.monotonic()
            gaps.append(now - last)
            last = now

    asyncio.run_coroutine_threadsafe(tick(), loop)
    return gaps


@pytest.mark.parametrize("step", ["sleep", "wait", "send", "invoke"])
def test_a_step_write_waiting_on_a_locked_file_does_not_block_the_loop(
    tmp_path: Path, step: str
) -> None:
    db = tmp_path / "tether.db"
    th = tether.Harness(f"sqlite:///{db}?timeout=10")

    @th.function()
    async def child(ctx: tether.Context) -> str:
        return "child"

    @th.function()
    async def blocked(ctx: tether.Context) -> str:
        if step == "sleep":
            await ctx.step.sleep("nap", 0.01)
        elif step == "wait":
            await ctx.step.wait_for_event("wait", event="never", timeout=0.01)
        elif step == "send":
            await ctx.step.send_event("send", tether.Event("noted", {}))
        else:
            await ctx.step.invoke("child", function=child)
        return "done"

    try:
        engine = th.engine
        stop = threading.Event()
        gaps = _gaps(engine.loop, stop)
        other = sqlite3.connect(db, isolation_level=None)
        time.sleep(0.1)
        with th.worker(concurrency=4):
            handle = th.enqueue(blocked)
            time.sleep(0.05)
            other.execute("BEGIN IMMEDIATE")  # another process takes the write lock
            locked_at = time.monotonic()
            time.sleep(HOLD)
            other.execute("COMMIT")
            assert handle.result(timeout=30) == "done"
        stop.set()
        other.close()
        during = [g for g in gaps if g > 0]
        assert time.monotonic() - locked_at >= HOLD
        assert max(during) < HOLD / 2, f"the loop stalled for {max(during):.2f}s"
    finally:
        th.close()


def test_sibling_steps_of_a_gather_checkpoint_before_the_run_suspends(
    th: tether.Harness,
) -> None:
    """One branch sleeps durably while the other is still working: the run suspends only
    after the working branch has checkpointed, and no polling loop gives up on it."""
    calls: list[str] = []

    async def slow_branch() -> str:
        await asyncio.sleep(1.5)
        calls.append("slow")
        return "slow"

    @th.function()
    async def both(ctx: tether.Context) -> Any:
        results = await asyncio.gather(
            ctx.step.sleep("nap", 0.2), ctx.step.run("slow", slow_branch)
        )
        return results[1]

    assert th.run(both, timeout=30) == "slow"
    assert calls == ["slow"]  # checkpointed once, not re-executed after the sleep
