"""10,000 runs asleep at once in one worker process: a sleeping run holds no thread, no
worker slot and no memory in the worker; all of them wake and complete.

The worker (``tether worker``, concurrency 50) runs in a subprocess; its resident memory
and thread count come from /proc/PID/status with 100 runs asleep and with 10,000.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

import tether
from tests.durable.apps.sandbox import Sandbox, proc_status, wait_for

TOTAL = 10_000
FIRST = 100
NAP = 40.0  # seconds: longer than it takes to put all 10,000 to sleep (6 s on 2 idle cores, 25 s loaded)
CONCURRENCY = 50
MAX_GROWTH_MB = 20  # about 2 KB per extra sleeper; a held coroutine or thread each costs more


@pytest.fixture
def sandbox(tmp_path: Path, store_url: str) -> Iterator[Sandbox]:
    with Sandbox(tmp_path, store_url) as box:
        yield box


def _naps(start: int, stop: int) -> list[tether.Event]:
    return [
        tether.Event("nap.requested", {"n": n, "seconds": NAP}, id=f"nap-{n}")
        for n in range(start, stop)
    ]


def _all(sandbox: Sandbox, status: str, count: int) -> bool:
    return sandbox.status_counts() == {status: count}


@pytest.mark.slow
def test_ten_thousand_sleepers_hold_no_thread_or_memory_and_all_complete(
    sandbox: Sandbox,
) -> None:
    th = sandbox.harness
    th.send(_naps(0, FIRST))
    worker = sandbox.worker(concurrency=CONCURRENCY)
    wait_for(lambda: _all(sandbox, "sleeping", FIRST), 30, f"{FIRST} runs asleep", poll=0.05)
    few = proc_status(worker.pid)

    started = time.monotonic()
    for start in range(FIRST, TOTAL, 1000):
        th.send(_naps(start, min(TOTAL, start + 1000)))
    # Only 50 slots: 10,000 runs asleep at once means a sleeper holds none.
    wait_for(
        lambda: _all(sandbox, "sleeping", TOTAL),
        NAP,
        f"all {TOTAL} runs asleep at once (the first ones wake after {NAP}s); "
        f"now {sandbox.status_counts()}",
        poll=0.05,
    )
    asleep_at = time.monotonic()
    many = proc_status(worker.pid)
    growth_mb = (many["rss_kb"] - few["rss_kb"]) / 1024
    print(
        f"\nworker RSS: {few['rss_kb'] / 1024:.1f} MB with {FIRST} asleep, "
        f"{many['rss_kb'] / 1024:.1f} MB with {TOTAL} asleep ({growth_mb:+.1f} MB); "
        f"threads {few['threads']} -> {many['threads']}; "
        f"{TOTAL - FIRST} runs put to sleep in {asleep_at - started:.1f}s"
    )
    assert growth_mb < MAX_GROWTH_MB
    assert many["threads"] <= few["threads"] + 4
    assert many["threads"] < CONCURRENCY

    wait_for(
        lambda: _all(sandbox, "completed", TOTAL),
        NAP + 60,
        f"all {TOTAL} runs to wake and complete; now {sandbox.status_counts()}",
        poll=0.05,
    )
    runs = th.list_runs("nap", status="completed", limit=TOTAL + 1)
    assert sorted(r.output["n"] for r in runs) == list(range(TOTAL))
    # How late each run completed after its wake time.
    lags = sorted(r.ended_at.timestamp() - r.output["due"] for r in runs)
    print(
        f"all {TOTAL} woke and completed; completion after the wake time: median "
        f"{statistics.median(lags) * 1000:.0f} ms, max {lags[-1] * 1000:.0f} ms"
    )
    assert lags[0] >= 0
    assert worker.poll() is None


def test_completed_sleep_keeps_when_it_fell_asleep_in_the_timeline(th: tether.Harness) -> None:
    @th.function()
    async def napper(ctx: tether.Context) -> str:
        await ctx.step.sleep("nap", 0.3)
        return "rested"

    assert th.run(napper, timeout=30) == "rested"
    run = th.list_runs("napper")[0]
    (step,) = th.get_run(run.id).steps
    assert step.status == "completed"
    assert step.started_at is not None and step.ended_at is not None
    assert (step.ended_at - step.started_at).total_seconds() >= 0.3
