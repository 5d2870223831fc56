"""The invariants every build is checked against before it is returned.

- never over budget (the counter's count of the messages);
- the system prompt first, verbatim, and every pin's text verbatim in that first message;
- the canonical shape that every provider accepts: after the system message, a user
  message, then alternately an assistant turn and a user message, where an assistant turn
  is any number of (assistant message with tool calls, then exactly the results of those
  calls) optionally ending with one assistant text; no empty user or assistant text; no
  tool call without its result and no result without its call.

A violation is a bug in tether, never the caller's input: it raises ``InvalidForProvider``
instead of sending what a provider would refuse. ``tether.context.wire`` checks the same
messages against each provider's own wire format.
"""

from __future__ import annotations

from collections.abc import Sequence

from tether.context.errors import InvalidForProvider
from tether.context.records import BuiltContext, ContextItem
from tether.llm.types import Message

FAMILY = "any provider (canonical shape)"


def check_build(built: BuiltContext, *, system: str | None, pins: Sequence[ContextItem]) -> None:
    report, messages = built.report, built.messages
    if report.tokens > report.budget:
        raise InvalidForProvider(FAMILY, f"{report.tokens} tokens over the budget {report.budget}")
    if system or pins:
        if not messages or messages[0].role != "system":
            raise InvalidForProvider(FAMILY, "the system message is not first")
        head = messages[0].content
        if system and not head.startswith(system):
            raise InvalidForProvider(FAMILY, "the system prompt is not verbatim at the start")
        for pin in pins:
            if (pin.text or "") not in head:
                raise InvalidForProvider(FAMILY, f"pin {pin.name!r} is not verbatim")
    check_shape(messages)


def check_shape(messages: Sequence[Message]) -> None:
    """Raise ``InvalidForProvider`` unless ``messages`` have the canonical shape."""
    rest = list(messages)
    if rest and rest[0].role == "system":
        rest = rest[1:]
    pending: set[str] = set()
    for i, m in enumerate(rest):
        where = f"message {i + 1} after the system message ({m.role})"
        prev = rest[i - 1] if i else None
        if m.role == "system":
            raise InvalidForProvider(FAMILY, f"{where}: a second system message")
        if pending and m.role != "tool":
            raise InvalidForProvider(FAMILY, f"{where}: tool calls {sorted(pending)} unanswered")
        if m.role == "tool":
            if m.tool_call_id not in pending:
                raise InvalidForProvider(
                    FAMILY, f"{where}: a result for {m.tool_call_id!r} not right after its call"
                )
            pending.discard(m.tool_call_id or "")
        elif m.role == "user":
            if prev is not None and prev.role == "user":
                raise InvalidForProvider(FAMILY, f"{where}: two user messages in a row")
            if not m.content.strip():
                raise InvalidForProvider(FAMILY, f"{where}: empty user message")
        else:
            if prev is None:
                raise InvalidForProvider(FAMILY, f"{where}: the conversation starts with it")
            if prev.role == "assistant":  # an assistant with calls is followed by results
                raise InvalidForProvider(FAMILY, f"{where}: two assistant texts in a row")
            if m.tool_calls:
                ids = [c.id for c in m.tool_calls]
                if len(set(ids)) != len(ids):
                    raise InvalidForProvider(FAMILY, f"{where}: duplicate tool call ids")
                pending = set(ids)
            elif not m.content.strip():
                raise InvalidForProvider(FAMILY, f"{where}: empty assistant message")
    if pending:
        raise InvalidForProvider(FAMILY, f"tool calls {sorted(pending)} unanswered at the end")
