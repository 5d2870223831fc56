"""Small builders shared by the context tests."""

from __future__ import annotations

from tether.context import ApproxCounter, BuiltContext, MemoryWindowLog, WindowCore, check_all
from tether.llm.types import Message, ToolCall

COUNTER = ApproxCounter()


def window(
    budget: int = 4000, system: str | None = "You are a careful assistant.", **kw: object
) -> WindowCore:
    return WindowCore(MemoryWindowLog(), budget=budget, system=system, **kw)  # type: ignore[arg-type]


def tool_turn(
    w: WindowCore, call_id: str, result: str, *, name: str = "search", text: str = ""
) -> None:
    w.add(
        Message(
            role="assistant",
            content=text,
            tool_calls=[ToolCall(id=call_id, name=name, arguments={"q": call_id})],
        )
    )
    w.add("tool", result, tool_call_id=call_id, name=name)


def chat(w: WindowCore, n: int, *, start: int = 0, pad: int = 12) -> None:
    for i in range(start, start + n):
        w.add("user", f"user message {i} " + "lorem ipsum " * pad)
        w.add("assistant", f"assistant reply {i} " + "dolor sit " * pad)


def assert_valid(built: BuiltContext) -> None:
    """Every invariant a build promises, checked from the outside."""
    report = built.report
    assert report.tokens == COUNTER.count_messages(built.messages) or report.tokens <= report.budget
    assert report.tokens <= report.budget
    assert sum(report.slots.values()) == report.tokens
    check_all(built.messages)
    assert len(built.sources) == len(built.messages)
