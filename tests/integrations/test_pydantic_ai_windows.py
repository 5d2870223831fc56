"""TetherAgent(context=...) with tether's store-backed context windows: ``ctx.context`` per
run (async and plain functions) and ``th.context`` shared by every run; the history comes
from the window's build, the run's messages go back in one keyed write, and a long
conversation is fitted to the budget with tool calls kept beside their results.
(The SIGKILL case is in test_pydantic_ai_crash.py.)"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from pydantic_ai import Agent
from pydantic_ai.models.openai import OpenAIChatModel
from pydantic_ai.providers.openai import OpenAIProvider

import tether
from tether.context import StructuredSummary, SummaryRequest
from tether.integrations.pydantic_ai import TetherAgent
from tether.testing import FakeLLMServer, RecordedRequest, Reply


@pytest.fixture
def th(tmp_path: Path) -> Iterator[tether.Harness]:
    harness = tether.Harness(f"sqlite:///{tmp_path / 'tether.db'}")
    yield harness
    harness.close()


def lookup_agent(fake: FakeLLMServer) -> Agent[Any, Any]:
    model = OpenAIChatModel(
        "gpt-4.1-mini", provider=OpenAIProvider(base_url=f"{fake.url}/v1", api_key="sk-fake")
    )
    agent: Agent[Any, Any] = Agent(model, name="clerk", instructions="Look items up.")

    @agent.tool_plain
    def lookup(n: int) -> str:
        return f"record {n}: " + " ".join(f"w{n}_{k}" for k in range(80))

    return agent


def clerk(req: RecordedRequest) -> Reply:
    """``item N`` in the newest user message: call ``lookup(N)`` (call id ``cN``), then,
    once the result is in, answer ``item N found``."""
    last = req.body["messages"][-1]
    if last["role"] == "tool":
        return Reply(f"item {last['tool_call_id'][1:]} found")
    n = int(last["content"].rsplit("item ", 1)[1].split()[0])
    return Reply("", tool_calls=[{"id": f"c{n}", "name": "lookup", "arguments": {"n": n}}])


async def brief(request: SummaryRequest) -> StructuredSummary:
    """A summarizer that needs no model: the items found so far, one line each."""
    said = "\n".join([request.previous or "", *request.lines])
    found = sorted(set(re.findall(r"item \d+ found", said)), key=lambda s: int(s.split()[1]))
    return StructuredSummary(
        goal="look items up", progress=found, critical_context=request.required
    )


def check_provider_input(messages: list[dict[str, Any]]) -> None:
    """What a chat-completions provider accepts: system messages first, then a user
    message; every tool result answers a call of the assistant message just before it,
    and every call is answered before the next non-tool message."""
    roles = [m["role"] for m in messages]
    first = next(i for i, r in enumerate(roles) if r != "system")
    assert roles[first] == "user", roles
    assert "system" not in roles[first:], roles
    open_calls: set[str] = set()
    for m in messages[first:]:
        if m["role"] == "tool":
            assert m["tool_call_id"] in open_calls, (m["tool_call_id"], roles)
            open_calls.remove(m["tool_call_id"])
            continue
        assert not open_calls, f"calls {open_calls} left unanswered"
        if m["role"] == "assistant":
            open_calls = {c["id"] for c in m.get("tool_calls") or []}
    assert not open_calls


def shape(items: list[Any]) -> list[tuple[Any, ...]]:
    return [
        (i.kind, i.message.role, i.message.content, json.dumps(i.message.model_dump(mode="json")))
        for i in items
        if i.message is not None
    ]


def test_a_window_per_run_keeps_the_conversation_across_runs(
    th: tether.Harness, fake: FakeLLMServer
) -> None:
    fake.set_default(clerk)
    durable = TetherAgent(
        lookup_agent(fake),
        harness=th,
        context=lambda ctx: ctx.context(
            "chat:" + ctx.event.data["chat"], budget=4000, system="You are terse."
        ),
    )

    @th.function()
    async def chat(ctx: tether.Context) -> str:
        return str((await durable.run(ctx.event.data["q"])).output)

    assert th.run(chat, {"chat": "a", "q": "find item 1"}) == "item 1 found"
    assert th.run(chat, {"chat": "a", "q": "and item 2"}) == "item 2 found"
    assert th.run(chat, {"chat": "b", "q": "find item 3"}) == "item 3 found"

    items = th.context("chat:a", budget=4000).items()
    assert [i.message.role for i in items if i.message] == [
        "user",
        "assistant",
        "tool",
        "assistant",
    ] * 2
    # One write per agent run, keyed by (run, write number): replay-safe.
    runs = [r.id for r in reversed(th.list_runs(function_id="chat"))]
    assert [i.key for i in items] == [
        f"run:{runs[0]}:1",
        f"run:{runs[0]}:1.1",
        f"run:{runs[0]}:1.2",
        f"run:{runs[0]}:1.3",
        f"run:{runs[1]}:1",
        f"run:{runs[1]}:1.1",
        f"run:{runs[1]}:1.2",
        f"run:{runs[1]}:1.3",
    ]
    # The second run's first request carried the first run's turns, tool pair included.
    # (the window's system prompt first, then the agent's instructions)
    sent = fake.requests[2].body["messages"]
    assert sent[:2] == [
        {"role": "system", "content": "You are terse."},
        {"role": "system", "content": "Look items up."},
    ]
    assert [m["role"] for m in sent[2:]] == ["user", "assistant", "tool", "assistant", "user"]
    assert sent[4]["tool_call_id"] == "c1" and sent[4]["content"].startswith("record 1:")
    check_provider_input(sent)
    # Conversation b never saw a's turns.
    assert [m["role"] for m in fake.requests[4].body["messages"]] == ["system", "system", "user"]
    assert len(th.context("chat:b", budget=4000).items()) == 4


def test_a_harness_window_in_a_plain_function_is_keyed_by_the_run(
    th: tether.Harness, fake: FakeLLMServer
) -> None:
    fake.set_default(clerk)
    window = th.context("desk", budget=4000, system="You are terse.")
    durable = TetherAgent(lookup_agent(fake), harness=th, context=window)

    @th.function()
    def desk(ctx: tether.SyncContext) -> str:
        return str(durable.run_sync(ctx.event.data["q"]).output)

    assert th.run(desk, {"q": "find item 4"}) == "item 4 found"
    assert th.run(desk, {"q": "now item 5"}) == "item 5 found"
    items = window.items()
    assert len(items) == 8
    assert all(i.key is not None and i.key.startswith("run:") for i in items)
    assert [m["role"] for m in fake.requests[2].body["messages"]] == [
        "system",
        "system",
        "user",
        "assistant",
        "tool",
        "assistant",
        "user",
    ]
    # Outside a run the same window is the user's to read: the agent's turns are there.
    assert window.build().messages[-1].content == "item 5 found"


@pytest.mark.parametrize("summarizer", [None, brief], ids=["trim", "compact"])
def test_a_long_conversation_is_fitted_to_the_budget_with_tool_pairs_whole(
    th: tether.Harness, fake: FakeLLMServer, summarizer: Any
) -> None:
    fake.set_default(clerk)
    budget = 700
    options: dict[str, Any] = {"budget": budget, "system": "You are terse."}
    if summarizer is not None:
        options["summarizer"] = summarizer
    durable = TetherAgent(
        lookup_agent(fake), harness=th, context=lambda ctx: ctx.context("long", **options)
    )

    @th.function()
    async def long(ctx: tether.Context) -> str:
        return str((await durable.run(ctx.event.data["q"])).output)

    turns = 12
    for n in range(1, turns + 1):
        assert th.run(long, {"q": f"find item {n}"}) == f"item {n} found"

    for req in fake.requests:
        check_provider_input(req.body["messages"])
    window = th.context("long", budget=budget, system="You are terse.")  # reads only
    items = window.items()
    messages = [i for i in items if i.message is not None]
    assert len(messages) == 4 * turns  # append-only: every turn is still in the log
    built = window.build()
    assert built.report.tokens <= budget
    last = fake.requests[-2].body["messages"]  # the last run's first request
    assert last[-1] == {"role": "user", "content": f"find item {turns}"}
    assert not any(m.get("content") == "find item 1" for m in last)  # the oldest turn left
    steps = [s.id for r in th.list_runs(function_id="long") for s in th.get_run(r.id).steps]
    if summarizer is None:
        assert built.report.full_tokens > budget
        assert built.report.dropped > 0 and built.report.cleared
        assert any(m["role"] == "tool" and "cleared to fit" in m["content"] for m in last)
        assert "context.compact" not in steps
        assert not [i for i in items if i.kind == "summary"]
    else:
        summaries = [i for i in items if i.kind == "summary"]
        assert summaries and "context.compact" in steps
        assert built.report.summarized_through is not None
        summary = last[0]["content"]  # the summary stands for the folded turns
        assert "Summary of the earlier conversation" in summary and "item 1 found" in summary


def test_call_ids_a_provider_reuses_are_renamed_with_their_results(
    th: tether.Harness, fake: FakeLLMServer
) -> None:
    # FakeLLMServer, like some providers, numbers the calls of each response: call_0 again
    # and again. A window takes each id once: the agent's writes rename the reused ones.
    durable = TetherAgent(
        lookup_agent(fake), harness=th, context=lambda ctx: ctx.context("ids", budget=4000)
    )
    for _ in range(2):
        fake.reply("", tool_calls=[{"name": "lookup", "arguments": {"n": 1}}])
        fake.reply("", tool_calls=[{"name": "lookup", "arguments": {"n": 2}}])
        fake.reply("both found")

    @th.function()
    async def ids(ctx: tether.Context) -> str:
        return str((await durable.run("find items 1 and 2")).output)

    assert th.run(ids) == "both found"
    assert th.run(ids) == "both found"
    items = th.context("ids", budget=4000).items()
    calls = [c.id for i in items if i.message for c in i.message.tool_calls]
    results = [i.message.tool_call_id for i in items if i.message and i.message.role == "tool"]
    assert calls == results == ["call_0", "call_0~1", "call_0~2", "call_0~3"]
    second = fake.requests[3].body["messages"]  # the second run's first request
    check_provider_input(second)
    assert [c["id"] for m in second for c in m.get("tool_calls") or []] == ["call_0", "call_0~1"]


def test_an_approval_round_trip_lands_in_the_window_whole(
    tmp_path: Path, fake: FakeLLMServer
) -> None:
    done: list[int] = []
    with tether.Harness(f"sqlite:///{tmp_path / 'v.db'}", clock=tether.VirtualClock()) as vth:
        model = OpenAIChatModel(
            "gpt-4.1-mini", provider=OpenAIProvider(base_url=f"{fake.url}/v1", api_key="sk-x")
        )
        agent: Agent[Any, Any] = Agent(model, name="desk", system_prompt="You refund.")

        @agent.tool_plain(requires_approval=True)
        def refund(amount: int) -> str:
            done.append(amount)
            return f"refunded {amount}"

        durable = TetherAgent(
            agent,
            harness=vth,
            approval_timeout=3600,
            context=lambda ctx: ctx.context("refunds", budget=4000),
        )
        fake.reply("", tool_calls=[{"id": "r1", "name": "refund", "arguments": {"amount": 5}}])
        fake.reply("not refunded")

        @vth.function()
        async def desk(ctx: tether.Context) -> str:
            return str((await durable.run("refund 5")).output)

        assert vth.run(desk) == "not refunded"
        items = vth.context("refunds", budget=4000).items()
    assert done == []
    # The run before the approval wait and the one after it: one write, the call with its
    # (denied) result; the agent's system prompt is not a window item.
    assert [(i.message.role, i.message.content[:28]) for i in items if i.message] == [
        ("user", "refund 5"),
        ("assistant", ""),
        ("tool", "no approval arrived within 3"),
        ("assistant", "not refunded"),
    ]
    assert len({i.key.rsplit(".", 1)[0] for i in items if i.key}) == 1


def test_context_takes_a_window_or_a_callable_and_says_so(
    th: tether.Harness, fake: FakeLLMServer
) -> None:
    with pytest.raises(tether.ConfigurationError, match=r"context= takes a context window"):
        TetherAgent(lookup_agent(fake), harness=th, context=object())  # type: ignore[arg-type]
    durable = TetherAgent(lookup_agent(fake), harness=th, context=lambda ctx: "chat")

    @th.function()
    async def wrong(ctx: tether.Context) -> str:
        return str((await durable.run("hi")).output)

    with pytest.raises(tether.RunFailed, match=r"str has no add\(\) method"):
        th.run(wrong)
    assert fake.request_count() == 0
