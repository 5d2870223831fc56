"""Cancel, replay from a step, code versions (patched, divergence, check-replay), listing,
paging and pruning."""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest

import tether


def _wait(predicate: Any, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached in time")
        time.sleep(0.01)


def test_cancel_takes_effect_at_the_next_step_boundary(th: tether.Harness) -> None:
    started = threading.Event()
    release = threading.Event()
    executed: list[str] = []

    def slow() -> str:
        started.set()
        release.wait(10)
        executed.append("slow")
        return "slow"

    @th.function()
    def job(ctx: tether.SyncContext) -> None:
        ctx.step.run("slow", slow)
        ctx.step.run("after", lambda: executed.append("after"))

    with th.worker():
        handle = th.enqueue(job)
        assert started.wait(10)
        assert th.cancel(handle.run_id) == "running"
        release.set()
        with pytest.raises(tether.RunCancelled):
            handle.result(timeout=10)
    assert executed == ["slow"]  # the step in flight finished; no further step started
    run = th.get_run(handle.run_id)
    assert run.status == "cancelled"
    assert [s.id for s in run.steps] == ["slow"]  # its result is kept


def test_cancel_interrupts_an_async_step_in_flight(th: tether.Harness) -> None:
    import asyncio

    entered = threading.Event()
    finished: list[bool] = []

    async def forever() -> None:
        entered.set()
        await asyncio.sleep(30)
        finished.append(True)

    @th.function()
    async def job(ctx: tether.Context) -> None:
        await ctx.step.run("forever", forever)

    with th.worker():
        handle = th.enqueue(job)
        assert entered.wait(10)
        started = time.monotonic()
        th.cancel(handle.run_id)
        with pytest.raises(tether.RunCancelled):
            handle.result(timeout=10)
        assert time.monotonic() - started < 5
    assert finished == []


def test_cancel_a_sleeping_run(th: tether.Harness) -> None:
    @th.function()
    async def napper(ctx: tether.Context) -> None:
        await ctx.step.sleep("nap", 60)

    with th.worker():
        handle = th.enqueue(napper)
        _wait(lambda: handle.status() == "sleeping")
    assert th.cancel(handle.run_id) == "cancelled"
    assert handle.status() == "cancelled"
    with pytest.raises(tether.RunCancelled):
        handle.result(timeout=1)


def test_replay_from_a_step_reuses_earlier_results(th: tether.Harness) -> None:
    calls: list[str] = []
    broken = {"on": True}

    def fetch() -> int:
        calls.append("fetch")
        return 5

    def transform(x: int) -> int:
        calls.append("transform")
        if broken["on"]:
            raise tether.NonRetriableError("bug in transform")
        return x * 2

    def store(x: int) -> int:
        calls.append("store")
        return x + 1

    @th.function()
    def etl(ctx: tether.SyncContext) -> int:
        x = ctx.step.run("fetch", fetch)
        y = ctx.step.run("transform", transform, x)
        return int(ctx.step.run("store", store, y))

    with pytest.raises(tether.RunFailed) as info:
        th.run(etl)
    assert calls == ["fetch", "transform"]
    broken["on"] = False  # "fix the code", then rerun from the failed step
    calls.clear()
    handle = th.replay(info.value.run_id, from_step="transform")
    with th.worker():
        assert handle.result(timeout=10) == 11
    assert calls == ["transform", "store"]  # fetch came from the original run
    fork = th.get_run(handle.run_id)
    assert fork.replay_of == info.value.run_id
    assert [s.id for s in fork.steps] == ["fetch", "transform", "store"]
    with pytest.raises(tether.ConfigurationError, match="no step 'nope'"):
        th.replay(info.value.run_id, from_step="nope")


def _two_step_app(store_url: str, *, changed: bool, version: str) -> tether.Harness:
    th = tether.Harness(store_url, version=version)

    @th.function(id="flow")
    async def flow(ctx: tether.Context) -> str:
        await ctx.step.run("a", lambda: "a")
        if changed:
            await ctx.step.run("inserted", lambda: "new")
        await ctx.step.sleep("nap", 0.3)
        await ctx.step.run("b", lambda: "b")
        return "done"

    return th


def test_divergence_fails_with_a_structured_diff(store_url: str) -> None:
    old = _two_step_app(store_url, changed=False, version="v1")
    handle = old.enqueue("flow")
    with old.worker():
        _wait(lambda: handle.status() == "sleeping")
    old.close()

    new = _two_step_app(store_url, changed=True, version="v2")
    results = new.check_replay()
    assert len(results) == 1 and not results[0]["ok"]
    assert {"position": 1, "expected": "sleep:nap", "actual": "run:inserted"} in results[0]["diff"]
    with new.worker(), pytest.raises(tether.RunFailed) as info:
        handle.result(timeout=10)
    assert info.value.error["type"] == "NonDeterminismError"
    assert "expected 'sleep:nap', got 'run:inserted'" in info.value.error["message"]
    assert "v1" in info.value.error["message"] and "patched" in info.value.error["message"]
    new.close()


def test_patched_keeps_old_runs_on_the_old_path(store_url: str) -> None:
    old = tether.Harness(store_url)
    calls: list[str] = []

    @old.function(id="flow")
    async def flow_v1(ctx: tether.Context) -> str:
        await ctx.step.run("a", lambda: "a")
        await ctx.step.sleep("nap", 0.3)
        await ctx.step.run("b", lambda: "b")
        return "v1"

    handle = old.enqueue("flow")
    with old.worker():
        _wait(lambda: handle.status() == "sleeping")
    old.close()

    new = tether.Harness(store_url)

    @new.function(id="flow")
    async def flow_v2(ctx: tether.Context) -> str:
        await ctx.step.run("a", lambda: "a")
        if ctx.patched("extra-step"):
            await ctx.step.run("extra", lambda: calls.append("extra"))
        await ctx.step.sleep("nap", 0.3)
        await ctx.step.run("b", lambda: "b")
        return "v2"

    assert all(r["ok"] for r in new.check_replay())
    with new.worker():
        assert handle.result(timeout=10) == "v2"
        assert calls == []  # the old run kept the old path
        assert new.run("flow", timeout=10) == "v2"
        assert calls == ["extra"]  # a new run takes the new path
    new.close()


def test_list_runs_pages_newest_first_and_filters(th: tether.Harness) -> None:
    @th.function()
    def noop(ctx: tether.SyncContext) -> int:
        return int(ctx.event.data["n"])

    ids = [th.enqueue(noop, {"n": n}).run_id for n in range(7)]
    page1 = th.list_runs(function_id="noop", limit=3)
    page2 = th.list_runs(function_id="noop", limit=3, before=page1[-1].id)
    page3 = th.list_runs(function_id="noop", limit=3, before=page2[-1].id)
    assert [r.id for r in page1 + page2 + page3] == list(reversed(ids))
    assert th.list_runs(status="queued", limit=100)[0].status == "queued"
    with pytest.raises(tether.ConfigurationError, match="not a run status"):
        th.list_runs(status="bogus")


def test_prune_removes_old_finished_runs_only(vth: tether.Harness) -> None:
    @vth.function()
    def quick(ctx: tether.SyncContext) -> int:
        return int(ctx.step.run("one", lambda: 1))

    vth.run(quick)
    waiting = vth.enqueue(quick)
    vth.clock.advance(40 * 86400)  # type: ignore[attr-defined]
    counts = vth.prune(older_than="30d")
    assert counts["runs"] == 1 and counts["steps"] == 1
    assert [r.id for r in vth.list_runs()] == [waiting.run_id]
