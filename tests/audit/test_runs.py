"""``tether.audit.runs`` on runs whose figures are known by construction, on both stores.

Retries: a virtual clock makes each attempt take a set time (the step callable sleeps on
it) and the backoff is fixed (``jitter=False``), so every second of the tax is known; the
only slack is the real time the machinery takes between clock readings (milliseconds).
LLM calls go to FakeLLMServer over real HTTP: a 429 with Retry-After, a failed primary
with a fallback that answers, and a call whose fallback fails too.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

import tether
from tether import audit
from tether.testing import FakeLLMServer

BOTH = pytest.mark.parametrize("backend", ["sqlite", "postgres"], indirect=True)
SLACK = 0.1  # real seconds between two clock readings of one step, on a busy machine
OVERHEAD = 0.5  # real seconds a run's checkpoints may take in all (PostgreSQL round trips)


@pytest.fixture
def server() -> Iterator[FakeLLMServer]:
    with FakeLLMServer() as fake:
        yield fake


def _flaky_app(th: tether.Harness) -> None:
    clock = th.clock
    calls: dict[str, int] = {}

    def charge(key: str) -> str:
        calls[key] = calls.get(key, 0) + 1
        if calls[key] <= 2:
            clock.sleep(2.0)  # a failed attempt takes 2 s
            raise ConnectionError("payment gateway refused the connection")
        clock.sleep(1.0)
        return "charged"

    def work() -> int:
        clock.sleep(1.0)
        return 1

    def broken() -> None:
        clock.sleep(0.5)
        raise ValueError("card number is invalid")

    @th.function(
        id="pay",
        retries=tether.Retry(max_attempts=3, backoff="constant", initial=0.5, jitter=False),
    )
    def pay(ctx: tether.SyncContext) -> str:
        ctx.step.run("charge", charge, ctx.run_id)
        ctx.step.sleep("cool-off", 100)  # intent: not active time
        ctx.step.run("notify", work)
        return "ok"

    @th.function(
        id="doomed",
        retries=tether.Retry(max_attempts=2, backoff="constant", initial=0.5, jitter=False),
    )
    def doomed(ctx: tether.SyncContext) -> None:
        ctx.step.run("validate", broken)


@BOTH
def test_retries_with_fixed_backoff_give_the_tax_by_construction(vth: tether.Harness) -> None:
    _flaky_app(vth)
    for _ in range(3):
        assert vth.run("pay") == "ok"
    with pytest.raises(tether.RunFailed):
        vth.run("doomed")

    doc = audit.runs(vth).to_dict()
    # pay: per run 2 failed attempts of 2 s, 2 backoffs of 0.5 s, 1 s + 1 s of work.
    pay = doc["functions"]["pay"]
    assert pay["runs"] == 3 and pay["success_rate"] == 1.0
    assert pay["retries_absorbed"] == 6
    assert pay["tax_seconds"]["failed_attempts"] == pytest.approx(12.0, abs=3 * SLACK)
    assert pay["tax_seconds"]["backoff"] == pytest.approx(3.0, abs=3 * SLACK)
    assert pay["tax_seconds"]["recovery"] == 0.0
    assert pay["tax_seconds"]["provider_waits"] == 0.0
    # 21 s of active time (the 100 s sleeps left out), plus what the store's round trips
    # between steps took in real time.
    active = pay["active_s"]
    assert 21.0 - 3 * SLACK <= active <= 21.0 + 3 * OVERHEAD
    assert pay["intent_s"] == pytest.approx(300.0, abs=3 * SLACK)
    tax = pay["tax_seconds"]
    assert pay["reliability_tax"] == pytest.approx(sum(tax.values()) / active, abs=1e-3)
    assert pay["tax_by_cause"]["failed_attempts"] == pytest.approx(
        tax["failed_attempts"] / active, abs=1e-3
    )
    assert pay["tax_by_cause"]["backoff"] == pytest.approx(tax["backoff"] / active, abs=1e-3)
    assert pay["reliability_tax"] == pytest.approx(15 / 21, abs=0.05)
    assert pay["dominant_cause"] == "failed_attempts"
    (failure,) = pay["failures"]
    assert failure["error_type"] == "ConnectionError"
    assert failure["message"] == "payment gateway refused the connection"
    assert failure["count"] == 6 and failure["absorbed"] == 6
    assert failure["example_run"] in {r.id for r in vth.list_runs("pay")}
    charge = pay["steps"]["charge"]
    assert charge["runs"] == 3 and charge["success_rate"] == 1.0
    assert charge["attempts"] == 9 and charge["failed_attempts"] == 6
    # 2 + 0.5 + 2 + 0.5 + 1 = 6 s from the first attempt to the end, within the sketch's 1%.
    assert charge["latency_s"]["p50"] == pytest.approx(6.0, rel=0.011, abs=SLACK)
    assert charge["reliability_tax"] == pytest.approx(5 / 6, abs=0.02)
    assert pay["steps"]["notify"]["reliability_tax"] == 0.0
    assert pay["latency_s"]["p99"] == pytest.approx(7.0, rel=0.011, abs=SLACK)

    doomed = doc["functions"]["doomed"]
    assert doomed["runs"] == 1 and doomed["success_rate"] == 0.0
    assert doomed["retries_absorbed"] == 0
    (failure,) = doomed["failures"]
    assert (failure["error_type"], failure["count"], failure["absorbed"]) == ("ValueError", 2, 0)
    assert doomed["tax_seconds"]["failed_attempts"] == pytest.approx(1.0, abs=SLACK)
    assert doomed["tax_seconds"]["backoff"] == pytest.approx(0.5, abs=SLACK)

    # The store as a whole: time-weighted over both functions.
    assert doc["runs"] == 4 and doc["success_rate"] == 0.75
    assert doc["retries_absorbed"] == 6
    assert doc["reliability_tax"] == pytest.approx(16.5 / 22.5, abs=0.05)
    assert sum(doc["tax_by_cause"].values()) == pytest.approx(doc["reliability_tax"], abs=1e-3)
    assert doc["statuses"] == {"completed": 3, "failed": 1}
    assert [f["error_type"] for f in doc["failures"]] == ["ConnectionError", "ValueError"]
    assert doc["advice"][0]["cause"] == "failed_attempts"
    assert "pay / charge" in doc["advice"][0]["where"]

    only = audit.runs(vth, function="doomed").to_dict()
    assert set(only["functions"]) == {"doomed"} and only["runs"] == 1


@BOTH
def test_durable_backoff_is_backoff_and_a_sleep_is_intent(th: tether.Harness) -> None:
    """A retry delay above the in-process limit suspends the run (the step sleeps with a
    wake time): that wait is backoff, while ``ctx.step.sleep`` is not counted at all."""
    seen: list[int] = []

    def once_then_ok() -> str:
        seen.append(1)
        if len(seen) == 1:
            raise TimeoutError("upstream took too long")
        return "ok"

    @th.function(
        retries=tether.Retry(max_attempts=2, backoff="constant", initial=2.2, jitter=False)
    )
    def durable(ctx: tether.SyncContext) -> str:
        ctx.step.sleep("nap", 0.5)
        return str(ctx.step.run("fetch", once_then_ok))

    assert th.run(durable) == "ok"
    run = th.list_runs("durable")[0]
    fetch = th.get_run(run.id).steps[1]
    assert fetch.status == "completed" and len(fetch.attempts) == 2

    doc = audit.runs(th).to_dict()["functions"]["durable"]
    backoff = doc["tax_seconds"]["backoff"]
    assert 2.2 <= backoff < 2.2 + 0.5  # the delay, plus the time to claim the run again
    assert doc["intent_s"] == pytest.approx(0.5, abs=0.3)
    assert doc["retries_absorbed"] == 1
    assert doc["reliability_tax"] == pytest.approx(
        (backoff + doc["tax_seconds"]["failed_attempts"]) / doc["active_s"], abs=1e-3
    )
    assert doc["reliability_tax"] > 0.6  # the rest: store round trips between the steps


def _model(server: FakeLLMServer, name: str) -> str:
    return f"openai-compatible:{server.url}/v1#{name}"


@BOTH
def test_a_429_with_retry_after_is_a_provider_wait(
    th: tether.Harness, server: FakeLLMServer
) -> None:
    # A first call warms the HTTP client up (its first request is slow on a busy machine),
    # then a 429 asking for 1 s, then the answer.
    server.reply("warm").fault("rate_limit", retry_after=1).reply("billing")

    @th.function()
    def classify(ctx: tether.SyncContext) -> str:
        resp = ctx.step.llm("classify", model=_model(server, "tiny"), messages="invoice?")
        return str(resp.text)

    assert th.run(classify) == "warm"
    assert th.run(classify) == "billing"
    doc = audit.runs(th).to_dict()
    fn = doc["functions"]["classify"]
    waits = fn["tax_seconds"]["provider_waits"]
    assert 1.0 <= waits < 1.2  # the server asked for 1 s (a shared hold may add a few ms)
    assert fn["retries_absorbed"] == 1
    assert fn["tax_by_cause"]["provider_waits"] == pytest.approx(waits / fn["active_s"], abs=1e-3)
    assert fn["dominant_cause"] == "provider_waits"
    model = doc["llm"]["models"][_model(server, "tiny")]
    assert (model["calls"], model["attempts"], model["failed_attempts"]) == (2, 3, 1)
    assert model["error_rate_by_class"] == {"rate_limited": round(1 / 3, 4)}
    assert model["waits_s"]["retry_after"] == pytest.approx(1.0, abs=0.05)
    (failure,) = fn["failures"]
    assert (failure["error_type"], failure["source"], failure["absorbed"]) == (
        "rate_limited",
        "llm",
        1,
    )
    assert doc["llm"]["calls"] == 2 and doc["llm_attempts"] == 3
    assert doc["advice"][0]["cause"] == "provider_waits"
    assert "fallback" in doc["advice"][0]["text"]


@BOTH
def test_fallbacks_taken_and_a_failed_fallback(th: tether.Harness, server: FakeLLMServer) -> None:
    primary, backup = _model(server, "primary"), _model(server, "backup")
    # Call 1: the primary fails (500), the fallback answers. Call 2: the prompt is too
    # long for both models: the fallback is taken and fails too, the step fails.
    server.fault("server_error", model="primary").reply("from backup", model="backup")
    server.fault("context_length", model="primary").fault("context_length", model="backup")

    @th.function()
    def ask(ctx: tether.SyncContext) -> str:
        first = ctx.step.llm(
            "first", model=primary, messages="a", fallbacks=[backup], max_attempts=1
        )
        try:
            ctx.step.llm("second", model=primary, messages="b", fallbacks=[backup])
        except tether.StepFailed:
            return f"{first.text} / second failed"
        return "unexpected"

    assert th.run(ask) == "from backup / second failed"
    doc = audit.runs(th).to_dict()
    llm = doc["llm"]
    assert llm["calls"] == 2 and llm["attempts"] == 4 and llm["failed_attempts"] == 3
    assert llm["fallbacks_taken"] == 2
    assert llm["context_overflows"] == 2
    assert llm["models"][backup]["fallbacks_taken"] == 2
    assert llm["models"][primary]["fallbacks_taken"] == 0
    assert llm["models"][primary]["errors_by_class"] == {
        "context_length_exceeded": 1,
        "server_error": 1,
    }
    assert llm["models"][backup]["error_rate"] == 0.5
    fn = doc["functions"]["ask"]
    # Only the first call's failure was made good; the second call's two are not.
    assert fn["retries_absorbed"] == 1
    first, second = fn["steps"]["first"], fn["steps"]["second"]
    assert first["success_rate"] == 1.0 and second["success_rate"] == 0.0
    assert second["failed_attempts"] == 1  # the step's one attempt: the whole failed call
    kinds = {(f["error_type"], f["source"], f["absorbed"]) for f in fn["failures"]}
    assert ("server_error", "llm", 1) in kinds
    assert ("context_length_exceeded", "llm", 0) in kinds
    assert doc["context"]["context_overflows"] == 2
    assert doc["context"]["windows"] == "no windows recorded"
    assert any(a["cause"] == "context" for a in doc["advice"])


def test_bad_input_is_refused_and_changes_nothing(th: tether.Harness) -> None:
    @th.function()
    def noop(ctx: tether.SyncContext) -> int:
        return 1

    th.run(noop)
    with pytest.raises(tether.ConfigurationError, match="since"):
        audit.runs(th, since="last tuesday")
    with pytest.raises(tether.ConfigurationError, match="'nope' has no runs"):
        audit.runs(th, function="nope")
    assert audit.runs(th, since="7d").runs == 1
    assert audit.runs(th, since=0.0).runs == 0  # created in the last 0 s: none


def test_an_empty_store_reports_zeros(th: tether.Harness) -> None:
    doc = audit.runs(th).to_dict()
    assert doc["runs"] == 0 and doc["success_rate"] is None
    assert doc["reliability_tax"] == 0.0 and doc["failures"] == []
    assert doc["functions"] == {} and doc["dominant_cause"] is None
    assert doc["latency_s"]["p50"] is None
