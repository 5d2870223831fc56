"""The circuit breaker of ``ctx.step.llm``, shared through the store (its kv table), under
concurrent calls: it sends load to fallbacks, never starves a call that has none, and a
rate-limit hold is capped and explained. Every test runs on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

import tether
from tether import llm
from tether.testing import FakeLLMServer, poll

BACKENDS = pytest.mark.parametrize("backend", ["sqlite", "postgres"], indirect=True)


@pytest.fixture
def fake() -> Iterator[FakeLLMServer]:
    with FakeLLMServer() as server:
        yield server


def _ask_function(th: tether.Harness, fid: str = "ask", **llm_options: Any) -> Any:
    """A durable function making one ``ctx.step.llm`` call to ``data.model`` with
    ``data.prompt``; it returns the answer, or the step's error."""

    @th.function(id=fid)
    async def ask(ctx: tether.Context) -> dict[str, Any]:
        data = ctx.event.data
        try:
            resp = await ctx.step.llm(
                "ask",
                model=data["model"],
                messages=[{"role": "user", "content": data["prompt"]}],
                **llm_options,
            )
        except tether.StepFailed as exc:
            return {"error": exc.error_type, "message": exc.error_message}
        return {"text": resp.text, "model": resp.model, "attempts": len(resp.attempts)}

    return ask


def _prompts(fake: FakeLLMServer, text: str) -> list[str]:
    return [r.outcome for r in fake.requests if text in r.prompt]


@BACKENDS
def test_an_open_circuit_never_starves_calls_that_have_no_fallback(
    store_url: str, fake: FakeLLMServer
) -> None:
    """Issue 9 #8: eight concurrent calls to one model, each of whose requests gets a 500,
    then a 503, then an answer; four more queued behind them get a 401."""
    model = f"openai-compatible:{fake.url}/v1#tiny"
    for i in range(8):
        tag = f"[ticket {i}]"
        fake.fault("server_error", match=tag).fault("unavailable", match=tag)
        fake.reply(f"answer {i}", match=tag)
    for i in range(4):
        fake.fault("auth", match=f"[late {i}]")
    th = tether.Harness(store_url)
    ask = _ask_function(th, deadline=20)
    breaker = th.circuit_breaker
    try:
        with th.worker(concurrency=12, poll_interval=0.01):
            first = [
                th.enqueue(ask, {"model": model, "prompt": f"[ticket {i}] help"}) for i in range(8)
            ]
            # Five of the eight 500s open the shared circuit; queue four more calls behind it.
            poll(lambda: breaker.state(model) == "open", timeout=10, interval=0.005)
            queued_at = time.monotonic()
            late = [th.enqueue(ask, {"model": model, "prompt": f"[late {i}] hi"}) for i in range(4)]
            late_results = [h.result(timeout=15) for h in late]
            late_took = time.monotonic() - queued_at
            results = [h.result(timeout=30) for h in first]
        final_state = breaker.state(model)
    finally:
        th.close()
    # Three attempts each saved every one of them, although the circuit was open.
    assert [r.get("text") for r in results] == [f"answer {i}" for i in range(8)]
    assert all(r["attempts"] == 3 for r in results)
    for i in range(8):
        assert _prompts(fake, f"[ticket {i}]") == ["server_error", "unavailable", "reply"]
    # The calls queued behind the open circuit failed at once, with their own error.
    for r in late_results:
        assert r["error"] == "LLMCallFailed", r
        assert "auth" in r["message"] and "HTTP 401" in r["message"]
        assert "deadline" not in r["message"]
    for i in range(4):
        assert _prompts(fake, f"[late {i}]") == ["auth"]
    assert late_took < 10
    assert final_state == "closed"  # the successes closed it again


@BACKENDS
def test_an_open_circuit_still_sends_load_to_the_fallback(
    store_url: str, fake: FakeLLMServer
) -> None:
    primary = f"openai-compatible:{fake.url}/v1#primary"
    backup = f"openai-compatible:{fake.url}/v1#backup"
    fake.fault("server_error", model="primary", times=1000)
    th = tether.Harness(store_url)
    ask = _ask_function(th, fallbacks=[backup], deadline=20)
    try:
        with th.worker(concurrency=8, poll_interval=0.01):
            handles = [th.enqueue(ask, {"model": primary, "prompt": f"q{i}"}) for i in range(8)]
            first = [h.result(timeout=20) for h in handles]
            assert th.circuit_breaker.state(primary) == "open"
            tried = fake.request_count(model="primary")
            handles = [th.enqueue(ask, {"model": primary, "prompt": f"r{i}"}) for i in range(8)]
            later = [h.result(timeout=20) for h in handles]
    finally:
        th.close()
    assert {r["model"] for r in first + later} == {backup}
    # While the circuit is open, the calls go straight to the fallback: the primary is
    # not tried again, and each call makes a single request.
    assert fake.request_count(model="primary") == tried
    assert all(r["attempts"] == 1 for r in later)


@BACKENDS
def test_one_long_retry_after_holds_the_model_for_at_most_max_hold(
    store_url: str, fake: FakeLLMServer
) -> None:
    """Issue 9 #12: a 429 with Retry-After: 600 holds the model for everyone for at most
    max_hold (60 s by default), and a call that cannot wait says why, naming the model,
    when the hold ends and how to clear it."""
    model = f"openai-compatible:{fake.url}/v1#tiny"
    backup = f"openai-compatible:{fake.url}/v1#backup"
    fake.fault("rate_limit", retry_after=600, model="tiny")
    th = tether.Harness(store_url)
    breaker = th.circuit_breaker
    try:
        first = _ask_function(th, fallbacks=[backup])
        assert th.run(first, {"model": model, "prompt": "one"})["model"] == backup
        status = breaker.status(model)
        assert status.hold_asked == 600
        assert status.hold_until is not None
        assert 55 <= status.hold_until - breaker.clock() <= 60

        impatient = _ask_function(th, "impatient", deadline=5)
        out = th.run(impatient, {"model": model, "prompt": "two"})
        assert out["error"] == "LLMDeadlineExceeded"
        message = out["message"]
        assert f"{model} is held until" in message
        assert "600s of quiet" in message and "max_hold=60s" in message
        assert f"tether llm clear {model}" in message
        assert fake.request_count(model="tiny") == 1  # it did not collect another 429

        breaker.clear(model)  # what `tether llm clear MODEL` does
        again = _ask_function(th, "again", deadline=5)
        assert th.run(again, {"model": model, "prompt": "three"})["model"] == model
    finally:
        th.close()


class _Recording:
    """The real store's kv, noting which thread each breaker read or write runs on."""

    def __init__(self, store: Any) -> None:
        self.store = store
        self.threads: set[int] = set()

    def kv_get(self, key: str) -> str | None:
        self.threads.add(threading.get_ident())
        value: str | None = self.store.kv_get(key)
        return value

    def kv_set(self, key: str, value: str) -> None:
        self.threads.add(threading.get_ident())
        self.store.kv_set(key, value)


@BACKENDS
def test_breaker_state_in_the_store_is_never_read_on_the_event_loop(
    store_url: str, fake: FakeLLMServer
) -> None:
    model = f"openai-compatible:{fake.url}/v1#tiny"
    fake.fault("rate_limit", retry_after_ms=20).fault("server_error").reply("fine")
    th = tether.Harness(store_url)
    recording = _Recording(th.store)
    breaker = llm.CircuitBreaker(llm.KVCircuitStore(recording), failure_threshold=1)

    async def main() -> tuple[str, int]:
        resp = await llm.acomplete(model, "hi", circuit=breaker, deadline=10)
        return resp.text, threading.get_ident()

    try:
        text, loop_thread = asyncio.run(main())
        assert text == "fine"
        # the 500 opened it, the success closed it (read past the recording)
        assert th.circuit_breaker.state(model) == "closed"
    finally:
        th.close()
    assert recording.threads and loop_thread not in recording.threads
