"""A pydantic-ai agent made durable by TetherAgent, against a local FakeLLMServer (no key, no
network): `python examples/integrations/pydantic_ai_agent.py`. Kill it while it runs and
start it again: the run resumes without sending a completed request again."""

from __future__ import annotations

from pydantic_ai import Agent
from pydantic_ai.models.openai import OpenAIChatModel
from pydantic_ai.providers.openai import OpenAIProvider

import tether
from tether.integrations.pydantic_ai import TetherAgent
from tether.testing import FakeLLMServer

with FakeLLMServer() as fake, tether.Harness("sqlite:///.tether/pydantic-ai.db") as th:
    fake.reply("", tool_calls=[{"name": "track", "arguments": {"order": "ORD-7"}}])
    fake.reply("Your order ORD-7 left the depot today.")
    model = OpenAIChatModel(
        "gpt-4.1-mini", provider=OpenAIProvider(base_url=f"{fake.url}/v1", api_key="sk-fake")
    )
    agent = Agent(model, name="support", instructions="Help with orders.")

    @agent.tool_plain
    def track(order: str) -> str:
        return f"{order}: left the depot today"

    durable = TetherAgent(agent, harness=th)

    @th.function()
    async def support(ctx: tether.Context) -> str:
        return str((await durable.run(ctx.event.data["question"])).output)

    print(th.run(support, {"question": "where is ORD-7?"}))
