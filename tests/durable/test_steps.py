"""Steps: memoization, ids, sleeps, waits, invoke, send, parallel, now/uuid (sync and async)."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

import tether


def test_sync_steps_run_and_are_recorded(th: tether.Harness) -> None:
    @th.function()
    def pipeline(ctx: tether.SyncContext) -> dict[str, Any]:
        a = ctx.step.run("a", lambda: 1)
        b = ctx.step.run("b", lambda x: x + 1, a)
        c = ctx.step.run("c", lambda x, y=0: x * 10 + y, b, y=3)
        return {"a": a, "b": b, "c": c}

    assert th.run(pipeline) == {"a": 1, "b": 2, "c": 23}
    run = th.list_runs(function_id="pipeline")[0]
    assert run.status == tether.RunStatus.COMPLETED
    full = th.get_run(run.id)
    assert [s.id for s in full.steps] == ["a", "b", "c"]
    assert [s.output for s in full.steps] == [1, 2, 23]
    assert all(len(s.attempts) == 1 and s.attempts[0].error_type is None for s in full.steps)
    assert full.started_at is not None and full.ended_at is not None


async def _double(x: int) -> int:
    await asyncio.sleep(0)
    return x * 2


def test_async_function_with_sync_and_async_step_callables(th: tether.Harness) -> None:
    threads: list[str] = []

    def blocking() -> int:
        import threading

        threads.append(threading.current_thread().name)
        return 21

    @th.function()
    async def mixed(ctx: tether.Context) -> int:
        x = await ctx.step.run("sync", blocking)
        return int(await ctx.step.run("async", _double, x))

    assert th.run(mixed) == 42
    # a sync callable inside an async function runs on a worker thread, not the event loop
    assert threads and threads[0].startswith("tether-step")


def test_completed_steps_are_not_executed_again_on_resume(vth: tether.Harness) -> None:
    calls: list[str] = []

    def effect(name: str) -> str:
        calls.append(name)
        return name.upper()

    @vth.function()
    async def flow(ctx: tether.Context) -> list[str]:
        a = await ctx.step.run("a", effect, "a")
        await ctx.step.sleep("nap", 3600)
        b = await ctx.step.run("b", effect, "b")
        return [a, b]

    assert vth.run(flow) == ["A", "B"]
    assert calls == ["a", "b"]  # resumed after the sleep without re-running "a"


def test_repeated_step_ids_get_stable_suffixes(th: tether.Harness) -> None:
    @th.function()
    def loop(ctx: tether.SyncContext) -> list[int]:
        return [ctx.step.run("item", lambda i=i: i) for i in range(3)]

    assert th.run(loop) == [0, 1, 2]
    run = th.list_runs(function_id="loop")[0]
    assert [s.id for s in th.get_run(run.id).steps] == ["item", "item:1", "item:2"]


def test_sleep_is_durable_and_uses_no_worker_slot(th: tether.Harness) -> None:
    @th.function()
    async def napper(ctx: tether.Context) -> str:
        await ctx.step.sleep("nap", 0.4)
        return "rested"

    with th.worker(concurrency=1):
        first = th.enqueue(napper)
        second = th.enqueue(napper)
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            if first.status() == "sleeping" and second.status() == "sleeping":
                break
            time.sleep(0.01)
        # one worker slot, two runs asleep at the same time: sleeping holds no slot
        assert first.status() == "sleeping" and second.status() == "sleeping"
        assert first.result(timeout=10) == "rested"
        assert second.result(timeout=10) == "rested"


def test_sleep_until_and_virtual_time(vth: tether.Harness) -> None:
    target = datetime.now(UTC) + timedelta(days=2)

    @vth.function()
    def waiter(ctx: tether.SyncContext) -> str:
        ctx.step.sleep_until("later", target)
        ctx.step.sleep("more", "1h")
        return ctx.step.now().isoformat()

    started = time.monotonic()
    out = vth.run(waiter)
    assert time.monotonic() - started < 5
    assert datetime.fromisoformat(out) >= target + timedelta(hours=1)


def test_now_and_uuid_are_recorded(vth: tether.Harness) -> None:
    seen: list[tuple[str, str]] = []

    @vth.function()
    async def stamps(ctx: tether.Context) -> list[str]:
        now = ctx.step.now()
        uid = ctx.step.uuid()
        seen.append((now.isoformat(), uid))
        await ctx.step.sleep("nap", 60)
        return [now.isoformat(), uid]

    out = vth.run(stamps)
    assert len(seen) == 2  # the body ran twice (before and after the sleep)
    assert seen[0] == seen[1] == (out[0], out[1])


def test_wait_for_event_receives_matching_event(th: tether.Harness) -> None:
    @th.function(trigger=tether.on_event("order.created"))
    async def order(ctx: tether.Context) -> Any:
        ev = await ctx.step.wait_for_event(
            "paid", event="order.paid", match="data.order_id", timeout=30
        )
        return ev.data if ev else None

    with th.worker():
        th.send(tether.Event("order.created", {"order_id": 1}))
        th.send(tether.Event("order.created", {"order_id": 2}))
        deadline = time.monotonic() + 5
        while len(th.list_runs("order", status="waiting")) < 2 and time.monotonic() < deadline:
            time.sleep(0.01)
        th.send(tether.Event("order.paid", {"order_id": 2, "amount": 5}))
        runs = {r.input["order_id"]: r for r in th.list_runs("order")}  # type: ignore[index]
        handle2 = tether.RunHandle(th, runs[2].id)
        assert handle2.result(timeout=10) == {"order_id": 2, "amount": 5}
        assert th.get_run(runs[1].id).status == "waiting"  # no payment for order 1
        th.cancel(runs[1].id)


def test_wait_for_event_times_out_with_none(vth: tether.Harness) -> None:
    @vth.function()
    async def patient(ctx: tether.Context) -> Any:
        ev = await ctx.step.wait_for_event("reply", event="never.sent", timeout="2h")
        return {"got": ev}

    assert vth.run(patient) == {"got": None}


def test_wait_for_event_lookback_and_if_expression(th: tether.Harness) -> None:
    th.send(tether.Event("price.changed", {"sku": "a", "price": 5}))
    th.send(tether.Event("price.changed", {"sku": "a", "price": 50}))

    @th.function()
    async def watch(ctx: tether.Context) -> Any:
        ev = await ctx.step.wait_for_event(
            "big",
            event="price.changed",
            match="data.sku",
            if_="async.data.price > 10",
            lookback=60,
            timeout=1,
        )
        return ev.data if ev else None

    assert th.run(watch, {"sku": "a"}) == {"sku": "a", "price": 50}


def test_invoke_returns_child_output_and_failures_raise_step_failed(th: tether.Harness) -> None:
    @th.function()
    def child(ctx: tether.SyncContext) -> int:
        if ctx.event.data.get("fail"):
            raise ValueError("child broke")
        return int(ctx.event.data["x"]) * 3

    @th.function()
    async def parent(ctx: tether.Context) -> dict[str, Any]:
        ok = await ctx.step.invoke("ok", function=child, data={"x": 4})
        try:
            await ctx.step.invoke("bad", function=child, data={"fail": True})
            failed = None
        except tether.StepFailed as exc:
            failed = exc.error_type
        return {"ok": ok, "failed": failed}

    with th.worker(concurrency=4):
        assert th.run(parent, timeout=20) == {"ok": 12, "failed": "ValueError"}
    children = th.list_runs(function_id="child")
    assert len(children) == 2 and all(c.parent_id for c in children)


def test_send_event_step_triggers_functions_exactly_once(vth: tether.Harness) -> None:
    @vth.function(trigger=tether.on_event("greeting"))
    def greeted(ctx: tether.SyncContext) -> str:
        return str(ctx.event.data["who"])

    @vth.function()
    async def sender(ctx: tether.Context) -> list[str]:
        ids = await ctx.step.send_event("hello", tether.Event("greeting", {"who": "ada"}))
        await ctx.step.sleep("nap", 10)  # resume: the send step is replayed, not repeated
        return ids

    ids = vth.run(sender)
    assert len(ids) == 1
    assert len(vth.list_runs(function_id="greeted")) == 1


def test_parallel_steps_sync_and_async(th: tether.Harness) -> None:
    def slow(x: int) -> int:
        time.sleep(0.2)
        return x

    @th.function()
    def fan_sync(ctx: tether.SyncContext) -> list[int]:
        return ctx.step.parallel(
            "fan", [lambda i=i: ctx.step.run(f"p{i}", slow, i) for i in range(4)]
        )

    async def aslow(x: int) -> int:
        await asyncio.sleep(0.2)
        return x

    @th.function()
    async def fan_async(ctx: tether.Context) -> list[int]:
        return list(await asyncio.gather(*(ctx.step.run(f"p{i}", aslow, i) for i in range(4))))

    for fn in (fan_sync, fan_async):
        started = time.monotonic()
        assert th.run(fn) == [0, 1, 2, 3]
        assert time.monotonic() - started < 0.7  # concurrent, not 4 x 0.2 s


def test_idempotency_key_is_stable_per_run_and_step(th: tether.Harness) -> None:
    keys: list[str] = []

    @th.function(retries=tether.Retry(max_attempts=3, initial=0.01))
    def charge(ctx: tether.SyncContext) -> str:
        def call() -> str:
            keys.append(ctx.step.idempotency_key)
            if len(keys) < 3:
                raise ConnectionError("flaky")
            return "ok"

        return str(ctx.step.run("charge", call))

    assert th.run(charge) == "ok"
    assert len(set(keys)) == 1 and keys[0].endswith(":charge")


def test_harness_run_inside_a_running_event_loop(th: tether.Harness) -> None:
    @th.function()
    async def hello(ctx: tether.Context) -> str:
        return str(await ctx.step.run("hi", lambda: "hi"))

    async def main() -> tuple[str, str]:
        blocking = th.run(hello)  # blocks, also inside a running loop
        awaited = await th.arun(hello)
        return blocking, awaited

    assert asyncio.run(main()) == ("hi", "hi")


def test_pydantic_input_and_caller_chosen_run_id(th: tether.Harness) -> None:
    from pydantic import BaseModel

    class Ticket(BaseModel):
        id: int
        text: str

    calls: list[int] = []

    @th.function()
    def handle(ctx: tether.SyncContext) -> int:
        calls.append(1)
        return int(ctx.event.data["id"])

    assert th.run(handle, Ticket(id=3, text="x"), run_id="ticket-3") == 3
    assert th.run(handle, Ticket(id=3, text="x"), run_id="ticket-3") == 3
    assert calls == [1]  # the second call returned the first run
    assert th.get_run("ticket-3").input == {"id": 3, "text": "x"}
    assert th.get_run("ticket-3").event_name == "tether/function.invoked"


def test_idempotency_key_expression_creates_one_run(th: tether.Harness) -> None:
    @th.function(trigger=tether.on_event("signup"), idempotency="event.data.email")
    def welcome(ctx: tether.SyncContext) -> None:
        return None

    th.send(tether.Event("signup", {"email": "a@x"}))
    th.send(tether.Event("signup", {"email": "a@x"}))
    th.send(tether.Event("signup", {"email": "b@x"}))
    assert len(th.list_runs(function_id="welcome")) == 2
    with pytest.raises(tether.InvalidEventError, match="idempotency key 'event.data.email'"):
        th.send(tether.Event("signup", {"name": "no email"}))


def test_duplicate_event_id_and_where_filter(th: tether.Harness) -> None:
    @th.function(trigger=tether.on_event("ticket", where="event.data.priority == 'high'"))
    def urgent(ctx: tether.SyncContext) -> None:
        return None

    th.send(tether.Event("ticket", {"priority": "high"}, id="t1"))
    th.send(tether.Event("ticket", {"priority": "high"}, id="t1"))
    th.send(tether.Event("ticket", {"priority": "low"}, id="t2"))
    assert len(th.list_runs(function_id="urgent")) == 1


def test_future_event_ts_delays_the_run(th: tether.Harness) -> None:
    @th.function(trigger=tether.on_event("later"))
    def later(ctx: tether.SyncContext) -> float:
        return time.time()

    with th.worker():
        sent = time.time()
        th.send(tether.Event("later", {}, ts=datetime.now(UTC) + timedelta(seconds=0.6)))
        run = th.list_runs(function_id="later")[0]
        finished = tether.RunHandle(th, run.id).result(timeout=10)
    assert finished - sent >= 0.55


def test_log_lines_are_not_repeated_on_replay(
    vth: tether.Harness, caplog: pytest.LogCaptureFixture
) -> None:
    @vth.function()
    async def chatty(ctx: tether.Context) -> None:
        ctx.log.info("starting")
        await ctx.step.run("a", lambda: 1)
        await ctx.step.sleep("nap", 5)
        ctx.log.info("finishing")

    with caplog.at_level("INFO", logger="tether.run"):
        vth.run(chatty)
    messages = [r.getMessage() for r in caplog.records if r.name == "tether.run"]
    assert messages == ["starting", "finishing"]
    assert all(getattr(r, "run_id", None) for r in caplog.records if r.name == "tether.run")
