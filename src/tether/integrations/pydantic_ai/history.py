"""The seam between a ``TetherAgent`` and a tether context window (``context=window``).

A window is any object with the two methods of tether's context windows:

- ``add(message)``: append one ``tether.llm.Message`` (a coroutine in async durable
  functions, where ``ctx.context(...)`` returns an async window; either works here);
- ``build(query=None)``: the messages that fit the window's budget, as an object with
  ``.messages: list[tether.llm.Message]`` (a coroutine too, in async functions).

Each run starts from ``window.build(query=<the prompt>)`` (the system prompt, pins, the
running summary, the recent turns) instead of a ``message_history``, and appends the run's
new messages (the prompt, the replies, the tool calls and their results) to the window.
Replay safety comes from the window: ``ctx.context(...)`` windows key their writes by
(run, write number), so a resumed run appends nothing twice.
"""

from __future__ import annotations

import inspect
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

from tether.integrations.pydantic_ai.model import to_tether_messages
from tether.llm import Message


class AgentContextWindow(Protocol):
    """What ``TetherAgent(context=...)`` needs of a context window."""

    def add(self, value: Any, /) -> Any: ...

    def build(self, query: str | None = None) -> Any: ...


class WindowHistory:
    """Reads a run's history from a window and writes the run's new messages back."""

    def __init__(self, window: AgentContextWindow) -> None:
        for method in ("add", "build"):
            if not callable(getattr(window, method, None)):
                from tether.errors import ConfigurationError

                raise ConfigurationError(
                    f"context= takes a context window (ctx.context(...) or th.context(...)); "
                    f"{type(window).__name__} has no {method}() method"
                )
        self.window = window

    async def messages(self, prompt: Any) -> list[ModelMessage]:
        built = await _maybe_await(self.window.build(prompt if isinstance(prompt, str) else None))
        return to_model_messages(list(built.messages))

    async def record(self, messages: list[ModelMessage]) -> None:
        for message in to_tether_messages(messages, None):
            await _maybe_await(self.window.add(message))


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


__all__ = ["AgentContextWindow", "WindowHistory", "to_model_messages"]
