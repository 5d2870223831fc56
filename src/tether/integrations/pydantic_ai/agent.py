"""``TetherAgent``: a pydantic-ai ``WrapperAgent`` whose runs are durable.

Inside a tether function, ``await durable.run(...)`` makes each model request and each tool
call a step of that function (``TetherDurability``), waits durably for tool approvals, and
resumes after a crash without repeating a completed request or call. Outside one, the run is
a tether function of its own, ``agent:<name>``, whose run id is the ``run_id=`` argument (or a
new id): calling again with the same ``run_id`` returns or resumes that run."""

from __future__ import annotations

import copy
import functools
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from typing import Any

from pydantic import TypeAdapter
from pydantic_ai.agent import AbstractAgent, AgentRun, WrapperAgent
from pydantic_ai.messages import ModelMessagesTypeAdapter
from pydantic_ai.models import Model
from pydantic_ai.run import AgentRunResult
from pydantic_ai.tools import DeferredToolRequests, DeferredToolResults, ToolDenied
from pydantic_ai.usage import UsageLimits

from tether.durable.context import Context, SyncContext, current_context
from tether.durable.retry import NO_RETRY, Retry
from tether.errors import ConfigurationError
from tether.integrations.pydantic_ai.approvals import needs_approval, wait_for_approval
from tether.integrations.pydantic_ai.durability import TetherDurability
from tether.integrations.pydantic_ai.history import ContextSpec, WindowHistory
from tether.integrations.pydantic_ai.model import TetherModel

#: What a run of ``agent:<name>`` accepts (the rest lives in code, not in the run's input).
_SERIALIZABLE = (
    "user_prompt",
    "message_history",
    "deps",
    "model_settings",
    "usage_limits",
    "instructions",
    "metadata",
    "run_id",
)
_IGNORED = ("infer_name",)  # naming the agent from the caller's frame: not an input
_PROMPT = TypeAdapter(Any)
_LIMITS = TypeAdapter(UsageLimits)


class TetherAgent(WrapperAgent[Any, Any]):
    """``TetherAgent(agent, harness=th)``: the agent, durable on ``th``'s store.

    ``model="openai:gpt-4.1-mini"`` (any tether model string) with ``fallbacks=[...]`` sends
    every request through ``tether.llm`` (classifier, retries, fallbacks, shared circuit
    breakers, cost); without it the agent's own model is used, through its own client.
    ``context=`` keeps the agent's history in a context window: ``th.context(key, ...)``, or
    a callable of the run's context opening one per run (``lambda ctx: ctx.context(...)``);
    each run starts from ``window.build(query=<prompt>)`` and appends its new messages to
    the window (keyed writes: a resumed run appends nothing twice; see ``history``).
    ``tool_retries`` is the step retry policy of tool calls (default: the tether function's);
    ``model_retries`` of model requests (default: one attempt: the model's client, or
    tether's LLM policy, retries); ``approval_timeout`` (seconds, None for no limit) bounds
    each wait for a tool approval, after which the call is denied."""

    def __init__(
        self,
        agent: AbstractAgent[Any, Any],
        *,
        harness: Any,
        model: str | Model | None = None,
        fallbacks: Sequence[str] = (),
        context: ContextSpec | None = None,
        name: str | None = None,
        tool_retries: Retry | None = None,
        model_retries: Retry | None = None,
        approval_timeout: float | None = None,
    ) -> None:
        if model is not None:
            agent = _with_model(agent, model, fallbacks, harness)
        super().__init__(agent)
        self._name: str = name or agent.name or ""
        if not self._name:
            raise ConfigurationError(
                "TetherAgent needs a name: it names the agent's steps and its function "
                "'agent:<name>'. Pass Agent(..., name='support') or TetherAgent(..., name='support')"
            )
        if fallbacks and not isinstance(model, str):
            raise ConfigurationError(
                "fallbacks= needs model= as a tether model string (e.g. model='openai:gpt-4.1-mini', "
                "fallbacks=['anthropic:claude-sonnet-4-5']): fallbacks are tether's"
            )
        if model_retries is None:
            model_retries = NO_RETRY
        self.harness = harness
        self.durability: TetherDurability[Any] = TetherDurability(
            name=self._name, model_retries=model_retries, tool_retries=tool_retries
        )
        self._history = WindowHistory(context) if context is not None else None
        self.approval_timeout = approval_timeout
        self.function_id = f"agent:{self._name}"
        self.function = harness.function(id=self.function_id)(self._as_function)

    @property
    def name(self) -> str | None:
        return self._name

    @name.setter
    def name(self, value: str | None) -> None:
        raise ConfigurationError("a TetherAgent's name names its steps: create another to rename")

    # -- every run goes through here ----------------------------------------------------
    @asynccontextmanager
    async def iter(
        self, user_prompt: Any = None, **kwargs: Any
    ) -> AsyncIterator[AgentRun[Any, Any]]:
        """``WrapperAgent.iter`` with tether's durability capability (and model) added;
        ``run``, ``run_sync`` and ``run_stream`` all come through it."""
        kwargs["capabilities"] = [*(kwargs.get("capabilities") or ()), self.durability]
        async with self.wrapped.iter(user_prompt, **kwargs) as run:
            yield run

    async def run(self, user_prompt: Any = None, **kwargs: Any) -> AgentRunResult[Any]:
        """Run the agent durably: as steps of the tether function this is called in, or as a
        run of ``agent:<name>`` (run id: ``run_id=`` or a new id) when called outside one."""
        ctx = current_context()
        if ctx is None:
            return await self._own_run(user_prompt, kwargs)
        return await self._durable_run(ctx, user_prompt, kwargs)

    async def _durable_run(
        self, ctx: Context | SyncContext, user_prompt: Any, kwargs: dict[str, Any]
    ) -> AgentRunResult[Any]:
        history = None
        if self._history is not None and kwargs.get("message_history") is None:
            history = self._history.open(ctx)
            kwargs["message_history"] = await history.messages(user_prompt)
        approvals = kwargs.get("output_type") is None and needs_approval(self.wrapped)
        if approvals:
            kwargs["output_type"] = [*_as_list(self.wrapped.output_type), DeferredToolRequests]
        result = await super().run(user_prompt, **kwargs)
        new = result.new_messages()
        while approvals and isinstance(result.output, DeferredToolRequests):
            requests = result.output
            if requests.calls:
                names = ", ".join(sorted(c.tool_name for c in requests.calls))
                raise ConfigurationError(
                    f"agent {self._name!r} deferred calls to external tools ({names}); TetherAgent "
                    "waits for approvals only: run external tools as ordinary tools"
                )
            answers: dict[str, bool | ToolDenied] = {}
            for call in requests.approvals:
                answers[call.tool_call_id] = await wait_for_approval(
                    ctx, self._name, call, self.approval_timeout
                )
            kwargs["message_history"] = result.all_messages()
            kwargs["deferred_tool_results"] = DeferredToolResults(approvals=dict(answers))
            result = await super().run(None, **kwargs)
            new += result.new_messages()
            user_prompt = None
        if history is not None:
            await history.record(new)
        return result

    # -- outside a tether function: a function of its own ---------------------------------
    async def _own_run(self, user_prompt: Any, kwargs: dict[str, Any]) -> AgentRunResult[Any]:
        unknown = sorted(
            k
            for k, v in kwargs.items()
            if v is not None and k not in _SERIALIZABLE and k not in _IGNORED
        )
        if unknown:
            raise ConfigurationError(
                f"TetherAgent.run outside a tether function starts a run of {self.function_id!r}, "
                f"whose input must be stored as JSON; {', '.join(unknown)} cannot be. Set them on "
                "the agent, or call the run inside your own tether function"
            )
        data = self._input(user_prompt, kwargs)
        run_id = kwargs.get("run_id")
        output = await self.harness.arun(self.function, data, run_id=run_id)
        return _result_adapter(_output_type(self.wrapped)).validate_python(output)

    def _input(self, user_prompt: Any, kwargs: dict[str, Any]) -> dict[str, Any]:
        data: dict[str, Any] = {"user_prompt": _PROMPT.dump_python(user_prompt, mode="json")}
        if kwargs.get("message_history") is not None:
            data["message_history"] = ModelMessagesTypeAdapter.dump_python(
                list(kwargs["message_history"]), mode="json"
            )
        deps = kwargs.get("deps")
        if deps is not None:
            try:
                data["deps"] = TypeAdapter(self.wrapped.deps_type).dump_python(deps, mode="json")
            except Exception as exc:
                raise ConfigurationError(
                    f"deps of agent {self._name!r} cannot be stored as the input of a run of "
                    f"{self.function_id!r} ({type(exc).__name__}: {exc}); use deps that pydantic "
                    "serialises (a dataclass or model of plain values), or call the run inside your "
                    "own tether function"
                ) from None
        for key in ("model_settings", "instructions", "metadata"):
            if kwargs.get(key) is not None:
                data[key] = kwargs[key]
        if kwargs.get("usage_limits") is not None:
            data["usage_limits"] = _LIMITS.dump_python(kwargs["usage_limits"], mode="json")
        return data

    async def _as_function(self, ctx: Context) -> dict[str, Any]:
        """The body of ``agent:<name>``: one durable agent run from the run's input."""
        data = dict(ctx.event.data)
        kwargs: dict[str, Any] = {}
        if "message_history" in data:
            kwargs["message_history"] = ModelMessagesTypeAdapter.validate_python(
                data["message_history"]
            )
        if "deps" in data:
            kwargs["deps"] = TypeAdapter(self.wrapped.deps_type).validate_python(data["deps"])
        if "usage_limits" in data:
            kwargs["usage_limits"] = _LIMITS.validate_python(data["usage_limits"])
        for key in ("model_settings", "instructions", "metadata"):
            if key in data:
                kwargs[key] = data[key]
        result = await self._durable_run(ctx, data.get("user_prompt"), kwargs)
        out: dict[str, Any] = _result_adapter(Any).dump_python(result, mode="json")
        return out


def _with_model(
    agent: AbstractAgent[Any, Any], model: str | Model, fallbacks: Sequence[str], harness: Any
) -> AbstractAgent[Any, Any]:
    """A shallow copy of ``agent`` whose model is ``model`` (a tether model string becomes a
    ``TetherModel`` sharing the harness's circuit breakers); the user's agent is unchanged."""
    if isinstance(model, str):
        model = TetherModel(model, fallbacks=fallbacks, circuit=harness.circuit_breaker)
    if not isinstance(model, Model):
        raise ConfigurationError(
            f"model= takes a tether model string or a pydantic-ai Model, got {model!r}"
        )
    twin = copy.copy(agent)
    twin.model = model  # type: ignore[misc]
    return twin


@functools.cache
def _result_adapter(output: Any) -> TypeAdapter[AgentRunResult[Any]]:
    """The adapter of run results (building one costs ~0.2 s: made once per output type)."""
    return TypeAdapter(AgentRunResult[output])


def _as_list(spec: Any) -> list[Any]:
    return list(spec) if isinstance(spec, list | tuple) else [spec]


def _output_type(agent: AbstractAgent[Any, Any]) -> Any:
    spec = agent.output_type
    return spec if isinstance(spec, type) else Any


__all__ = ["TetherAgent"]
