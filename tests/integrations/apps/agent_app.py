"""The app of the pydantic-ai crash tests: an agent whose tool ``charge`` logs every
execution to files, run durably by ``TetherAgent`` inside a tether function (async, and a
plain ``def`` calling ``run_sync``) and as a function of its own; ``chat``, ``chat-sync``
and ``chat-shared`` run one agent turn per prompt of ``prompts`` with the agent's history in
a context window (``ctx.context("chat:<chat>")`` per run, or the ``th.context`` window
``chat:shared``).

The model is pydantic-ai's own OpenAI chat model pointed at the test's FakeLLMServer
(``FAKE_LLM_URL``). ``charge`` appends ``<n> <pid>`` to ``begun`` when it starts and ``<n>``
to ``effects`` when done; call number ``gate`` blocks until the file ``release`` exists, so
a SIGKILL lands inside it.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

from pydantic_ai import Agent
from pydantic_ai.models.openai import OpenAIChatModel
from pydantic_ai.providers.openai import OpenAIProvider

import tether
from tether.integrations.pydantic_ai import TetherAgent


def _append(path: str, line: str) -> None:
    with open(path, "a") as f:
        f.write(line + "\n")


def build(
    store: str | None = None, fake_url: str | None = None
) -> tuple[tether.Harness, TetherAgent]:
    harness = tether.Harness(store, lease_ttl=1.0, heartbeat=0.25)
    url = fake_url or os.environ.get("FAKE_LLM_URL", "http://127.0.0.1:9")
    model = OpenAIChatModel(
        "gpt-4.1-mini", provider=OpenAIProvider(base_url=f"{url}/v1", api_key="sk-fake")
    )
    agent = Agent(model, name="billing", instructions="Charge what you are asked to.")

    @agent.tool_plain
    def charge(n: int, folder: str, gate: int) -> str:
        _append(os.path.join(folder, "begun"), f"{n} {os.getpid()}")
        if n == gate:
            while not Path(folder, "release").exists():
                time.sleep(0.01)
        _append(os.path.join(folder, "effects"), str(n))
        return f"charged {n}"

    durable = TetherAgent(agent, harness=harness)

    @harness.function(id="support")
    async def support(ctx: tether.Context) -> str:
        result = await durable.run(ctx.event.data["prompt"])
        return str(result.output)

    @harness.function(id="support-sync")
    def support_sync(ctx: tether.SyncContext) -> str:
        return str(durable.run_sync(ctx.event.data["prompt"]).output)

    window = {"budget": 8000, "system": "You bill customers."}
    chatting = TetherAgent(
        agent,
        harness=harness,
        name="billing-chat",
        context=lambda ctx: ctx.context("chat:" + ctx.event.data["chat"], **window),
    )
    shared = TetherAgent(
        agent,
        harness=harness,
        name="billing-shared",
        context=harness.context("chat:shared", **window),
    )

    @harness.function(id="chat")
    async def chat(ctx: tether.Context) -> str:
        return [str((await chatting.run(p)).output) for p in ctx.event.data["prompts"]][-1]

    @harness.function(id="chat-sync")
    def chat_sync(ctx: tether.SyncContext) -> str:
        return [str(chatting.run_sync(p).output) for p in ctx.event.data["prompts"]][-1]

    @harness.function(id="chat-shared")
    async def chat_shared(ctx: tether.Context) -> str:
        return [str((await shared.run(p)).output) for p in ctx.event.data["prompts"]][-1]

    return harness, durable


th, durable = build()
