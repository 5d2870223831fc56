"""TetherRunner with the real OpenAI Agents SDK against FakeLLMServer (Responses API on
loopback): model calls and tool calls are steps, a replay sends nothing again, and a
handoff and an input guardrail work as in the SDK."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from agents import (
    Agent,
    GuardrailFunctionOutput,
    InputGuardrailTripwireTriggered,
    OpenAIResponsesModel,
    function_tool,
    input_guardrail,
)
from openai import AsyncOpenAI

import tether
from tether.dashboard.views import step_kind
from tether.integrations.openai_agents import TetherRunner
from tether.testing import FakeLLMServer


@pytest.fixture
def th(tmp_path: Path) -> Iterator[tether.Harness]:
    harness = tether.Harness(f"sqlite:///{tmp_path / 'tether.db'}")
    yield harness
    harness.close()


def model(fake: FakeLLMServer) -> OpenAIResponsesModel:
    client = AsyncOpenAI(base_url=f"{fake.url}/v1", api_key="sk-fake", max_retries=0)
    return OpenAIResponsesModel("gpt-4.1-mini", client)


def call(tool: str, /, **arguments: Any) -> dict[str, Any]:
    return {"name": tool, "arguments": arguments}


def test_model_and_tool_calls_are_steps_and_a_replay_repeats_none(
    th: tether.Harness, fake: FakeLLMServer
) -> None:
    done: list[str] = []

    @function_tool
    def lookup(order: str) -> str:
        """Look an order up."""
        done.append(order)
        return f"{order}: shipped"

    agent = Agent(name="support", instructions="Help.", model=model(fake), tools=[lookup])
    runner = TetherRunner(harness=th)
    fake.reply("", tool_calls=[call("lookup", order="A1")])
    fake.reply("A1 has shipped", times=2)

    @th.function()
    async def help_desk(ctx: tether.Context) -> str:
        return str((await runner.run(agent, "where is A1?")).final_output)

    assert th.run(help_desk) == "A1 has shipped"
    run = th.get_run(th.list_runs(function_id="help_desk")[0].id)
    assert [s.id for s in run.steps] == [
        "support.model",
        "support.tool:lookup#call_0",
        "support.model:1",
    ]
    assert step_kind("run", run.steps[0].output) == "llm"
    assert run.steps[0].output["tool_calls"][0]["arguments"] == {"order": "A1"}
    assert fake.request_count() == 2 and done == ["A1"]
    # A fork from the last model call reuses the first call and the tool result.
    fork = th.replay(run.id, from_step="support.model:1")
    with th.worker():
        assert fork.result(timeout=30) == "A1 has shipped"
    assert fake.request_count() == 3 and done == ["A1"]


def test_a_handoff_works_as_in_the_sdk(th: tether.Harness, fake: FakeLLMServer) -> None:
    refunds = Agent(name="refunds", instructions="Refund.", model=model(fake))
    triage = Agent(name="triage", instructions="Route.", model=model(fake), handoffs=[refunds])
    fake.reply("", tool_calls=[call("transfer_to_refunds")])
    fake.reply("refund issued")

    @th.function()
    async def route(ctx: tether.Context) -> list[str]:
        result = await TetherRunner(harness=th).run(triage, "I want my money back")
        return [result.last_agent.name, str(result.final_output)]

    assert th.run(route) == ["refunds", "refund issued"]
    steps = [s.id for s in th.get_run(th.list_runs(function_id="route")[0].id).steps]
    assert steps == ["triage.model", "refunds.model"]


def test_an_input_guardrail_trips_as_in_the_sdk(th: tether.Harness, fake: FakeLLMServer) -> None:
    @input_guardrail
    def no_secrets(ctx: Any, agent: Any, text: Any) -> GuardrailFunctionOutput:
        return GuardrailFunctionOutput(output_info=None, tripwire_triggered="password" in str(text))

    agent = Agent(name="guarded", model=model(fake), input_guardrails=[no_secrets])
    fake.set_default(lambda req: tether.testing.Reply("fine"))

    @th.function()
    async def guarded(ctx: tether.Context) -> str:
        try:
            return str(
                (await TetherRunner(harness=th).run(agent, ctx.event.data["q"])).final_output
            )
        except InputGuardrailTripwireTriggered:
            return "blocked"

    assert th.run(guarded, {"q": "hello"}) == "fine"
    assert th.run(guarded, {"q": "my password is x"}) == "blocked"


def test_run_sync_in_a_plain_function_and_misuse_is_refused(
    th: tether.Harness, fake: FakeLLMServer
) -> None:
    agent = Agent(name="plain", model=model(fake))
    fake.reply("sync works")

    @th.function()
    def plain(ctx: tether.SyncContext) -> str:
        return str(TetherRunner(harness=th).run_sync(agent, "hi").final_output)

    assert th.run(plain) == "sync works"
    assert [s.id for s in th.get_run(th.list_runs(function_id="plain")[0].id).steps] == [
        "plain.model"
    ]
    import asyncio

    with pytest.raises(tether.ConfigurationError, match="inside an async def tether function"):
        asyncio.run(TetherRunner(harness=th).run(agent, "hi"))
