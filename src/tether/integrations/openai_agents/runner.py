"""``TetherRunner``: ``Runner.run`` of the OpenAI Agents SDK inside a tether function, with
each model call and each function-tool call a durable step.

The runner hands the SDK durable twins of the agent and of every agent it can hand off to:
the same agent (``Agent.clone``) whose model checkpoints each response and whose function
tools checkpoint each result. The SDK's own loop, handoffs and guardrails run unchanged;
on a resumed run they see the recorded responses, so they decide the same way and no
completed model call or tool call is made again."""

from __future__ import annotations

import dataclasses
import time
from collections.abc import AsyncIterator
from typing import Any

from agents import Agent, FunctionTool, Handoff, Model, ModelResponse, RunConfig, Runner
from agents.items import TResponseOutputItem
from agents.usage import Usage
from pydantic import TypeAdapter

from tether.durable.context import Context, current_context
from tether.durable.retry import NO_RETRY, Retry
from tether.errors import ConfigurationError

_OUTPUT = TypeAdapter(list[TResponseOutputItem])
_USAGE = TypeAdapter(Usage)


class TetherRunner:
    """``await TetherRunner(harness=th).run(agent, input)`` in an ``async def`` tether
    function, ``TetherRunner(harness=th).run_sync(agent, input)`` in a plain one: the
    arguments and the result of ``Runner.run``. ``tool_retries`` is the step policy of
    tool calls (default: the function's); model calls get one attempt per step (the model's
    client retries)."""

    def __init__(self, *, harness: Any, tool_retries: Retry | None = None) -> None:
        self.harness = harness
        self.tool_retries = tool_retries

    async def run(self, starting_agent: Agent[Any], input: Any, **kwargs: Any) -> Any:
        ctx = current_context()
        if not isinstance(ctx, Context):
            raise ConfigurationError(
                "TetherRunner.run runs inside an async def tether function (its steps are "
                "the function's steps); in a plain def function use run_sync"
            )
        config: RunConfig = kwargs.pop("run_config", None) or RunConfig()
        twin = _Twins(ctx, config, self.tool_retries).agent(starting_agent)
        config = dataclasses.replace(config, model=None)  # the twins carry the model
        return await Runner.run(twin, input, run_config=config, **kwargs)

    def run_sync(self, starting_agent: Agent[Any], input: Any, **kwargs: Any) -> Any:
        """``Runner.run_sync`` inside a plain ``def`` tether function."""
        import asyncio

        from tether.durable.context import SyncContext

        ctx = current_context()
        if not isinstance(ctx, SyncContext):
            raise ConfigurationError(
                "TetherRunner.run_sync runs inside a plain def tether function; in an async "
                "def function use await TetherRunner(...).run(...)"
            )
        config: RunConfig = kwargs.pop("run_config", None) or RunConfig()
        twin = _Twins(ctx, config, self.tool_retries).agent(starting_agent)
        config = dataclasses.replace(config, model=None)
        return asyncio.run(Runner.run(twin, input, run_config=config, **kwargs))


class _Twins:
    """Durable twins of agents, made once per agent for one run."""

    def __init__(self, ctx: Any, config: RunConfig, tool_retries: Retry | None) -> None:
        self.ctx = ctx
        self.config = config
        self.tool_retries = tool_retries
        self.made: dict[int, Agent[Any]] = {}

    def agent(self, agent: Agent[Any]) -> Agent[Any]:
        if id(agent) in self.made:
            return self.made[id(agent)]
        model = self.config.model or agent.model  # RunConfig.model wins, as in the SDK
        if not isinstance(model, Model):
            model = self.config.model_provider.get_model(model if isinstance(model, str) else None)
        twin = agent.clone(model=StepModel(model, self.ctx, agent.name))
        self.made[id(agent)] = twin
        twin.tools = [self._tool(agent.name, t) for t in agent.tools]
        twin.handoffs = [self._handoff(h) for h in agent.handoffs]
        return twin

    def _tool(self, owner: str, tool: Any) -> Any:
        if not isinstance(tool, FunctionTool):
            return tool
        invoke = tool.on_invoke_tool
        ctx, retries = self.ctx, self.tool_retries

        async def on_invoke_tool(tool_context: Any, arguments: str) -> Any:
            step = f"{owner}.tool:{tool.name}#{tool_context.tool_call_id}"

            async def call() -> Any:
                return await invoke(tool_context, arguments)

            return await _step(ctx, step, call, retries)

        return dataclasses.replace(tool, on_invoke_tool=on_invoke_tool)

    def _handoff(self, handoff: Any) -> Any:
        if isinstance(handoff, Agent):
            return self.agent(handoff)
        if isinstance(handoff, Handoff):
            invoke = handoff.on_invoke_handoff

            async def on_invoke_handoff(context: Any, arguments: str) -> Any:
                return self.agent(await invoke(context, arguments))

            return dataclasses.replace(handoff, on_invoke_handoff=on_invoke_handoff)
        return handoff


async def _step(ctx: Any, step_id: str, fn: Any, retries: Retry | None) -> Any:
    if isinstance(ctx, Context):
        return await ctx.step.options(retries=retries).run(step_id, fn)
    import asyncio

    loop = asyncio.get_running_loop()

    def blocking() -> Any:
        return asyncio.run_coroutine_threadsafe(fn(), loop).result()

    return await asyncio.to_thread(ctx.step.options(retries=retries).run, step_id, blocking)


class StepModel(Model):
    """A model whose responses are checkpointed: ``<agent>.model`` steps, stored in the shape
    of a ``ctx.step.llm`` response (the dashboard shows them as a chat)."""

    def __init__(self, inner: Model, ctx: Any, agent: str) -> None:
        self.inner = inner
        self.ctx = ctx
        self.agent = agent

    async def get_response(self, *args: Any, **kwargs: Any) -> ModelResponse:
        async def call() -> dict[str, Any]:
            started = time.time()
            response = await self.inner.get_response(*args, **kwargs)
            return _record(response, started, self.agent)

        data = await _step(self.ctx, f"{self.agent}.model", call, NO_RETRY)
        return ModelResponse(
            output=_OUTPUT.validate_python(data["openai_agents"]["output"]),
            usage=_USAGE.validate_python(data["openai_agents"]["usage"]),
            response_id=data["openai_agents"]["response_id"],
        )

    def stream_response(self, *args: Any, **kwargs: Any) -> AsyncIterator[Any]:
        raise ConfigurationError(
            "TetherRunner runs Runner.run (not run_streamed): a streamed run is not durable yet"
        )


def _record(response: ModelResponse, started: float, agent: str) -> dict[str, Any]:
    output = _OUTPUT.dump_python(response.output, mode="json")
    text = ""
    calls = []
    for item in output:
        if item.get("type") == "message":
            text += "".join(c.get("text", "") for c in item.get("content") or [])
        elif item.get("type") == "function_call":
            try:
                import json

                arguments = json.loads(item.get("arguments") or "{}")
            except ValueError:
                arguments = {"_raw": item.get("arguments")}
            calls.append(
                {"id": item.get("call_id", ""), "name": item.get("name"), "arguments": arguments}
            )
    u = response.usage
    usage = {
        "input_tokens": u.input_tokens,
        "cached_input_tokens": getattr(u.input_tokens_details, "cached_tokens", 0) or 0,
        "cache_write_tokens": 0,
        "output_tokens": u.output_tokens,
        "reasoning_tokens": getattr(u.output_tokens_details, "reasoning_tokens", 0) or 0,
    }
    return {
        "text": text,
        "tool_calls": calls,
        "usage": usage,
        "cost_usd": None,
        "model": f"openai-agents:{agent}",
        "provider": "openai",
        "finish_reason": "tool_calls" if calls else "stop",
        "attempts": [
            {
                "number": 1,
                "model": agent,
                "provider": "openai",
                "started_at": started,
                "duration_s": round(time.time() - started, 6),
                "ok": True,
                "usage": usage,
                "cost_usd": None,
            }
        ],
        "openai_agents": {
            "output": output,
            "usage": _USAGE.dump_python(u, mode="json"),
            "response_id": response.response_id,
        },
    }


__all__ = ["StepModel", "TetherRunner"]
