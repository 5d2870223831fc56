"""The seam between a ``TetherAgent`` and a tether context window (``context=``).

``context=`` takes a window or a callable that opens one for each run:

- ``th.context(key, ...)``: one window for every run of the agent. Inside a run it is
  opened again through ``ctx.context(key, ...)`` (same key, same options), so its writes
  are keyed by (run, write number) as well;
- ``lambda ctx: ctx.context("chat:" + ctx.event.data["chat"], ...)``: a window per run,
  chosen from the run's input (an ``AsyncContextWindow`` in ``async def`` functions, a
  blocking ``ContextWindow`` in plain ones; either works);
- any other object with ``add(message)`` and ``build(query=None)`` (``.messages``),
  plain or coroutine methods (``AgentContextWindow``): its writes are not keyed.

Each run starts from ``build(query=<the prompt>)`` (the system prompt, pins, the running
summary, the recent turns, fitted to the budget, tool calls kept with their results)
instead of a ``message_history``, and appends the run's new messages (the prompt, the
replies, the tool calls and their results) in one write once the run is done. A replay or
a resumed run builds the window as it was and appends nothing twice.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any, Protocol

from pydantic_ai.messages import (
    ModelMessage,
    ModelRequest,
    ModelRequestPart,
    ModelResponse,
    ModelResponsePart,
    SystemPromptPart,
    TextPart,
    ToolCallPart,
    ToolReturnPart,
    UserPromptPart,
)

from tether.context.windows import WindowState, aadd_messages, abuild_window, acall_ids, in_run
from tether.errors import ConfigurationError
from tether.integrations.pydantic_ai.model import to_tether_messages
from tether.llm import Message


class AgentContextWindow(Protocol):
    """What ``TetherAgent(context=...)`` needs of a window that is not tether's own."""

    def add(self, value: Any, /) -> Any: ...

    def build(self, query: str | None = None) -> Any: ...


#: ``context=``: a window, or a callable of the run's context returning one
ContextSpec = AgentContextWindow | Callable[[Any], Any]


class WindowHistory:
    """Opens the window of a run (``context=``): a window, or a callable of the run's
    context returning one."""

    def __init__(self, context: ContextSpec) -> None:
        self.context: Any = context
        self.factory = callable(context) and not _is_window(context)
        if not self.factory:
            _check_window(context)

    def open(self, ctx: Any) -> RunHistory:
        window = self.context(ctx) if self.factory else self.context
        _check_window(window)
        if _is_tether_window(window):
            return TetherWindowHistory(in_run(window, ctx))
        return RunHistory(window)


class RunHistory:
    """One run's reads and writes of a duck-typed window (``AgentContextWindow``)."""

    def __init__(self, window: Any) -> None:
        self.window = window

    async def messages(self, prompt: Any) -> list[ModelMessage]:
        built = await _maybe_await(self.window.build(prompt if isinstance(prompt, str) else None))
        return to_model_messages(list(built.messages))

    async def record(self, messages: list[ModelMessage]) -> None:
        for message in window_messages(messages):
            await _maybe_await(self.window.add(message))


class TetherWindowHistory(RunHistory):
    """One run's reads and writes of a tether window: keyed writes, the run's new messages
    in one write."""

    async def messages(self, prompt: Any) -> list[ModelMessage]:
        built = await abuild_window(self.window, prompt if isinstance(prompt, str) else None)
        return to_model_messages(list(built.messages))

    async def record(self, messages: list[ModelMessage]) -> None:
        used = await acall_ids(self.window)
        await aadd_messages(self.window, unique_call_ids(window_messages(messages), used))


def unique_call_ids(messages: list[Message], used: set[str]) -> list[Message]:
    """The messages with each tool call id the window already uses (some providers number
    the calls of each response: ``call_0`` every time) renamed ``<id>~<n>``, and the
    results that answer it with it; a window takes each call id once."""
    out: list[Message] = []
    renamed: dict[str, str] = {}
    for m in messages:
        if m.role == "tool" and m.tool_call_id is not None:
            m = m.model_copy(update={"tool_call_id": renamed.get(m.tool_call_id, m.tool_call_id)})
        elif m.tool_calls:
            calls = []
            for call in m.tool_calls:
                new, n = call.id, 0
                while new in used:
                    n += 1
                    new = f"{call.id}~{n}"
                used.add(new)
                renamed[call.id] = new
                calls.append(call if new == call.id else call.model_copy(update={"id": new}))
            m = m.model_copy(update={"tool_calls": calls})
        out.append(m)
    return out


def window_messages(messages: list[ModelMessage]) -> list[Message]:
    """A run's new messages as window messages: the agent's system prompt parts are left
    out (a window's system prompt is its ``system=``)."""
    return [m for m in to_tether_messages(messages, None) if m.role != "system"]


def _is_tether_window(window: Any) -> bool:
    return isinstance(getattr(window, "_s", None), WindowState)


def _is_window(value: Any) -> bool:
    return callable(getattr(value, "add", None)) and callable(getattr(value, "build", None))


def _check_window(window: Any) -> None:
    for method in ("add", "build"):
        if not callable(getattr(window, method, None)):
            raise ConfigurationError(
                f"context= takes a context window (th.context(...)), a callable of the run's "
                f"context returning one (lambda ctx: ctx.context(...)), or an object with add() "
                f"and build(); {type(window).__name__} has no {method}() method"
            )


async def _maybe_await(value: Any) -> Any:
    return await value if inspect.isawaitable(value) else value


def to_model_messages(messages: list[Message]) -> list[ModelMessage]:
    """tether's neutral messages as pydantic-ai messages: consecutive system, user and tool
    messages form one request; an assistant message is one response."""
    out: list[ModelMessage] = []
    pending: list[ModelRequestPart] = []
    tool_names: dict[str, str] = {}
    for m in messages:
        if m.role == "assistant":
            if pending:
                out.append(ModelRequest(parts=pending))
                pending = []
            parts: list[ModelResponsePart] = []
            if m.content:
                parts.append(TextPart(content=m.content))
            for call in m.tool_calls:
                tool_names[call.id] = call.name
                parts.append(
                    ToolCallPart(tool_name=call.name, args=call.arguments, tool_call_id=call.id)
                )
            out.append(ModelResponse(parts=parts))
        elif m.role == "system":
            pending.append(SystemPromptPart(content=m.content))
        elif m.role == "user":
            pending.append(UserPromptPart(content=m.content))
        else:
            call_id = m.tool_call_id or ""
            pending.append(
                ToolReturnPart(
                    tool_name=tool_names.get(call_id, m.name or "tool"),
                    content=m.content,
                    tool_call_id=call_id,
                )
            )
    if pending:
        out.append(ModelRequest(parts=pending))
    return out


__all__ = ["AgentContextWindow", "ContextSpec", "RunHistory", "WindowHistory", "to_model_messages"]
