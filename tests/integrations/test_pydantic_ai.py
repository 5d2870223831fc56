"""TetherAgent with the real pydantic-ai against FakeLLMServer: steps, replay, a run as its
own function, durable approvals, tether's LLM policy as the agent's model, streaming,
structured output and the context-window seam."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel
from pydantic_ai import Agent
from pydantic_ai.models.openai import OpenAIChatModel
from pydantic_ai.providers.openai import OpenAIProvider

import tether
from tether.context import MemoryWindowLog, WindowCore
from tether.dashboard.views import llm_view, step_kind
from tether.integrations.pydantic_ai import APPROVAL_EVENT, TetherAgent, TetherModel
from tether.testing import FakeLLMServer, poll


class City(BaseModel):
    name: str
    country: str


@pytest.fixture
def th(tmp_path: Path) -> Iterator[tether.Harness]:
    harness = tether.Harness(f"sqlite:///{tmp_path / 'tether.db'}")
    yield harness
    harness.close()


def chat_model(fake: FakeLLMServer) -> OpenAIChatModel:
    return OpenAIChatModel(
        "gpt-4.1-mini", provider=OpenAIProvider(base_url=f"{fake.url}/v1", api_key="sk-fake")
    )


def calculator(fake: FakeLLMServer, calls: list[tuple[int, int]], **kw: Any) -> Agent[Any, Any]:
    agent: Agent[Any, Any] = Agent(chat_model(fake), name="calc", **kw)

    @agent.tool_plain
    def add(a: int, b: int) -> int:
        calls.append((a, b))
        return a + b

    return agent


def call(tool: str, /, **arguments: Any) -> dict[str, Any]:
    return {"name": tool, "arguments": arguments}


def test_model_requests_and_tool_calls_are_steps_shown_as_chat(
    th: tether.Harness, fake: FakeLLMServer
) -> None:
    calls: list[tuple[int, int]] = []
    durable = TetherAgent(calculator(fake, calls), harness=th)
    fake.reply("", tool_calls=[call("add", a=1, b=2)])
    fake.reply("", tool_calls=[call("add", a=3, b=4), call("add", a=5, b=6)])
    fake.reply("3, 7 and 11")

    @th.function()
    async def sums(ctx: tether.Context) -> str:
        return str((await durable.run("add 1+2, 3+4 and 5+6")).output)

    assert th.run(sums) == "3, 7 and 11"
    run = th.list_runs(function_id="sums")[0]
    steps = th.get_run(run.id).steps
    assert [s.id for s in steps] == [
        "calc.model",
        "calc.tool:add#call_0",
        "calc.model:1",
        "calc.tool:add#call_0:1",
        "calc.tool:add#call_1",
        "calc.model:2",
    ]
    assert calls == [(1, 2), (3, 4), (5, 6)]
    # A model request is checkpointed in the shape of a ctx.step.llm response: the
    # dashboard shows it as a chat (kind "llm"), with the turn that led to it.
    first, last = steps[0].output, steps[-1].output
    assert step_kind("run", first) == "llm" and step_kind("run", steps[1].output) == "run"
    view = llm_view(first)
    assert view is not None and view["tool_calls"][0]["name"] == "add"
    assert view["tool_calls"][0]["arguments"] == {"a": 1, "b": 2}
    assert first["messages"] == [
        {
            "role": "user",
            "content": "add 1+2, 3+4 and 5+6",
            "tool_calls": [],
            "tool_call_id": None,
            "name": None,
        }
    ]
    assert last["text"] == "3, 7 and 11" and last["usage"]["input_tokens"] > 0
    assert [m["role"] for m in last["messages"]] == ["tool", "tool"]
    assert steps[1].output == {"result": 3, "kind": "tool_return"}


def test_a_replay_reuses_recorded_requests_and_calls(
    th: tether.Harness, fake: FakeLLMServer
) -> None:
    calls: list[tuple[int, int]] = []
    durable = TetherAgent(calculator(fake, calls), harness=th)
    fake.reply("", tool_calls=[call("add", a=1, b=2)])
    fake.reply("3", times=2)  # the second for the fork

    @th.function()
    async def once(ctx: tether.Context) -> str:
        return str((await durable.run("add 1 and 2")).output)

    th.run(once)
    run_id = th.list_runs(function_id="once")[0].id
    assert fake.request_count() == 2
    # Fork from the second model request: the first request and the tool call are reused.
    fork = th.replay(run_id, from_step="calc.model:1")
    with th.worker():
        assert fork.result(timeout=30) == "3"
    assert fake.request_count() == 3
    assert calls == [(1, 2)]


def test_outside_a_tether_function_a_run_is_a_function_of_its_own(
    th: tether.Harness, fake: FakeLLMServer
) -> None:
    calls: list[tuple[int, int]] = []
    durable = TetherAgent(calculator(fake, calls, output_type=City), harness=th)
    assert durable.function_id == "agent:calc"
    fake.reply("", tool_calls=[call("add", a=1, b=1)])
    fake.reply("", tool_calls=[call("final_result", name="Paris", country="FR")])

    # asyncio.run, not run_sync: pydantic-ai's run_sync leaves its event loop open.
    result = asyncio.run(durable.run("where?", run_id="trip-1"))
    assert result.output == City(name="Paris", country="FR")
    run = th.get_run("trip-1")
    assert run.function_id == "agent:calc" and run.input["user_prompt"] == "where?"
    assert [s.id for s in run.steps] == ["calc.model", "calc.tool:add#call_0", "calc.model:1"]
    # The same run id again: the recorded run, no request sent, no tool called.
    again = asyncio.run(durable.run("where?", run_id="trip-1"))
    assert again.output == result.output and len(again.all_messages()) == 5
    assert fake.request_count() == 2 and calls == [(1, 1)]


def test_a_run_input_that_cannot_be_stored_is_refused_and_creates_nothing(
    th: tether.Harness, fake: FakeLLMServer
) -> None:
    durable = TetherAgent(calculator(fake, []), harness=th)
    with pytest.raises(tether.ConfigurationError, match="event_stream_handler"):
        asyncio.run(durable.run("x", event_stream_handler=lambda ctx, events: None))
    assert th.list_runs() == [] and fake.request_count() == 0
    with pytest.raises(tether.ConfigurationError, match="needs a name"):
        TetherAgent(Agent(chat_model(fake)), harness=th)
    with pytest.raises(tether.ConfigurationError, match="fallbacks= needs model="):
        TetherAgent(calculator(fake, []), harness=th, name="other", fallbacks=["openai:gpt-4o"])


def _refunds(fake: FakeLLMServer, done: list[int], timeout: float | None = None) -> Any:
    agent: Agent[Any, Any] = Agent(chat_model(fake), name="desk")

    @agent.tool_plain(requires_approval=True)
    def refund(amount: int) -> str:
        done.append(amount)
        return f"refunded {amount}"

    return agent


@pytest.mark.parametrize("approved", [True, False])
def test_a_tool_that_needs_approval_waits_durably_for_the_event(
    th: tether.Harness, fake: FakeLLMServer, approved: bool
) -> None:
    done: list[int] = []
    durable = TetherAgent(_refunds(fake, done), harness=th)
    fake.reply("", tool_calls=[call("refund", amount=40)])
    fake.set_default(lambda req: tether.testing.Reply(f"final: {req.prompt[-60:]}"))

    @th.function()
    async def desk(ctx: tether.Context) -> str:
        return str((await durable.run("refund order 7")).output)

    handle = th.enqueue(desk)
    with th.worker():
        poll(lambda: th.get_run(handle.run_id).status == "waiting", timeout=20)
        requested = [e for e in th.store.recent_events("tether/agent.approval.requested", 0)]
        assert json.loads(requested[0].data) == {
            "run_id": handle.run_id,
            "agent": "desk",
            "tool_call_id": "call_0",
            "tool_name": "refund",
            "args": {"amount": 40},
        }
        assert done == [] and fake.request_count() == 1
        # An answer for another call leaves the run waiting.
        th.send(
            tether.Event(
                APPROVAL_EVENT, {"run_id": handle.run_id, "tool_call_id": "x", "approved": True}
            )
        )
        th.send(
            tether.Event(
                APPROVAL_EVENT,
                {
                    "run_id": handle.run_id,
                    "tool_call_id": "call_0",
                    "approved": approved,
                    "message": "over limit",
                },
            )
        )
        output = handle.result(timeout=30)
    if approved:
        assert done == [40] and "refunded 40" in output
    else:
        assert done == [] and "over limit" in output
    steps = [s.id for s in th.get_run(handle.run_id).steps]
    assert steps[:3] == ["desk.model", "desk.approval#call_0.request", "desk.approval#call_0"]


def test_an_approval_that_never_comes_denies_the_call_after_the_timeout(
    tmp_path: Path, fake: FakeLLMServer
) -> None:
    done: list[int] = []
    with tether.Harness(f"sqlite:///{tmp_path / 'v.db'}", clock=tether.VirtualClock()) as vth:
        durable = TetherAgent(_refunds(fake, done), harness=vth, approval_timeout=3600)
        fake.reply("", tool_calls=[call("refund", amount=5)])
        fake.set_default(lambda req: tether.testing.Reply(req.prompt[-80:]))

        @vth.function()
        async def desk(ctx: tether.Context) -> str:
            return str((await durable.run("refund")).output)

        assert "no approval arrived within 3600" in vth.run(desk)
        assert done == []


def test_a_tether_model_string_sends_requests_through_tethers_policy(
    th: tether.Harness, fake: FakeLLMServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    for key, value in fake.env().items():
        monkeypatch.setenv(key, value)
    agent: Agent[Any, City] = Agent(name="geo", output_type=City, instructions="Answer briefly.")

    @agent.tool_plain
    def lookup(q: str) -> str:
        return "Paris is in FR"

    durable = TetherAgent(
        agent, harness=th, model="openai:gpt-4.1-mini", fallbacks=["openai:gpt-4o"]
    )
    assert agent.model is None  # the user's agent is unchanged
    fake.fault("server_error", model="gpt-4.1-mini")
    fake.reply("", tool_calls=[call("lookup", q="capital of France")], model="gpt-4o")
    fake.reply("", tool_calls=[call("final_result", name="Paris", country="FR")])

    @th.function()
    async def geo(ctx: tether.Context) -> dict[str, Any]:
        return (await durable.run("capital of France?")).output.model_dump()

    assert th.run(geo) == {"name": "Paris", "country": "FR"}
    first, second = fake.requests[1].body, fake.requests[2].body
    assert fake.requests[0].model == "gpt-4.1-mini" and fake.requests[1].model == "gpt-4o"
    assert first["messages"][0] == {"role": "system", "content": "Answer briefly."}
    assert first["messages"][1] == {"role": "user", "content": "capital of France?"}
    assert {t["function"]["name"] for t in first["tools"]} == {"lookup", "final_result"}
    assert second["messages"][2]["tool_calls"][0]["function"]["name"] == "lookup"
    assert second["messages"][3] == {
        "role": "tool",
        "tool_call_id": "call_0",
        "content": "Paris is in FR",
    }
    step = th.get_run(th.list_runs(function_id="geo")[0].id).steps[0]
    attempts = step.output["attempts"]
    assert [a["ok"] for a in attempts] == [False, True]
    assert attempts[0]["error_class"] == "server_error" and attempts[1]["model"] == "openai:gpt-4o"
    assert step.output["cost_usd"] is not None and step.output["provider"] == "openai"


def test_pydantic_ai_model_strings_keep_working_without_a_tether_model(
    th: tether.Harness, fake: FakeLLMServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    for key, value in fake.env().items():
        monkeypatch.setenv(key, value)
    durable = TetherAgent(Agent("openai:gpt-4.1-mini", name="plain"), harness=th)
    fake.reply("hello there")

    @th.function()
    async def hello(ctx: tether.Context) -> str:
        return str((await durable.run("hi")).output)

    assert th.run(hello) == "hello there"
    assert fake.requests[0].path == "/v1/responses"  # pydantic-ai's own OpenAI model


@pytest.mark.parametrize("tether_model", [False, True])
def test_streaming_inside_a_tether_function(
    th: tether.Harness, fake: FakeLLMServer, monkeypatch: pytest.MonkeyPatch, tether_model: bool
) -> None:
    for key, value in fake.env().items():
        monkeypatch.setenv(key, value)
    calls: list[tuple[int, int]] = []
    model = "openai:gpt-4.1-mini" if tether_model else None
    durable = TetherAgent(calculator(fake, calls), harness=th, model=model)
    fake.reply("", tool_calls=[call("add", a=2, b=2)])
    fake.reply("two and two make four")

    @th.function()
    async def streamed(ctx: tether.Context) -> list[str]:
        async with durable.run_stream("2+2?") as result:
            return [text async for text in result.stream_text(delta=True)]

    pieces = th.run(streamed)
    assert "".join(pieces) == "two and two make four"
    assert calls == [(2, 2)]
    assert all(r.stream for r in fake.requests)
    steps = th.get_run(th.list_runs(function_id="streamed")[0].id).steps
    assert [s.id for s in steps] == ["calc.model", "calc.tool:add#call_0", "calc.model:1"]
    assert steps[-1].output["text"] == "two and two make four"


def test_structured_output_with_the_agents_own_model(
    th: tether.Harness, fake: FakeLLMServer
) -> None:
    durable = TetherAgent(Agent(chat_model(fake), name="geo", output_type=City), harness=th)
    fake.reply("", tool_calls=[call("final_result", name="Lima")])  # invalid: re-asked
    fake.reply("", tool_calls=[call("final_result", name="Lima", country="PE")])

    @th.function()
    async def geo(ctx: tether.Context) -> dict[str, Any]:
        out = (await durable.run("capital of Peru?")).output
        assert isinstance(out, City)
        return out.model_dump()

    assert th.run(geo) == {"name": "Lima", "country": "PE"}
    assert fake.request_count() == 2


def test_context_window_keeps_the_agents_history(th: tether.Harness, fake: FakeLLMServer) -> None:
    window = WindowCore(MemoryWindowLog(), budget=4000, system="You are terse.")
    durable = TetherAgent(calculator(fake, []), harness=th, context=window)
    fake.reply("", tool_calls=[call("add", a=20, b=22)])
    fake.reply("42")
    fake.reply("it was 42")

    @th.function()
    async def chat(ctx: tether.Context) -> str:
        return str((await durable.run(ctx.event.data["q"])).output)

    assert th.run(chat, {"q": "what is 20+22?"}) == "42"
    assert th.run(chat, {"q": "what was it?"}) == "it was 42"
    roles = [i.message.role for i in window.items() if i.message is not None]
    assert roles == ["user", "assistant", "tool", "assistant", "user", "assistant"]
    sent = fake.requests[2].body["messages"]
    assert sent[0] == {"role": "system", "content": "You are terse."}
    assert [m["role"] for m in sent[1:]] == ["user", "assistant", "tool", "assistant", "user"]
    assert sent[-1]["content"] == "what was it?"


def test_a_tether_model_refuses_an_unknown_prefix_at_once() -> None:
    with pytest.raises(tether.TetherError, match="nope"):
        TetherModel("nope:model")
