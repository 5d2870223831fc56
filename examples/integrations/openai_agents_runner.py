"""The OpenAI Agents SDK run durably by TetherRunner, against a local FakeLLMServer:
`python examples/integrations/openai_agents_runner.py`."""

from __future__ import annotations

from agents import Agent, OpenAIResponsesModel, function_tool
from openai import AsyncOpenAI

import tether
from tether.integrations.openai_agents import TetherRunner
from tether.testing import FakeLLMServer


@function_tool
def track(order: str) -> str:
    """Where an order is."""
    return f"{order}: left the depot today"


with FakeLLMServer() as fake, tether.Harness("sqlite:///.tether/openai-agents.db") as th:
    fake.reply("", tool_calls=[{"name": "track", "arguments": {"order": "ORD-7"}}])
    fake.reply("Your order ORD-7 left the depot today.")
    client = AsyncOpenAI(base_url=f"{fake.url}/v1", api_key="sk-fake", max_retries=0)
    agent = Agent(name="support", model=OpenAIResponsesModel("gpt-4.1-mini", client), tools=[track])

    @th.function()
    async def support(ctx: tether.Context) -> str:
        result = await TetherRunner(harness=th).run(agent, ctx.event.data["question"])
        return str(result.final_output)

    print(th.run(support, {"question": "where is ORD-7?"}))
