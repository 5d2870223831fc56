"""Bad input gets a clear error naming the fix, and nothing is appended."""

from __future__ import annotations

from typing import Any

import pytest

from tests.context.helpers import window
from tether.context import (
    ContextBudgetError,
    InvalidContextItem,
    MemoryWindowLog,
    UnknownContextWindow,
    WindowCore,
    resolve_budget,
)
from tether.errors import ConfigurationError
from tether.llm.types import Tool


@pytest.mark.parametrize(
    ("args", "kwargs", "match"),
    [
        ((123,), {}, "not a message: got int"),
        (({"role": "robot", "content": "x"},), {}, "not a valid message"),
        (("system", "be nice"), {}, r"pin\(name, text\)"),
        (("tool", "42"), {}, "needs tool_call_id"),
        (("tool", "42"), {"tool_call_id": "nope"}, "unknown call id 'nope'"),
        (("user", 5), {}, "content must be a string"),
        (("boss", "hi"), {}, "'boss' as a role"),
        (("user", "hi"), {"tool_call_id": "c1"}, "only role 'tool'"),
        (
            ({"role": "user", "content": "x", "tool_calls": [{"id": "c", "name": "f"}]},),
            {},
            "cannot make tool calls",
        ),
        (({"role": "assistant", "tool_calls": [{"id": "", "name": "f"}]},), {}, "has no id"),
        (
            (
                {
                    "role": "assistant",
                    "tool_calls": [{"id": "a", "name": "f"}, {"id": "a", "name": "g"}],
                },
            ),
            {},
            "used twice",
        ),
    ],
)
def test_bad_messages_are_refused_and_nothing_is_appended(
    args: tuple[Any, ...], kwargs: dict[str, Any], match: str
) -> None:
    w = window()
    w.add("user", "kept")
    with pytest.raises(InvalidContextItem, match=match) as info:
        w.add(*args, **kwargs)
    assert isinstance(info.value, ConfigurationError)
    assert [i.content for i in w.items()] == ["kept"]


def test_add_many_is_all_or_nothing() -> None:
    w = window()
    with pytest.raises(InvalidContextItem, match="unknown call id"):
        w.add_many(
            [
                {"role": "user", "content": "a"},
                {"role": "tool", "content": "r", "tool_call_id": "x"},
            ]
        )
    assert w.items() == []
    with pytest.raises(InvalidContextItem, match="2 messages but 1 keys"):
        w.add_many([{"role": "user", "content": "a"}, {"role": "user", "content": "b"}], keys=["k"])


def test_a_window_needs_a_model_or_a_budget() -> None:
    with pytest.raises(UnknownContextWindow, match="needs model= .* or budget="):
        WindowCore(MemoryWindowLog())
    with pytest.raises(
        UnknownContextWindow, match=r"'openai:no-such-model' is not known: pass budget=.*set_prices"
    ):
        WindowCore(MemoryWindowLog(), model="openai:no-such-model")
    for bad in (0, -5, 2.5, True):
        with pytest.raises(ContextBudgetError, match="positive number of tokens"):
            WindowCore(MemoryWindowLog(), budget=bad)  # type: ignore[arg-type]


def test_budget_from_the_model_window() -> None:
    assert resolve_budget(model="openai:gpt-4o") == int(128000 * 0.95) - 4096
    assert resolve_budget(model="local:smollm2-135m", max_tokens=512) == int(8192 * 0.95) - 512
    tool = Tool(name="lookup", description="x" * 400)
    with_tool = resolve_budget(model="openai:gpt-4o", max_tokens=1000, tools=[tool])
    assert with_tool < int(128000 * 0.95) - 1000
    assert resolve_budget(
        model="openai-compatible:http://127.0.0.1:1/v1#gpt-4o", max_tokens=0
    ) == int(128000 * 0.95)
    with pytest.raises(ContextBudgetError, match="nothing is left"):
        resolve_budget(model="local:smollm2-135m", max_tokens=9000)


def test_budget_smaller_than_system_and_pins() -> None:
    w = window(budget=60, system="S" * 120)  # 30 tokens + overhead
    w.add("user", "hello")
    with pytest.raises(ContextBudgetError) as info:
        w.pin("facts", "F" * 400)
    assert "over the budget of 60" in str(info.value)
    assert w.log.pins() == {}  # nothing written
    small = window(budget=20, system="S" * 120)
    with pytest.raises(
        ContextBudgetError,
        match=r"budget of 20 tokens cannot hold the system prompt \(37 tokens\).*raise budget= to at least 37",
    ):
        small.build()


def test_unpin_of_an_unknown_name() -> None:
    w = window()
    w.pin("a", "x")
    with pytest.raises(InvalidContextItem, match=r"no pin named 'b' to unpin; pinned: \['a'\]"):
        w.unpin("b")
    with pytest.raises(InvalidContextItem, match="non-empty text"):
        w.pin("a", "  ")
    assert [i.text for i in w.items()] == ["x"]
