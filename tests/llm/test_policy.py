"""The reliability policy of one call: retries, fail-over, deadline, re-asks, cost, circuits."""

from __future__ import annotations

import asyncio
import time

import pytest
from pydantic import BaseModel

from tether import llm
from tether.llm import CircuitBreaker, ErrorKind, KVCircuitStore, MemoryCircuitStore
from tether.testing import FakeLLMServer, poll

PRIMARY = "openai:gpt-4.1-mini"
FALLBACK = "anthropic:claude-haiku-4-5"


class Ticket(BaseModel):
    label: str
    urgent: bool


def test_retry_after_is_honoured_on_the_same_model(server: FakeLLMServer) -> None:
    server.fault("rate_limit", retry_after=1)
    start = time.monotonic()
    resp = llm.complete(PRIMARY, "hi")
    assert time.monotonic() - start >= 1.0
    assert [a.error_class for a in resp.attempts] == ["rate_limited", None]
    assert resp.attempts[0].retry_after_s == 1.0
    assert resp.model == PRIMARY


def test_retry_after_http_date_is_honoured(server: FakeLLMServer) -> None:
    server.fault("rate_limit", retry_after=2, retry_after_date=True)
    resp = llm.complete(PRIMARY, "hi")
    assert resp.attempts[0].retry_after_s is not None
    assert 0.5 <= resp.attempts[0].retry_after_s <= 2.5


def test_untried_fallback_is_used_instead_of_sleeping(server: FakeLLMServer) -> None:
    server.fault("rate_limit", retry_after=20, model="gpt-4.1-mini")
    resp = llm.complete(PRIMARY, "hi", fallbacks=[FALLBACK])
    first, second = resp.attempts
    assert second.started_at - (first.started_at + first.duration_s) < 1  # no sleep between
    assert resp.model == FALLBACK
    assert [a.model for a in resp.attempts] == [PRIMARY, FALLBACK]


def test_delay_longer_than_the_deadline_fails_over_at_once(server: FakeLLMServer) -> None:
    server.fault("rate_limit", retry_after=300, model="gpt-4.1-mini")
    resp = llm.complete(PRIMARY, "hi", fallbacks=[FALLBACK], deadline=30)
    assert resp.attempts[0].action == "failover"
    assert resp.model == FALLBACK


def test_delay_longer_than_the_deadline_without_fallback_fails_fast(server: FakeLLMServer) -> None:
    server.fault("rate_limit", retry_after=300)
    start = time.monotonic()
    with pytest.raises(llm.LLMCallFailed) as info:
        llm.complete(PRIMARY, "hi", deadline=30)
    assert time.monotonic() - start < 5  # no pointless sleep
    assert info.value.kind is ErrorKind.RATE_LIMITED


def test_per_day_quota_fails_over_at_once(server: FakeLLMServer) -> None:
    server.fault("quota", model="gemini-2.5-flash")
    resp = llm.complete("google:gemini-2.5-flash", "hi", fallbacks=[PRIMARY])
    assert resp.attempts[0].error_class == "quota_exhausted"
    assert resp.model == PRIMARY
    assert server.request_count(model="gemini-2.5-flash") == 1


@pytest.mark.parametrize("kind", ["auth", "quota"])
def test_auth_and_quota_are_never_retried(server: FakeLLMServer, kind: str) -> None:
    server.fault(kind, times=5)
    with pytest.raises(llm.LLMCallFailed):
        llm.complete(PRIMARY, "hi", fallbacks=["openai:gpt-4.1"])  # same account: not tried either
    assert server.request_count() == 1


def test_auth_failure_fails_over_to_another_provider(server: FakeLLMServer) -> None:
    server.fault("auth", model="gpt-4.1-mini")
    resp = llm.complete(PRIMARY, "hi", fallbacks=[FALLBACK])
    assert resp.model == FALLBACK


def test_bad_request_fails_without_retry_or_fallback(server: FakeLLMServer) -> None:
    server.fault("bad_request")
    with pytest.raises(llm.LLMCallFailed) as info:
        llm.complete(PRIMARY, "hi", fallbacks=[FALLBACK])
    assert info.value.kind is ErrorKind.BAD_REQUEST
    assert server.request_count() == 1


def test_server_errors_are_retried_until_the_deadline(server: FakeLLMServer) -> None:
    server.fault("server_error", times=100)
    start = time.monotonic()
    with pytest.raises(llm.LLMCallFailed) as info:
        llm.complete(PRIMARY, "hi", max_attempts=2, deadline=3)
    assert time.monotonic() - start < 3.5
    assert 3 <= server.request_count() <= 6  # backoff 0.5, 1, 2 ... s, rounds of 2
    assert {a.error_class for a in info.value.attempts} == {"server_error"}
    assert info.value.kind is ErrorKind.SERVER_ERROR


def test_transient_failures_never_fail_a_call_the_deadline_can_still_save(
    server: FakeLLMServer,
) -> None:
    server.fault("server_error", times=4, model="gpt-4.1-mini")
    server.fault("overloaded", times=4, model="claude-haiku-4-5")
    resp = llm.complete(PRIMARY, "hi", fallbacks=[FALLBACK], max_attempts=2, deadline=30)
    assert resp.text
    assert len(resp.attempts) == 9  # two rounds over both models, then a success


def test_overloaded_primary_fails_over(server: FakeLLMServer) -> None:
    server.fault("overloaded", model="gpt-4.1-mini", times=10)
    resp = llm.complete(PRIMARY, "hi", fallbacks=[FALLBACK])
    assert resp.model == FALLBACK
    assert resp.text


def test_hang_is_cut_by_the_attempt_timeout_and_failed_over(server: FakeLLMServer) -> None:
    server.fault("hang", hang=30, model="gpt-4.1-mini", times=5)
    start = time.monotonic()
    resp = llm.complete(PRIMARY, "hi", fallbacks=[FALLBACK], timeout=0.5)
    assert time.monotonic() - start < 3
    assert [a.error_class for a in resp.attempts] == ["timeout", None]
    assert resp.model == FALLBACK


def test_a_timeout_is_retried_once_then_the_model_is_set_aside(server: FakeLLMServer) -> None:
    server.fault("hang", hang=30, times=5, model="gpt-4.1-mini")
    server.fault("rate_limit", retry_after=2, model="claude-haiku-4-5")
    resp = llm.complete(PRIMARY, "hi", fallbacks=[FALLBACK], timeout=0.3, max_attempts=3)
    got = [(a.model, a.error_class) for a in resp.attempts]
    # a third try of the primary would fit before the fallback's 2 s delay, but two
    # timeouts in a row set it aside
    assert got == [
        (PRIMARY, "timeout"),
        (FALLBACK, "rate_limited"),
        (PRIMARY, "timeout"),
        (FALLBACK, None),
    ]


def test_deadline_bounds_the_whole_call(server: FakeLLMServer) -> None:
    server.fault("hang", hang=30, times=10)
    start = time.monotonic()
    with pytest.raises(llm.LLMDeadlineExceeded) as info:
        llm.complete(PRIMARY, "hi", fallbacks=["openai:gpt-4.1"], deadline=1.5, max_attempts=10)
    elapsed = time.monotonic() - start
    assert 1.4 <= elapsed < 3
    assert isinstance(info.value, TimeoutError)
    assert all(a.error_class == "timeout" for a in info.value.attempts)


def test_context_too_long_moves_to_a_larger_context_model(server: FakeLLMServer) -> None:
    server.fault(
        "context_length", model="gpt-4o-mini", prompt_tokens=150_000, context_window=128_000
    )
    resp = llm.complete(
        "openai:gpt-4o-mini", "long", fallbacks=["anthropic:claude-haiku-4-5", "openai:gpt-4.1"]
    )
    assert resp.model == "anthropic:claude-haiku-4-5"  # 200k > 150k requested


def test_context_too_long_skips_models_that_are_not_larger(server: FakeLLMServer) -> None:
    server.fault(
        "context_length", model="claude-haiku-4-5", prompt_tokens=250_000, context_window=200_000
    )
    resp = llm.complete(FALLBACK, "long", fallbacks=["openai:gpt-4o-mini", "openai:gpt-4.1"])
    assert resp.model == "openai:gpt-4.1"
    assert server.request_count(model="gpt-4o-mini") == 0


def test_context_too_long_without_a_larger_model_is_typed(server: FakeLLMServer) -> None:
    server.fault(
        "context_length", model="gpt-4.1", prompt_tokens=2_000_000, context_window=1_047_576
    )
    with pytest.raises(llm.ContextLengthExceeded):
        llm.complete("openai:gpt-4.1", "long", fallbacks=["anthropic:claude-haiku-4-5"])
    assert server.request_count() == 1


def test_invalid_output_is_reasked_with_the_validation_error(server: FakeLLMServer) -> None:
    server.fault("rate_limit", retry_after_ms=10)
    server.reply('{"label": "billing"}')  # misses "urgent"
    server.reply('{"label": "billing", "urgent": false}')
    resp = llm.complete(PRIMARY, "ticket", output=Ticket)
    assert resp.parsed == Ticket(label="billing", urgent=False)
    assert [a.error_class for a in resp.attempts] == ["rate_limited", "invalid_output", None]
    reask = server.requests[-1].body["messages"]
    assert reask[-2] == {"role": "assistant", "content": '{"label": "billing"}'}
    assert "urgent" in reask[-1]["content"] and "Field required" in reask[-1]["content"]
    # transport errors never reach a prompt
    assert "rate" not in reask[-1]["content"].lower()
    assert len(reask) == 3


def test_truncated_json_is_reasked(server: FakeLLMServer) -> None:
    server.fault("truncated_json")
    server.reply('{"label": "billing", "urgent": true}')
    resp = llm.complete(PRIMARY, "ticket", output=Ticket)
    assert resp.parsed is not None and resp.parsed.label == "billing"
    assert resp.attempts[0].error_class == "invalid_output"


def test_reask_budget_is_separate_and_bounded(server: FakeLLMServer) -> None:
    server.reply("not json", times=5)
    with pytest.raises(llm.InvalidOutput) as info:
        llm.complete(PRIMARY, "ticket", output=Ticket, max_reasks=1, max_attempts=1)
    assert server.request_count() == 2  # one answer + one re-ask, even with max_attempts=1
    assert info.value.text == "not json"


def test_invalid_tool_call_json_is_reasked(server: FakeLLMServer) -> None:
    server.fault("invalid_tool_json")
    server.reply("", tool_calls=[{"name": "get_weather", "arguments": {"city": "Paris"}}])
    tool = {
        "name": "get_weather",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
    }
    resp = llm.complete(PRIMARY, "weather?", tools=[tool])
    assert resp.tool_calls[0].arguments == {"city": "Paris"}
    assert "get_weather" in server.requests[-1].body["messages"][-1]["content"]


def test_gemini_malformed_function_call_is_reasked(server: FakeLLMServer) -> None:
    server.fault("invalid_tool_json")
    server.reply("done")
    tool = {
        "name": "get_weather",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
    }
    resp = llm.complete("google:gemini-2.5-flash", "weather?", tools=[tool])
    assert resp.text == "done"
    assert resp.attempts[0].error_class == "invalid_output"


def test_every_attempt_has_usage_and_cost_and_the_total_adds_up(server: FakeLLMServer) -> None:
    server.reply("nope", usage={"input_tokens": 1000, "output_tokens": 100})
    server.reply(
        '{"label": "x", "urgent": true}', usage={"input_tokens": 1200, "output_tokens": 20}
    )
    resp = llm.complete(PRIMARY, "t", output=Ticket)
    assert [a.usage.input_tokens for a in resp.attempts] == [1000, 1200]
    assert all(a.cost_usd and a.cost_usd > 0 for a in resp.attempts)
    assert resp.usage.input_tokens == 2200
    assert resp.cost_usd == pytest.approx(sum(a.cost_usd or 0 for a in resp.attempts))


def test_max_cost_stops_further_attempts(server: FakeLLMServer) -> None:
    server.reply("nope", usage={"input_tokens": 1_000_000, "output_tokens": 0}, times=5)
    with pytest.raises(llm.CostLimitExceeded) as info:
        llm.complete(PRIMARY, "t", output=Ticket, max_cost_usd=0.5, max_reasks=4)
    assert server.request_count() == 2  # $0.40 each: the third would start past $0.50
    assert info.value.cost_usd == pytest.approx(0.8)


def test_a_budget_is_shared_across_calls(server: FakeLLMServer) -> None:
    budget = llm.Budget(0.5)
    server.reply("a", usage={"input_tokens": 1_000_000, "output_tokens": 0}, times=3)
    llm.complete(PRIMARY, "t", budget=budget)
    llm.complete(PRIMARY, "t", budget=budget)
    assert budget.spent_usd == pytest.approx(0.8)
    with pytest.raises(llm.CostLimitExceeded):
        llm.complete(PRIMARY, "t", budget=budget)
    assert server.request_count() == 2


def test_price_table_can_be_overridden(server: FakeLLMServer) -> None:
    prices = llm.PriceTable({"openai:my-finetune": {"input": 10.0, "output": 20.0}})
    server.reply("x", usage={"input_tokens": 100_000, "output_tokens": 50_000})
    resp = llm.complete("openai:my-finetune-2026", "t", prices=prices)
    assert resp.cost_usd == pytest.approx(1.0 + 1.0)


def _open(breaker: CircuitBreaker) -> None:
    """Open the primary's circuit the way calls do: two 500s in a row (threshold 2), then
    the third try's backoff ends after the 1 s deadline."""
    with pytest.raises(llm.LLMCallFailed):
        llm.complete(PRIMARY, "hi", circuit=breaker, max_attempts=2, deadline=1)
    assert breaker.state(PRIMARY) == "open"


def test_circuit_opens_and_later_calls_skip_to_the_fallback(server: FakeLLMServer) -> None:
    breaker = CircuitBreaker(MemoryCircuitStore(), failure_threshold=2, cooldown=60)
    server.fault("server_error", model="gpt-4.1-mini", times=2)
    _open(breaker)
    before = server.request_count(model="gpt-4.1-mini")
    resp = llm.complete(PRIMARY, "hi", fallbacks=[FALLBACK], circuit=breaker)
    assert resp.model == FALLBACK
    assert server.request_count(model="gpt-4.1-mini") == before  # not even tried


def test_open_circuit_without_fallback_lets_the_call_through_at_its_own_pace(
    server: FakeLLMServer,
) -> None:
    breaker = CircuitBreaker(MemoryCircuitStore(), failure_threshold=2, cooldown=60)
    server.fault("server_error", times=2)
    _open(breaker)
    start = time.monotonic()
    resp = llm.complete(PRIMARY, "hi", circuit=breaker)  # the cooldown is a minute
    assert time.monotonic() - start < 1  # no other model to send it to: it is not held
    assert [a.ok for a in resp.attempts] == [True]
    assert breaker.state(PRIMARY) == "closed"  # its success closed the circuit


def test_open_circuit_without_fallback_keeps_the_calls_own_backoff(
    server: FakeLLMServer,
) -> None:
    breaker = CircuitBreaker(MemoryCircuitStore(), failure_threshold=1, cooldown=60)
    server.fault("server_error", times=1).fault("unavailable", times=1)
    resp = llm.complete(PRIMARY, "hi", circuit=breaker, deadline=10)
    assert [a.error_class for a in resp.attempts] == ["server_error", "overloaded", None]
    gaps = [  # the wait between one attempt's end and the next one's start
        b.started_at - (a.started_at + a.duration_s)
        for a, b in zip(resp.attempts, resp.attempts[1:], strict=False)
    ]
    assert 0.3 <= gaps[0] < 1.5  # 0.5 s backoff (with jitter), not the 60 s cooldown
    assert 1.3 <= gaps[1] < 3.5  # 2 s for an overload


def test_failed_probe_reopens_the_circuit_for_longer(
    server: FakeLLMServer, breaker: CircuitBreaker
) -> None:
    server.fault("server_error", times=5)
    _open(breaker)
    poll(lambda: breaker.state(PRIMARY) == "half_open", timeout=3)
    assert breaker.status(PRIMARY).cooldown == 0.5
    with pytest.raises(llm.LLMCallFailed):
        llm.complete(PRIMARY, "hi", circuit=breaker, max_attempts=1, deadline=0.8)
    assert breaker.state(PRIMARY) == "open"
    # The probe's failure doubled the cooldown; the call's later tries, let through with no
    # fallback left, did not extend it further.
    assert breaker.status(PRIMARY).cooldown == 1.0


def test_rate_limits_with_a_server_delay_do_not_open_the_circuit(
    server: FakeLLMServer, breaker: CircuitBreaker
) -> None:
    server.fault("rate_limit", retry_after_ms=10, times=2)
    llm.complete(PRIMARY, "hi", circuit=breaker)
    assert breaker.state(PRIMARY) == "closed"


class _KV:
    """What the durable store offers: kv_get / kv_set on strings."""

    def __init__(self) -> None:
        self.data: dict[str, str] = {}

    def kv_get(self, key: str) -> str | None:
        return self.data.get(key)

    def kv_set(self, key: str, value: str) -> None:
        self.data[key] = value


def test_circuit_state_is_shared_through_the_store(server: FakeLLMServer) -> None:
    kv = _KV()
    worker_a = CircuitBreaker(KVCircuitStore(kv), failure_threshold=2, cooldown=60)
    worker_b = CircuitBreaker(KVCircuitStore(kv), failure_threshold=2, cooldown=60)
    server.fault("overloaded", model="gpt-4.1-mini", times=2, retry_after_ms=10)
    for _ in range(2):  # each call fails once on the primary, then its fallback answers
        assert llm.complete(PRIMARY, "hi", fallbacks=[FALLBACK], circuit=worker_a).text
    assert any("gpt-4.1-mini" in k for k in kv.data)
    assert worker_b.state(PRIMARY) == "open"
    resp = llm.complete(PRIMARY, "hi", fallbacks=[FALLBACK], circuit=worker_b)
    assert resp.attempts[0].model == FALLBACK


def test_missing_api_key_fails_before_any_request(
    server: FakeLLMServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("ANTHROPIC_API_KEY")
    with pytest.raises(llm.MissingAPIKey, match="ANTHROPIC_API_KEY"):
        llm.complete(PRIMARY, "hi", fallbacks=[FALLBACK])
    assert server.request_count() == 0


def test_unknown_prefix_names_the_valid_ones() -> None:
    with pytest.raises(llm.UnknownProvider, match="openai-compatible"):
        llm.complete("gpt-4o", "hi")
    with pytest.raises(llm.UnknownProvider, match="base_url"):
        llm.complete("openai-compatible:no-model-part", "hi")


def test_missing_extra_gives_the_pip_line(monkeypatch: pytest.MonkeyPatch) -> None:
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util,
        "find_spec",
        lambda name, *a: None if name == "anthropic" else real(name, *a),
    )
    monkeypatch.setenv("ANTHROPIC_API_KEY", "x")
    with pytest.raises(llm.MissingExtra, match=r'pip install "tether\[anthropic\]"'):
        llm.complete(FALLBACK, "hi")


def test_async_calls_run_concurrently(server: FakeLLMServer) -> None:
    server.reply("slow", delay=0.5, times=4)

    async def main() -> list[str]:
        results = await asyncio.gather(*(llm.acomplete(PRIMARY, f"q{i}") for i in range(4)))
        return [r.text for r in results]

    assert asyncio.run(main()) == ["slow"] * 4
    requests = server.requests
    # all four were in flight at once: the last arrived before the first was answered
    assert max(r.received_at for r in requests) < min(r.finished_at for r in requests)


def test_blocking_complete_works_inside_a_running_loop(server: FakeLLMServer) -> None:
    async def main() -> str:
        return llm.complete(PRIMARY, "hi").text

    assert asyncio.run(main()) == "Hello from FakeLLMServer."


def test_a_server_delay_is_shared_by_later_calls(server: FakeLLMServer) -> None:
    server.fault("rate_limit", retry_after=30, model="gpt-4.1-mini")
    first = llm.complete(PRIMARY, "hi", fallbacks=[FALLBACK])
    second = llm.complete(PRIMARY, "hi", fallbacks=[FALLBACK])
    assert first.model == second.model == FALLBACK
    assert [a.model for a in second.attempts] == [FALLBACK]  # no second 429 collected
    assert server.request_count(model="gpt-4.1-mini") == 1
    assert llm.default_breaker().state(PRIMARY) == "closed"  # rate limited, not broken


def test_errors_amid_successes_do_not_open_the_circuit() -> None:
    breaker = CircuitBreaker(MemoryCircuitStore(), failure_threshold=3, failure_rate=0.5)
    for _ in range(10):
        breaker.record_failure("m")
        breaker.record_success("m")
        breaker.record_success("m")
    assert breaker.state("m") == "closed"  # 10 failures, but a third of the calls
    for _ in range(9):
        breaker.record_failure("m")
    assert breaker.state("m") == "closed"  # 19 failures of 39 calls
    breaker.record_failure("m")
    assert breaker.state("m") == "open"  # 20 of 40: half


def test_the_circuit_window_forgets_old_failures() -> None:
    now = [1000.0]
    breaker = CircuitBreaker(
        MemoryCircuitStore(), failure_threshold=3, window=60, clock=lambda: now[0]
    )
    breaker.record_failure("m")
    breaker.record_failure("m")
    now[0] += 61
    breaker.record_failure("m")
    assert breaker.state("m") == "closed"
    breaker.record_failure("m")
    breaker.record_failure("m")
    assert breaker.state("m") == "open"
    now[0] += 31
    assert breaker.before_call("m").probe
    assert not breaker.before_call("m").allowed  # one probe at a time
    breaker.record_success("m")
    assert breaker.state("m") == "closed"


def test_context_overflow_is_compacted_once_and_retried(server: FakeLLMServer) -> None:
    server.fault("context_length", times=1)
    server.reply("short enough now")
    seen: list[int] = []

    async def keep_last(messages: list[llm.Message]) -> list[llm.Message]:
        seen.append(len(messages))
        return messages[-1:]

    history = [{"role": "user", "content": f"turn {i}"} for i in range(6)]
    resp = llm.complete(PRIMARY, history, compact=keep_last)
    assert resp.text == "short enough now"
    assert seen == [6]
    assert [a.action for a in resp.attempts] == ["compact", None]
    assert len(server.requests[-1].body["messages"]) == 1


def test_unshared_rate_limits_only_delay_the_call_that_got_them(server: FakeLLMServer) -> None:
    breaker = CircuitBreaker(MemoryCircuitStore(), share_rate_limits=False)
    server.fault("rate_limit", retry_after=30, model="gpt-4.1-mini")
    first = llm.complete(PRIMARY, "hi", fallbacks=[FALLBACK], circuit=breaker)
    second = llm.complete(PRIMARY, "hi", fallbacks=[FALLBACK], circuit=breaker)
    assert first.model == FALLBACK
    assert second.model == PRIMARY


def test_a_breaker_on_its_own_clock_is_waited_for_correctly(server: FakeLLMServer) -> None:
    # the harness gives its breaker the harness clock, which need not be wall time
    breaker = CircuitBreaker(MemoryCircuitStore(), clock=lambda: time.time() - 1e6)
    breaker.hold(PRIMARY, 0.5)  # another call got a 429 asking for half a second
    start = time.monotonic()
    resp = llm.complete(PRIMARY, "hi", circuit=breaker, deadline=5)
    assert resp.text
    assert 0.4 <= time.monotonic() - start < 2
    assert [a.ok for a in resp.attempts] == [True]
