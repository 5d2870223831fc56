"""Records survive JSON; settings validate; the default counter counts as documented."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from tether.context import (
    ApproxCounter,
    Compaction,
    ContextItem,
    ContextSettings,
    StructuredSummary,
    TokenCounter,
)
from tether.llm.types import Message, ToolCall


def test_records_round_trip_json() -> None:
    item = ContextItem(
        seq=3,
        kind="message",
        message=Message(
            role="assistant", tool_calls=[ToolCall(id="a", name="f", arguments={"x": [1, 2]})]
        ),
    )
    assert ContextItem.model_validate(item.model_dump(mode="json")) == item
    c = Compaction(turns_folded=4, tokens_before=900, tokens_after=300, summary_seq=12)
    assert Compaction.model_validate(c.model_dump(mode="json")) == c and c.tokens_saved == 600


def test_structured_summary_renders_its_sections() -> None:
    s = StructuredSummary(
        goal="ship v2",
        constraints=["no downtime"],
        next_steps=["tag", " "],
        critical_context=["ORD-1"],
    )
    assert (
        s.render()
        == "Goal: ship v2\nConstraints:\n- no downtime\nNext steps:\n- tag\nCritical context:\n- ORD-1"
    )


def test_settings_are_checked() -> None:
    with pytest.raises(ValidationError, match="target < soft_trigger <= hard_trigger"):
        ContextSettings(soft_trigger=0.9, hard_trigger=0.8)
    with pytest.raises(ValidationError):
        ContextSettings(memory_share=1.5)
    assert (
        ContextSettings().policy()
        == ContextSettings().policy()
        != ContextSettings(min_saving=0.4).policy()
    )


def test_the_default_counter() -> None:
    c = ApproxCounter()
    assert isinstance(c, TokenCounter)
    assert c.count("") == 0 and c.count("abcd") == 1 and c.count("abcde") == 2
    m = Message(role="user", content="a" * 40)
    assert c.count_messages([]) == 3 and c.count_messages([m]) == 3 + 4 + 10
    with pytest.raises(ValueError, match="positive"):
        ApproxCounter(0)
