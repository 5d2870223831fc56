"""Flow control with real workers on one SQLite store: the observable guarantees."""

from __future__ import annotations

import threading
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

import pytest

import tether


def _wait(predicate: Any, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached in time")
        time.sleep(0.01)


def _intervals_overlap(spans: list[tuple[float, float]]) -> int:
    """The largest number of spans open at one instant."""
    points = sorted([(s, 1) for s, _ in spans] + [(e, -1) for _, e in spans])
    best = now = 0
    for _, delta in points:
        now += delta
        best = max(best, now)
    return best


def test_concurrency_limit_per_key_across_workers(store_url: str) -> None:
    spans: dict[str, list[tuple[float, float]]] = defaultdict(list)
    lock = threading.Lock()

    def make() -> tether.Harness:
        th = tether.Harness(store_url)

        @th.function(
            id="chat",
            trigger=tether.on_event("msg"),
            concurrency=tether.Concurrency(limit=1, key="event.data.conversation"),
        )
        async def chat(ctx: tether.Context) -> None:
            async def work() -> None:
                import asyncio

                start = time.monotonic()
                await asyncio.sleep(0.05)
                with lock:
                    spans[ctx.event.data["conversation"]].append((start, time.monotonic()))

            await ctx.step.run("work", work)

        return th

    a, b = make(), make()
    a.send([tether.Event("msg", {"conversation": f"c{i % 3}"}) for i in range(18)])
    with a.worker(concurrency=8), b.worker(concurrency=8):
        _wait(lambda: len(a.list_runs("chat", status="completed", limit=100)) == 18)
    assert sorted(spans) == ["c0", "c1", "c2"]
    for key, key_spans in spans.items():
        assert len(key_spans) == 6
        assert _intervals_overlap(key_spans) == 1, key  # never two at once per conversation
    everything = [s for ss in spans.values() for s in ss]
    assert _intervals_overlap(everything) >= 2  # different keys did run in parallel
    a.close()
    b.close()


def test_concurrency_scope_is_shared_across_functions(th: tether.Harness) -> None:
    spans: list[tuple[float, float]] = []
    provider = tether.Concurrency(limit=2, scope="openai")

    def call() -> None:
        start = time.monotonic()
        time.sleep(0.05)
        spans.append((start, time.monotonic()))

    @th.function(concurrency=provider)
    def summarize(ctx: tether.SyncContext) -> None:
        ctx.step.run("call", call)

    @th.function(concurrency=provider)
    def classify(ctx: tether.SyncContext) -> None:
        ctx.step.run("call", call)

    for _ in range(5):
        th.enqueue(summarize)
        th.enqueue(classify)
    with th.worker(concurrency=10):
        _wait(lambda: len(th.list_runs(status="completed")) == 10)
    assert _intervals_overlap(spans) == 2


def test_sleeping_run_gives_its_concurrency_slot_back(th: tether.Harness) -> None:
    @th.function(concurrency=tether.Concurrency(limit=1))
    async def napper(ctx: tether.Context) -> None:
        await ctx.step.sleep("nap", 0.5)

    with th.worker(concurrency=4):
        first = th.enqueue(napper)
        second = th.enqueue(napper)
        _wait(lambda: first.status() == "sleeping" and second.status() == "sleeping", 5)
        first.result(timeout=10)
        second.result(timeout=10)


def test_singleton_skip_records_the_skipped_run(th: tether.Harness) -> None:
    @th.function(trigger=tether.on_event("sync"), singleton=tether.Singleton(key="event.data.user"))
    async def sync(ctx: tether.Context) -> None:
        await ctx.step.sleep("slow", 30)

    th.send(tether.Event("sync", {"user": 1}))
    th.send(tether.Event("sync", {"user": 1}))
    th.send(tether.Event("sync", {"user": 2}))
    runs = th.list_runs(function_id="sync")
    statuses = sorted(r.status.value for r in runs)
    assert statuses == ["queued", "queued", "skipped"]
    skipped = next(r for r in runs if r.status == "skipped")
    assert skipped.reason and "singleton" in skipped.reason and "already active" in skipped.reason


def test_singleton_cancel_stops_the_stale_run_before_its_next_step(th: tether.Harness) -> None:
    entered = threading.Event()
    release = threading.Event()
    steps: list[tuple[str, str]] = []

    def think(text: str) -> str:
        steps.append((text, "think"))
        if text == "first":
            entered.set()
            release.wait(10)
        return text

    @th.function(
        trigger=tether.on_event("user.message"),
        singleton=tether.Singleton(key="event.data.conversation", mode="cancel"),
    )
    def reply(ctx: tether.SyncContext) -> str:
        text = ctx.event.data["text"]
        ctx.step.run("think", think, text)
        ctx.step.run("send", lambda: steps.append((text, "send")))
        return text

    with th.worker(concurrency=4):
        th.send(tether.Event("user.message", {"conversation": 7, "text": "first"}))
        assert entered.wait(10)
        th.send(tether.Event("user.message", {"conversation": 7, "text": "second"}))
        release.set()
        _wait(lambda: len(th.list_runs("reply", status="completed")) == 1)
        _wait(lambda: len(th.list_runs("reply", status="cancelled")) == 1)
    assert ("first", "send") not in steps  # the stale reply never sent
    assert ("second", "send") in steps
    cancelled = th.list_runs("reply", status="cancelled")[0]
    assert cancelled.reason and "newer run" in cancelled.reason


def test_throttle_spaces_starts_and_drops_nothing(th: tether.Harness) -> None:
    starts: list[float] = []

    @th.function(trigger=tether.on_event("job"), throttle=tether.Throttle(limit=2, period=0.5))
    def job(ctx: tether.SyncContext) -> None:
        ctx.step.run("start", lambda: starts.append(time.time()))

    th.send([tether.Event("job", {"n": i}) for i in range(6)])
    delayed = [r for r in th.list_runs("job") if r.reason and "throttled until" in r.reason]
    assert len(delayed) == 4
    with th.worker(concurrency=6):
        _wait(lambda: len(th.list_runs("job", status="completed")) == 6)
    assert len(starts) == 6
    # run starts as recorded by the store (the claim): any 0.5 s window holds at most 2
    began = sorted(r.started_at.timestamp() for r in th.list_runs("job"))  # type: ignore[union-attr]
    for i in range(2, 6):
        assert began[i] - began[i - 2] >= 0.499


def test_rate_limit_drops_exact_count_as_skipped_runs(th: tether.Harness) -> None:
    @th.function(
        trigger=tether.on_event("alert"),
        rate_limit=tether.RateLimit(limit=3, period="1h", key="event.data.team"),
    )
    def page(ctx: tether.SyncContext) -> None:
        return None

    th.send([tether.Event("alert", {"team": "a"}) for _ in range(10)])
    th.send([tether.Event("alert", {"team": "b"}) for _ in range(2)])
    runs = th.list_runs("page", limit=100)
    skipped = [r for r in runs if r.status == "skipped"]
    assert len(runs) == 12 and len(skipped) == 7
    assert all(r.reason and "rate limit: 3 run(s) per 3600s" in r.reason for r in skipped)
    assert {r.input["team"] for r in skipped} == {"a"}  # type: ignore[index]


def test_debounce_makes_one_run_with_the_last_event(th: tether.Harness) -> None:
    @th.function(
        trigger=tether.on_event("doc.edited"),
        debounce=tether.Debounce(period=0.3, key="event.data.doc"),
    )
    def reindex(ctx: tether.SyncContext) -> int:
        return int(ctx.event.data["version"])

    with th.worker():
        for version in range(5):
            ids = th.send(tether.Event("doc.edited", {"doc": "d1", "version": version}))
            time.sleep(0.05)
        th.send(tether.Event("doc.edited", {"doc": "d2", "version": 99}))
        _wait(lambda: len(th.list_runs("reindex", status="completed")) == 2)
    outputs = sorted(r.output for r in th.list_runs("reindex"))
    assert outputs == [4, 99]  # one run per burst, with the last event
    assert ids  # the last send of the burst was accepted


def test_batch_delivers_events_together(th: tether.Harness) -> None:
    batches: list[list[int]] = []

    @th.function(trigger=tether.on_event("row"), batch=tether.Batch(max_size=4, timeout=0.3))
    def ingest(ctx: tether.SyncContext) -> int:
        batches.append([e.data["n"] for e in ctx.events])
        return len(ctx.events)

    th.send([tether.Event("row", {"n": i}) for i in range(10)])
    with th.worker():
        _wait(lambda: len(th.list_runs("ingest", status="completed")) == 3)
    assert sorted(len(b) for b in batches) == [2, 4, 4]  # full batches at once, rest on timeout
    assert sorted(n for b in batches for n in b) == list(range(10))


def test_priority_runs_higher_first(th: tether.Harness) -> None:
    order: list[int] = []

    @th.function(trigger=tether.on_event("task"), priority=tether.Priority(key="event.data.p"))
    def task(ctx: tether.SyncContext) -> None:
        ctx.step.run("go", lambda: order.append(ctx.event.data["p"]))

    th.send([tether.Event("task", {"p": p}) for p in (0, 10, -5, 300, 20)])
    with th.worker(concurrency=1):
        _wait(lambda: len(order) == 5)
    assert order == [300, 20, 10, 0, -5]


def test_cancel_on_event(th: tether.Harness) -> None:
    @th.function(
        trigger=tether.on_event("conversation.started"),
        cancel_on=[tether.cancel_on("conversation.closed", match="data.conversation_id")],
    )
    async def follow_up(ctx: tether.Context) -> None:
        await ctx.step.sleep("wait-a-day", "1d")

    th.send(tether.Event("conversation.started", {"conversation_id": 1}))
    th.send(tether.Event("conversation.started", {"conversation_id": 2}))
    th.send(tether.Event("conversation.closed", {"conversation_id": 1}, id="close-1"))
    runs = {r.input["conversation_id"]: r for r in th.list_runs("follow_up")}  # type: ignore[index]
    assert runs[1].status == "cancelled" and "conversation.closed" in (runs[1].reason or "")
    assert runs[2].status == "queued"


def test_keys_that_cannot_be_evaluated_fail_at_send_time(th: tether.Harness) -> None:
    @th.function(
        trigger=tether.on_event("msg"),
        concurrency=tether.Concurrency(limit=1, key="event.data.conversation"),
    )
    def chat(ctx: tether.SyncContext) -> None:
        return None

    with pytest.raises(tether.InvalidEventError) as info:
        th.send(tether.Event("msg", {"text": "no conversation id"}))
    assert "'chat'" in str(info.value) and "event.data.conversation" in str(info.value)
    assert th.list_runs() == []  # nothing half-written
    with pytest.raises(tether.ConfigurationError):
        tether.Concurrency(limit=0)
    with pytest.raises(tether.ConfigurationError):
        tether.Throttle(limit=1, period="soon")


def test_cron_one_run_per_tick_with_two_workers(store_url: str, tmp_path: Path) -> None:
    clock = tether.VirtualClock(auto_advance=False)
    harnesses = []
    for _ in range(2):
        th = tether.Harness(store_url, clock=clock)

        @th.function(id="report", trigger=tether.on_cron("*/5 * * * *"))
        def report(ctx: tether.SyncContext) -> str:
            return str(ctx.event.data["tick"])

        harnesses.append(th)
    a, b = harnesses
    with a.worker(), b.worker():
        _wait(lambda: len(a.list_runs("report")) >= 1, 10)
        start = clock.now()
        for _ in range(6):  # six ticks of five minutes
            clock.advance(300)
            time.sleep(0.3)
        _wait(lambda: len(a.list_runs("report", status="completed")) >= 6, 20)
    runs = a.list_runs("report", limit=100)
    ticks = [r.input["tick"] for r in runs]  # type: ignore[index]
    assert len(ticks) == len(set(ticks))  # never two runs for one tick
    done = [r for r in runs if r.status == "completed"]
    assert 6 <= len(done) <= 8
    assert clock.now() >= start + 1800
    a.close()
    b.close()


def test_waiting_on_a_skipped_run_says_why(th: tether.Harness) -> None:
    @th.function(rate_limit=tether.RateLimit(limit=1, period="1h"))
    def once(ctx: tether.SyncContext) -> int:
        return 1

    assert th.run(once) == 1
    with pytest.raises(tether.RunFailed) as info:
        th.run(once)
    assert info.value.error["type"] == "Skipped"
    assert "rate limit" in info.value.error["message"]
