"""``TetherDurability``: a pydantic-ai durability capability whose durable units are tether
steps. Built on pydantic-ai's public engine interface (``pydantic_ai.durable_exec``):
a ``CallableOperationBackend`` runs each model request and each tool call as one
``ctx.step.run`` of the tether function the agent runs in; outside a tether function the
capability is transparent."""

from __future__ import annotations

import asyncio
import time
import weakref
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from pydantic_ai.durable_exec import (
    JSON_CODEC,
    BaseDurabilityCapability,
    CallableOperationBackend,
    DurabilityEngineSpec,
    DurableOperationId,
    ModelRequestId,
    RoleBasedOperationConfig,
    ToolsetCallToolId,
    conversation_id_from_run_id,
)
from pydantic_ai.durable_exec._operation_names import DurableInvocationName
from pydantic_ai.tools import AgentDepsT, RunContext

from tether.durable.context import Context, SyncContext, current_context
from tether.durable.retry import NO_RETRY, Retry
from tether.integrations.pydantic_ai.envelope import envelope, new_messages

# Agent runs started so far in each execution of a tether function body (replay-stable ids).
_RUNS: weakref.WeakKeyDictionary[Any, int] = weakref.WeakKeyDictionary()


class _StepConfig:
    """The retry policy of one kind of durable unit (None: the tether function's)."""

    def __init__(self, retries: Retry | None) -> None:
        self.retries = retries


class TetherOperationNamer:
    """Step ids of an agent's durable units, stable across releases (they are history):
    ``<agent>.model``, ``<agent>.tool:<name>`` (``<agent>.<toolset>.tool:<name>`` for a toolset
    with its own id), ``<agent>.mcp.<id>.<operation>``, ``<agent>.<operation>`` otherwise."""

    def __init__(self, agent_name: str) -> None:
        self._agent = agent_name

    def operation_name(self, operation_id: DurableOperationId) -> str:
        a = self._agent
        if isinstance(operation_id, ModelRequestId):
            suffix = (
                "" if operation_id.model_id in (None, "default") else f".{operation_id.model_id}"
            )
            return f"{a}.model{suffix}"
        if isinstance(operation_id, ToolsetCallToolId):
            if operation_id.toolset_kind == "mcp":
                return f"{a}.mcp.{operation_id.toolset_id}.call_tool"
            if operation_id.toolset_id in ("<agent>", None):
                return f"{a}.tool"
            return f"{a}.{operation_id.toolset_id}.tool"
        kind = type(operation_id).__name__.removesuffix("Id")
        toolset = getattr(operation_id, "toolset_id", None)
        return f"{a}.{toolset}.{kind}" if toolset else f"{a}.{kind}"

    def invocation_name(
        self, operation_id: DurableOperationId, *, label: str | None
    ) -> DurableInvocationName:
        name = self.operation_name(operation_id)
        if isinstance(operation_id, ToolsetCallToolId) and operation_id.toolset_kind != "mcp":
            name = f"{name}:{label}"
        return DurableInvocationName(name)


class TetherOperationBackend(CallableOperationBackend[_StepConfig]):
    """Runs each durable unit of an agent run as a step of the current tether function."""

    async def execute(
        self,
        *,
        operation_id: DurableOperationId,
        name: str,
        body: Callable[[], Awaitable[object]],
        cache_key: tuple[object, ...],
        config: _StepConfig,
    ) -> object:
        ctx = current_context()
        if ctx is None:  # the capability is transparent outside tether functions
            return await body()
        step_id = step_name(operation_id, name, cache_key)
        call = body
        if isinstance(operation_id, ModelRequestId):
            messages = cache_key[1] if len(cache_key) > 1 else []
            turn = new_messages(messages if isinstance(messages, list) else [])

            async def call() -> object:
                started = time.time()
                return envelope(await body(), turn, started)

        if isinstance(ctx, Context):
            result = await ctx.step.options(retries=config.retries).run(step_id, call)
        else:
            result = await _sync_step(ctx, config.retries, step_id, call)
        if isinstance(operation_id, ModelRequestId) and isinstance(result, dict):
            return result["pydantic_ai"]
        return result


async def _sync_step(
    ctx: SyncContext, retries: Retry | None, step_id: str, body: Callable[[], Awaitable[object]]
) -> object:
    """A step of a plain ``def`` tether function (``agent.run_sync`` inside it): the step's
    bookkeeping blocks a helper thread while the body runs on the agent's own event loop."""
    loop = asyncio.get_running_loop()

    def run_body() -> object:
        return asyncio.run_coroutine_threadsafe(_call(body), loop).result()

    return await asyncio.to_thread(ctx.step.options(retries=retries).run, step_id, run_body)


async def _call(body: Callable[[], Awaitable[object]]) -> object:
    return await body()


def step_name(operation_id: DurableOperationId, name: str, cache_key: tuple[object, ...]) -> str:
    """The tether step id of one durable unit: the namer's name, ``#<call id>`` for a tool
    call (parallel calls of one tool never swap results) and ``@<n>`` for the n-th agent
    run (n > 0) of the same tether function body."""
    run_context = next((k for k in reversed(cache_key) if isinstance(k, RunContext)), None)
    if isinstance(operation_id, ToolsetCallToolId) and getattr(run_context, "tool_call_id", None):
        assert run_context is not None
        name = f"{name}#{run_context.tool_call_id}"
    run_id = getattr(run_context, "run_id", None) or ""
    _, sep, ordinal = run_id.rpartition(":agent:")
    if sep and ordinal not in ("", "0"):
        name = f"{name}@{ordinal}"
    return name


@dataclass(init=False, kw_only=True)
class TetherDurability(BaseDurabilityCapability[AgentDepsT]):
    """Makes an agent's runs durable inside tether functions: each model request and each
    tool call is a ``ctx.step.run`` step named after pydantic-ai's durable unit
    (``<agent>__model.request``, ``<agent>__function_toolset__<id>.call_tool:<tool>#<call>``).

    ``model_retries`` is the step policy of model requests (default: one attempt, since the
    model's client or tether's LLM policy retries); ``tool_retries`` of tool calls (default:
    the tether function's ``retries``)."""

    engine_spec = DurabilityEngineSpec(
        engine_name="tether",
        durable_unit_noun="step",
        durable_unit_plural="steps",
        durable_container_noun="tether function",
        codec=JSON_CODEC,  # steps are checkpointed as JSON
        unsupported_runtime_toolset_kinds=frozenset({"function", "mcp", "dynamic"}),
        wrapped_toolset_kinds=frozenset({"function", "mcp", "dynamic"}),
        toolset_lifecycles={
            "function": "enter-always",
            "mcp": "enter-in-durable-unit",
            "dynamic": "enter-never",
        },
        journal_discovery=True,
        sequential_tools_in_durable_context=True,
        tool_config_key="tether",
    )

    def __init__(
        self,
        *,
        name: str | None = None,
        model_retries: Retry | None = NO_RETRY,
        tool_retries: Retry | None = None,
    ) -> None:
        super().__init__(name=name)
        self._model_retries = model_retries
        self._tool_retries = tool_retries

    @property
    def in_durable_context(self) -> bool:
        return current_context() is not None

    def get_default_run_id(self) -> str | None:
        ctx = current_context()
        if ctx is None:
            return None
        ex = ctx._ex
        n = _RUNS.get(ex, 0)
        _RUNS[ex] = n + 1
        return f"{ctx.run_id}:agent:{n}"

    def get_default_conversation_id(self, run_id: str) -> str | None:
        return conversation_id_from_run_id(run_id) if self.in_durable_context else None

    def get_durable_operation_backend(self) -> TetherOperationBackend:
        backend = getattr(self, "_tether_backend", None)
        if backend is None:
            model = _StepConfig(self._model_retries)
            other = _StepConfig(self._tool_retries)
            backend = TetherOperationBackend(
                namer=TetherOperationNamer(self.name),
                config=RoleBasedOperationConfig(
                    model=model, event=other, capability=other, tool=other
                ),
            )
            self._tether_backend = backend
        return backend


__all__ = ["TetherDurability", "TetherOperationBackend", "TetherOperationNamer", "step_name"]
