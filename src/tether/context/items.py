"""Turning what an application passes into log items, with the checks that need no log.

The checks that need the log (a tool result's call exists, a key is not reused...) are in
``log.validate_append``.
"""

from __future__ import annotations

import hashlib
from typing import Any

from pydantic import ValidationError

from tether.context.errors import InvalidContextItem
from tether.context.records import ContextItem
from tether.context.settings import DEFAULT_SETTINGS, ContextSettings
from tether.llm.types import Message, ToolCall, to_messages

_MESSAGE_FIX = (
    "pass tether.llm.Message(role=..., content=...), a dict like "
    "{'role': 'user', 'content': 'hello'}, or add(role, content)"
)


def to_message(
    value: Any,
    content: Any = None,
    *,
    tool_calls: Any = None,
    tool_call_id: str | None = None,
    name: str | None = None,
) -> Message:
    """``add(role, content, ...)`` or ``add(Message | dict)`` as one checked ``Message``."""
    if isinstance(value, str) and value in ("user", "assistant", "tool", "system"):
        if content is not None and not isinstance(content, str):
            raise InvalidContextItem(
                f"message content must be a string, got {type(content).__name__}; {_MESSAGE_FIX}"
            )
        data: dict[str, Any] = {"role": value, "content": content or ""}
        if tool_calls:
            data["tool_calls"] = tool_calls
        if tool_call_id is not None:
            data["tool_call_id"] = tool_call_id
        if name is not None:
            data["name"] = name
        value = data
    elif content is not None or tool_calls or tool_call_id is not None or name is not None:
        raise InvalidContextItem(
            f"add() got {value!r} as a role: the role must be 'user', 'assistant' or 'tool'"
        )
    if not isinstance(value, Message | dict):
        raise InvalidContextItem(f"not a message: got {type(value).__name__}; {_MESSAGE_FIX}")
    try:
        message = to_messages([value])[0]
    except (ValidationError, TypeError, ValueError, KeyError) as exc:
        raise InvalidContextItem(f"not a valid message ({exc}); {_MESSAGE_FIX}") from exc
    check_message(message)
    return message


def check_message(m: Message) -> None:
    """The rules of one message on its own."""
    if m.role == "system":
        raise InvalidContextItem(
            "a window does not take system messages: its system prompt is the system= it was "
            "opened with, and facts every build must keep go in pin(name, text)"
        )
    if m.role == "tool":
        if not m.tool_call_id:
            raise InvalidContextItem(
                "a tool result needs tool_call_id: the id of the assistant tool call it answers"
            )
        if m.tool_calls:
            raise InvalidContextItem("a tool result cannot itself make tool calls")
        return
    if m.tool_call_id is not None:
        raise InvalidContextItem(
            f"tool_call_id={m.tool_call_id!r} on a {m.role} message: only role 'tool' "
            "(a tool result) answers a tool call"
        )
    if m.role == "user" and m.tool_calls:
        raise InvalidContextItem("a user message cannot make tool calls; use role 'assistant'")
    seen: set[str] = set()
    for call in m.tool_calls:
        if not call.id:
            raise InvalidContextItem(f"tool call {call.name!r} has no id; give each call an id")
        if call.id in seen:
            raise InvalidContextItem(f"tool call id {call.id!r} is used twice in one message")
        seen.add(call.id)


def artifact_handle(tool_call_id: str, content: str) -> str:
    """A handle that depends only on the result, so a replayed write names the same one."""
    digest = hashlib.sha256(f"{tool_call_id}\0{content}".encode()).hexdigest()
    return "art_" + digest[:12]


def message_item(
    message: Message, *, key: str | None = None, settings: ContextSettings = DEFAULT_SETTINGS
) -> ContextItem:
    """A log item for a checked message: a tool result of ``artifact_chars`` or more
    becomes an artifact (kept whole, shown as a stub when room is short)."""
    check_message(message)
    if message.role == "tool" and len(message.content) >= settings.artifact_chars:
        return ContextItem(
            kind="artifact",
            message=message,
            name=message.name,
            tool_call_id=message.tool_call_id,
            handle=artifact_handle(message.tool_call_id or "", message.content),
            key=key,
        )
    return ContextItem(
        kind="message",
        message=message,
        name=message.name,
        tool_call_id=message.tool_call_id,
        key=key,
    )


def pin_item(name: str, text: str | None, *, key: str | None = None) -> ContextItem:
    """A pin (``text=None`` unpins ``name``)."""
    if not isinstance(name, str) or not name.strip():
        raise InvalidContextItem(f"a pin needs a non-empty name, got {name!r}")
    if text is not None and (not isinstance(text, str) or not text.strip()):
        raise InvalidContextItem(
            f"pin {name!r} needs non-empty text; to remove it call unpin({name!r})"
        )
    return ContextItem(kind="pin", name=name, text=text, key=key)


def reply_items(
    text: str,
    tool_calls: list[ToolCall],
    *,
    key: str | None = None,
    settings: ContextSettings = DEFAULT_SETTINGS,
) -> list[ContextItem]:
    """The assistant message of a model reply (what ``ctx.step.llm`` appends)."""
    message = Message(role="assistant", content=text, tool_calls=tool_calls)
    return [message_item(message, key=key, settings=settings)]
