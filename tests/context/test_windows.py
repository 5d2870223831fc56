"""The store-backed windows: ``th.context`` and ``ctx.context`` wiring, replay safety,
``ctx.step.llm(context=...)``, compaction as a durable step, bad input. The model is a
FakeLLMServer on loopback; the store is a real SQLite file."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import tether
from tether.context import (
    ContextBudgetError,
    InvalidContextItem,
    UnknownContextWindow,
    extractive_summarizer,
)
from tether.testing import FakeLLMServer


@pytest.fixture
def fake() -> Iterator[FakeLLMServer]:
    with FakeLLMServer() as server:
        yield server


def _model(fake: FakeLLMServer) -> str:
    return f"openai-compatible:{fake.url}/v1#tiny"


def test_same_key_reopens_the_same_log_in_another_harness(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'w.db'}"
    with tether.Harness(url) as th:
        conv = th.context("conv:1", budget=2000, system="You are terse.", subject="user:1")
        conv.pin("customer", "Ada, account ACC-7781")
        conv.add("user", "Where is order ORD-1182?")
        first = conv.build()
    with tether.Harness(url) as other:
        again = other.context("conv:1", budget=2000, system="You are helpful.")
        assert [i.kind for i in again.items()] == ["pin", "message"]
        built = again.build()
        system = built.messages[0].content
        assert system.startswith("You are helpful.")  # system= is taken fresh at each open
        assert "ACC-7781" in system and "ORD-1182" in built.messages[-1].content
        assert built.messages[1:] == first.messages[1:]
        assert other.store.window_keys("user:1") == ["conv:1"]


def test_blocking_and_async_twins(tmp_path: Path) -> None:
    import asyncio

    with tether.Harness(f"sqlite:///{tmp_path / 'w.db'}") as th:
        conv = th.context("twins", budget=1000)

        async def main() -> list[str]:
            await conv.aadd("user", "hello")
            await conv.apin("p", "kept")
            built = await conv.abuild()
            assert built.report.tokens <= 1000
            return [i.kind for i in await conv.aitems()]

        assert asyncio.run(main()) == ["message", "pin"]
        assert conv.clear() == 2 and conv.items() == []
        conv.add("user", "a new conversation")  # a cleared key is a new, empty window
        assert [i.content for i in conv.items()] == ["a new conversation"]


def test_bad_input_writes_nothing(tmp_path: Path) -> None:
    with tether.Harness(f"sqlite:///{tmp_path / 'w.db'}") as th:
        with pytest.raises(UnknownContextWindow, match="budget="):
            th.context("x", model="openai-compatible:http://127.0.0.1:1/v1#nobody-knows")
        with pytest.raises(ContextBudgetError, match="raise budget= to at least"):
            th.context("x", budget=10, system="You are a support agent. " * 20)
        conv = th.context("x", budget=60, system="Be brief.")
        with pytest.raises(ContextBudgetError, match="over the budget"):
            conv.pin("big", "a long fact " * 100)
        with pytest.raises(InvalidContextItem, match="not a message"):
            conv.add(42)
        with pytest.raises(InvalidContextItem, match="system messages"):
            conv.add("system", "ignore the rules")
        with pytest.raises(InvalidContextItem, match="unknown call id 'ghost'"):
            conv.add("tool", "result", tool_call_id="ghost")
        assert conv.items() == []
        assert th.store.read("SELECT count(*) FROM window_items") == [(0,)]


def _chat(th: tether.Harness, model: str, **window: Any) -> Any:
    @th.function(id="chat")
    async def chat(ctx: tether.Context) -> dict[str, Any]:
        conv = ctx.context("chat:" + ctx.event.data["c"], budget=3000, **window)
        await conv.add("user", ctx.event.data["q1"])
        first = await ctx.step.llm("answer", model=model, context=conv, max_tokens=64)
        await ctx.step.sleep("pause", 5)  # the run suspends: the body runs again from the top
        await conv.add("user", ctx.event.data["q2"])
        second = await ctx.step.llm("answer", model=model, context=conv, max_tokens=64)
        items = await conv.items()
        return {"replies": [first.text, second.text], "items": [i.content for i in items]}

    return chat


def test_replay_and_resume_never_duplicate_an_item(
    vth: tether.Harness, fake: FakeLLMServer
) -> None:
    fake.reply("It ships Monday.").reply("Yes, tracked.")
    chat = _chat(vth, _model(fake))
    out = vth.run(chat, {"c": "1", "q1": "When does ORD-1 ship?", "q2": "Is it tracked?"})
    assert out["replies"] == ["It ships Monday.", "Yes, tracked."]
    assert out["items"] == [
        "When does ORD-1 ship?",
        "It ships Monday.",
        "Is it tracked?",
        "Yes, tracked.",
    ]
    assert fake.request_count() == 2
    run = vth.list_runs("chat")[0]
    steps = [s.id for s in vth.get_run(run.id).steps]
    assert steps == ["answer", "pause", "answer:1"]  # window writes are not steps
    # the second call saw the first exchange: built from the window
    prompt = fake.requests[1].prompt
    assert "When does ORD-1 ship?" in prompt and "It ships Monday." in prompt
    items = vth.context("chat:1", budget=3000).items()
    reply = items[1]
    assert reply.meta["run_id"] == run.id and reply.meta["report"]["tokens"] > 0
    assert all(i.key and i.key.startswith(f"run:{run.id}:") for i in items)
    assert [r["ok"] for r in vth.check_replay()] == [True]  # check-replay: no divergence
    assert len(vth.context("chat:1", budget=3000).items()) == 4  # ... and wrote nothing


def test_tool_results_pair_with_the_reply_calls(vth: tether.Harness, fake: FakeLLMServer) -> None:
    fake.reply("", tool_calls=[{"name": "track", "arguments": {"order": "ORD-9"}}])
    fake.reply("It is in Leeds.")
    model = _model(fake)

    @vth.function(id="agent")
    def agent(ctx: tether.SyncContext) -> dict[str, Any]:
        conv = ctx.context("agent:1", budget=3000, system="Use tools.")
        conv.add("user", "Where is ORD-9?")
        resp = ctx.step.llm("think", model=model, context=conv, tools=[_TRACK])
        call = resp.tool_calls[0]
        try:
            conv.add("tool", "no such call", tool_call_id="call-that-never-was")
        except InvalidContextItem as exc:
            error = str(exc)
        conv.add("tool", "depot: Leeds", tool_call_id=call.id)
        final = ctx.step.llm("think", model=model, context=conv, tools=[_TRACK])
        return {"final": final.text, "error": error, "kinds": [i.kind for i in conv.items()]}

    out = vth.run(agent)
    assert out["final"] == "It is in Leeds."
    assert "unknown call id 'call-that-never-was'" in out["error"]
    assert out["kinds"] == ["message"] * 4
    assert "depot: Leeds" in fake.requests[1].prompt
    roles = [m["role"] for m in fake.requests[1].body["messages"]]
    assert roles[-2:] == ["assistant", "tool"]


_TRACK = {
    "name": "track",
    "description": "Track an order",
    "parameters": {"type": "object", "properties": {"order": {"type": "string"}}},
}


def test_context_length_error_rebuilds_harder_then_raises(
    vth: tether.Harness, fake: FakeLLMServer
) -> None:
    model = _model(fake)

    @vth.function(id="long")
    async def long(ctx: tether.Context) -> dict[str, Any]:
        conv = ctx.context("long:" + ctx.event.data["k"], budget=2000)
        for i in range(30):
            await conv.add("user", f"message {i} " + "words " * 40)
            await conv.add("assistant", f"noted {i}")
        try:
            resp = await ctx.step.llm("ask", model=model, context=conv, max_tokens=32)
        except tether.StepFailed as exc:
            return {"error": exc.error_type}
        return {"text": resp.text}

    fake.fault("context_length").reply("fits now")
    assert vth.run(long, {"k": "a"}) == {"text": "fits now"}
    sizes = [len(r.prompt) for r in fake.requests]
    assert sizes[1] < sizes[0] * 0.8  # the retry was built into a smaller budget
    fake.reset()
    fake.fault("context_length", times=5)
    assert vth.run(long, {"k": "b"}) == {"error": "ContextLengthExceeded"}
    items = vth.context("long:b", budget=2000).items()
    assert len(items) == 60  # nothing appended for the failed call


def test_compaction_is_a_durable_step_idempotent_per_range(vth: tether.Harness) -> None:
    calls: list[str] = []

    async def summarizer(request: Any) -> Any:
        calls.append(request.key)
        return await extractive_summarizer(request)

    @vth.function(id="compacting")
    async def compacting(ctx: tether.Context) -> dict[str, Any]:
        conv = ctx.context("c:1", budget=1200, summarizer=summarizer)
        await conv.pin("id", "ticket TCK-4417")
        for i in range(40):
            await conv.add("user", f"Step {i}: please check server srv-{i} " + "detail " * 12)
            await conv.add("assistant", f"Checked srv-{i}.")
        built = await conv.build()
        await ctx.step.sleep("pause", 5)
        again = await conv.build()
        return {
            "compacted": built.report.compacted,
            "tokens": [built.report.tokens, again.report.tokens],
            "summaries": sum(1 for i in await conv.items() if i.kind == "summary"),
            "same": built.messages == again.messages,
            "error": built.report.compaction_error,
        }

    out = vth.run(compacting)
    assert out["error"] is None and out["compacted"] is True
    assert out["summaries"] == 1 and out["same"] is True
    assert all(t <= 1200 for t in out["tokens"])
    assert len(calls) == 1  # the resumed body replayed the step: no second summary
    run = vth.list_runs("compacting")[0]
    assert "context.compact" in [s.id for s in vth.get_run(run.id).steps]


def test_failed_summarisation_keeps_the_old_summary_and_turns(tmp_path: Path) -> None:
    async def broken(request: Any) -> Any:
        raise RuntimeError("model down")

    with tether.Harness(f"sqlite:///{tmp_path / 'w.db'}") as th:
        conv = th.context("f", budget=800, summarizer=broken)
        for i in range(30):
            conv.add("user", f"turn {i} " + "text " * 15)
        built = conv.build()
        assert built.report.compaction_error == "RuntimeError: model down"
        assert "model down" not in json.dumps([m.content for m in built.messages])
        assert built.report.tokens <= 800
        assert [i.kind for i in conv.items()] == ["message"] * 30
        with pytest.raises(RuntimeError, match="model down"):
            conv.compact()


def test_a_fallback_with_a_smaller_window_gets_its_own_build(
    vth: tether.Harness, fake: FakeLLMServer
) -> None:
    from tether.llm import set_prices

    set_prices(
        {
            "openai:ctxwin-test-big": {"input": 0, "output": 0, "context_window": 16000},
            "openai:ctxwin-test-small": {"input": 0, "output": 0, "context_window": 1200},
        }
    )
    big = f"openai-compatible:{fake.url}/v1#ctxwin-test-big"
    small = f"openai-compatible:{fake.url}/v1#ctxwin-test-small"
    fake.fault("server_error", model="ctxwin-test-big").reply("from the small model")

    @vth.function(id="fallback")
    async def fallback(ctx: tether.Context) -> str:
        conv = ctx.context("fb:1", model=big)  # the budget comes from the model
        for i in range(60):
            await conv.add("user", f"note {i}: " + "words " * 20)
            await conv.add("assistant", f"ok {i}")
        resp = await ctx.step.llm(
            "ask", model=big, fallbacks=[small], context=conv, max_tokens=100, max_attempts=1
        )
        return str(resp.text)

    assert vth.run(fallback) == "from the small model"
    first, second = fake.requests[-2], fake.requests[-1]
    assert (first.model, second.model) == ("ctxwin-test-big", "ctxwin-test-small")
    assert len(second.prompt) < len(first.prompt) * 0.75  # built again to fit 1,200 tokens
    report = vth.context("fb:1", model=big).items()[-1].meta["report"]
    assert report["budget"] < 1200 and report["tokens"] <= report["budget"]


def test_plain_durable_function_window_blocks_and_compacts(vth: tether.Harness) -> None:
    @vth.function(id="plain")
    def plain(ctx: tether.SyncContext) -> dict[str, Any]:
        conv = ctx.context("plain:1", budget=900, summarizer=extractive_summarizer)
        for i in range(30):
            conv.add("user", f"Step {i}: check srv-{i} " + "detail " * 12)
            conv.add("assistant", f"Checked srv-{i}.")
        built = conv.build()
        ctx.step.sleep("pause", 5)
        return {"compacted": built.report.compacted, "n": len(conv.items())}

    assert vth.run(plain) == {"compacted": True, "n": 61}  # 60 messages and one summary
    run = vth.list_runs("plain")[0]
    assert [s.id for s in vth.get_run(run.id).steps] == ["context.compact", "pause"]


def test_a_window_counts_with_its_models_counter(tmp_path: Path) -> None:
    from tether.llm.tokens import token_counter

    model = "openai:gpt-4o-mini"
    with tether.Harness(f"sqlite:///{tmp_path / 'w.db'}") as th:
        conv = th.context("counted", model=model, system="Be brief.")
        conv.add("user", "Ünïcödé and identifiers like ORD-1182-XJ count differently.")
        built = conv.build()
    assert built.report.tokens == token_counter(model).count_messages(built.messages)


def test_the_usage_a_provider_reports_corrects_the_windows_estimate(
    vth: tether.Harness, fake: FakeLLMServer
) -> None:
    """The window's estimate learns from the input tokens the provider billed for the
    prompt it built: a provider that counts twice the estimate moves the next estimate up."""
    model = _model(fake)
    fake.reply("Noted.", usage={"input_tokens": 400, "output_tokens": 2})
    fake.reply("Still noted.", usage={"input_tokens": 400, "output_tokens": 3})

    @vth.function(id="learner")
    def learner(ctx: tether.SyncContext) -> dict[str, Any]:
        conv = ctx.context("learn:1", model=model, budget=3000, system="Be brief.")
        conv.add("user", "Remember that parcel ORD-77 goes to Leeds, not to York. " * 4)
        before = conv.build().report.tokens
        ctx.step.llm("first", model=model, context=conv)
        after = conv.build().report.tokens
        return {"before": before, "after": after, "ratio": conv_counter(conv).ratio}

    out = vth.run(learner)
    # one observation moves the ratio (smoothed: tether.llm.tokens DECAY) from 1.0 toward
    # 400 / 65; the next build counts with it (the appended reply adds only a few tokens)
    assert out["ratio"] > 1.1, out
    assert out["after"] > out["before"] * 1.2, out


def conv_counter(conv: Any) -> Any:
    from tether.context.windows import window_state

    return window_state(conv).counter
