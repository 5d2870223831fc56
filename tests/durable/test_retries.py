"""Retries per step: backoff with jitter, NonRetriableError, RetryAfterError, StepFailed,
on_failure, durable backoff and the function timeout."""

from __future__ import annotations

import random
import time
from typing import Any

import pytest

import tether


def test_backoff_policy_with_jitter() -> None:
    policy = tether.Retry(max_attempts=5, initial=1.0, max_delay=5.0)
    rng = random.Random(7)
    delays = [policy.delay(n, rng) for n in (1, 2, 3, 4)]
    # exponential 1, 2, 4, 8->capped 5; equal jitter takes up to half off
    for got, base in zip(delays, [1, 2, 4, 5], strict=True):
        assert base / 2 <= got <= base
    assert len({round(policy.delay(2, random.Random(s)), 6) for s in range(20)}) > 10
    fixed = tether.Retry(backoff="constant", initial=0.5, jitter=False)
    assert [fixed.delay(n) for n in (1, 2, 3)] == [0.5, 0.5, 0.5]
    assert tether.Retry(backoff="linear", initial=1, jitter=False).delay(3) == 3


def test_step_is_retried_without_rerunning_earlier_steps(th: tether.Harness) -> None:
    calls = {"first": 0, "flaky": 0}

    def first() -> str:
        calls["first"] += 1
        return "one"

    def flaky() -> str:
        calls["flaky"] += 1
        if calls["flaky"] < 3:
            raise ConnectionError(f"attempt {calls['flaky']} failed")
        return "two"

    @th.function(retries=tether.Retry(max_attempts=4, initial=0.05, max_delay=1.0))
    def flow(ctx: tether.SyncContext) -> list[str]:
        return [ctx.step.run("first", first), ctx.step.run("flaky", flaky)]

    started = time.monotonic()
    assert th.run(flow) == ["one", "two"]
    elapsed = time.monotonic() - started
    assert calls == {"first": 1, "flaky": 3}
    run = th.get_run(th.list_runs(function_id="flow")[0].id)
    step = run.steps[1]
    assert [a.number for a in step.attempts] == [0, 1, 2]
    assert [a.error_type for a in step.attempts] == ["ConnectionError", "ConnectionError", None]
    assert step.attempts[0].error_message == "attempt 1 failed"
    assert "ConnectionError" in (step.attempts[0].traceback or "")
    gap1 = (step.attempts[1].started_at - step.attempts[0].ended_at).total_seconds()  # type: ignore[operator]
    gap2 = (step.attempts[2].started_at - step.attempts[1].ended_at).total_seconds()  # type: ignore[operator]
    assert 0.025 <= gap1 <= 0.5 and 0.05 <= gap2 <= 0.6  # backoff 0.05, 0.1 with jitter
    assert elapsed >= 0.07


def test_non_retriable_error_and_step_failed_caught_by_user_code(th: tether.Harness) -> None:
    attempts: list[int] = []

    def bad_request() -> None:
        attempts.append(1)
        raise tether.NonRetriableError("invalid API key")

    @th.function()
    def flow(ctx: tether.SyncContext) -> str:
        try:
            ctx.step.run("call", bad_request)
        except tether.StepFailed as exc:
            assert isinstance(exc.__cause__, tether.NonRetriableError)
            return f"handled {exc.error_type}: {exc.error_message}"
        return "unreachable"

    assert th.run(flow) == "handled NonRetriableError: invalid API key"
    assert attempts == [1]
    run = th.get_run(th.list_runs(function_id="flow")[0].id)
    assert run.steps[0].status == "failed"
    assert run.steps[0].error and run.steps[0].error["type"] == "NonRetriableError"


def test_retry_after_error_sets_the_next_delay(th: tether.Harness) -> None:
    times: list[float] = []

    def limited() -> str:
        times.append(time.monotonic())
        if len(times) == 1:
            raise tether.RetryAfterError(0.3, "429 from the provider")
        return "ok"

    @th.function(retries=tether.Retry(max_attempts=2, initial=0.0, jitter=False))
    def flow(ctx: tether.SyncContext) -> str:
        return str(ctx.step.run("call", limited))

    assert th.run(flow) == "ok"
    assert times[1] - times[0] >= 0.28


def test_exhausted_retries_fail_the_run_and_call_on_failure(th: tether.Harness) -> None:
    received: list[dict[str, Any]] = []

    @th.function()
    def alert(ctx: tether.SyncContext) -> None:
        received.append(ctx.event.data)

    @th.function(retries=tether.Retry(max_attempts=2, initial=0.01), on_failure=alert)
    def doomed(ctx: tether.SyncContext) -> None:
        ctx.step.run("explode", _explode)

    with pytest.raises(tether.RunFailed) as info:
        th.run(doomed, {"ticket": 9})
    assert info.value.error["type"] == "StepFailed"
    assert "boom" in info.value.error["message"]
    with th.worker():
        deadline = time.monotonic() + 10
        while not received and time.monotonic() < deadline:
            time.sleep(0.01)
    assert received and received[0]["run_id"] == info.value.run_id
    assert received[0]["function_id"] == "doomed"
    assert received[0]["event"]["data"] == {"ticket": 9}
    assert received[0]["error"]["type"] == "StepFailed"
    run = th.get_run(info.value.run_id)
    assert run.status == "failed" and len(run.steps[0].attempts) == 2


def _explode() -> None:
    raise RuntimeError("boom")


def test_plain_on_failure_callable_is_registered(th: tether.Harness) -> None:
    seen: list[str] = []

    def notify(ctx: tether.SyncContext) -> None:
        seen.append(ctx.event.data["error"]["type"])

    @th.function(on_failure=notify)
    def breaks(ctx: tether.SyncContext) -> None:
        raise KeyError("missing")

    with pytest.raises(tether.RunFailed):
        th.run(breaks)
    assert "breaks.on_failure" in th.functions
    with th.worker():
        deadline = time.monotonic() + 10
        while not seen and time.monotonic() < deadline:
            time.sleep(0.01)
    assert seen == ["KeyError"]


def test_long_backoff_suspends_the_run_durably(th: tether.Harness) -> None:
    calls: list[float] = []

    def flaky() -> str:
        calls.append(time.monotonic())
        if len(calls) == 1:
            raise tether.RetryAfterError(2.2)
        return "ok"

    @th.function()
    async def flow(ctx: tether.Context) -> str:
        return str(await ctx.step.run("call", flaky))

    with th.worker(concurrency=1):
        handle = th.enqueue(flow)
        deadline = time.monotonic() + 5
        while handle.status() != "sleeping" and time.monotonic() < deadline:
            time.sleep(0.01)
        assert handle.status() == "sleeping"  # the backoff holds no slot
        assert handle.result(timeout=10) == "ok"
    assert calls[1] - calls[0] >= 2.1


def test_function_timeout_includes_sleeps(vth: tether.Harness) -> None:
    @vth.function(timeout="1h")
    async def slowpoke(ctx: tether.Context) -> str:
        await ctx.step.sleep("long", "2h")
        return "late"

    with pytest.raises(tether.RunFailed) as info:
        vth.run(slowpoke)
    assert info.value.error["type"] == "RunTimeout"


def test_caller_timeout_bounds_only_the_wait(th: tether.Harness) -> None:
    @th.function()
    async def napper(ctx: tether.Context) -> str:
        await ctx.step.sleep("nap", 0.6)
        return "done"

    with pytest.raises(tether.RunTimeout):
        th.run(napper, run_id="nap-1", timeout=0.1)
    assert th.run(napper, run_id="nap-1", timeout=10) == "done"  # the run went on
