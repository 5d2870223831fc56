"""A window's items read as a conversation: the pins in force, the summary in force, and
the messages grouped into units that are never split.

A **unit** is a user message, an assistant message, or an assistant message with tool calls
together with the results of those calls (placed right after it, in call order, wherever
they were appended). A call whose result never came is left out of its message; a message
left with nothing to say is left out. A **turn** is a user unit and the units after it up
to the next user unit; units before the first user message belong to no turn (``-1``).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Literal

from tether.context.log import supersedes
from tether.context.records import ContextItem
from tether.llm.types import Message

UnitRole = Literal["user", "assistant", "tools"]


@dataclass(slots=True, eq=False)
class Unit:
    key: int  # seq of the unit's first message: what a summary's range counts
    role: UnitRole
    head: ContextItem
    message: Message  # the head message as sent (unanswered calls removed)
    results: list[ContextItem] = field(default_factory=list)
    omitted: list[str] = field(default_factory=list)
    turn: int = -1
    sent_results: list[Message] = field(default_factory=list)  # named after their call

    @property
    def items(self) -> list[ContextItem]:
        return [self.head, *self.results]

    @property
    def seqs(self) -> list[int]:
        return [i.seq for i in self.items]


@dataclass
class LogView:
    items: list[ContextItem]
    by_seq: dict[int, ContextItem]
    pins: list[ContextItem]  # in the order their names were first pinned
    summary: ContextItem | None
    units: list[Unit]
    omitted: list[str]

    @classmethod
    def of(cls, items: Iterable[ContextItem]) -> LogView:
        ordered = sorted(items, key=lambda i: i.seq)
        pins: dict[str, ContextItem] = {}
        summary: ContextItem | None = None
        messages: list[ContextItem] = []
        for item in ordered:
            if item.kind == "pin" and item.name is not None:
                if item.text is None:
                    pins.pop(item.name, None)
                else:
                    pins[item.name] = item  # a replaced pin keeps its place
            elif item.kind == "summary":
                if supersedes(item, summary):
                    summary = item
            elif item.message is not None:
                messages.append(item)
        units, omitted = _units(messages)
        return cls(
            items=ordered,
            by_seq={i.seq: i for i in ordered},
            pins=list(pins.values()),
            summary=summary,
            units=units,
            omitted=omitted,
        )

    def summarized(self, unit: Unit) -> bool:
        s = self.summary
        return s is not None and unit.key <= (s.through_seq or 0) and unit.key not in s.kept

    def live_units(self) -> list[Unit]:
        """Units the summary does not stand for, oldest first."""
        return [u for u in self.units if not self.summarized(u)]

    def last_user_text(self) -> str | None:
        for unit in reversed(self.units):
            if unit.role == "user":
                return unit.message.content
        return None


def _units(messages: list[ContextItem]) -> tuple[list[Unit], list[str]]:
    results: dict[str, ContextItem] = {}
    for item in messages:
        m = item.message
        if m is not None and m.role == "tool" and m.tool_call_id:
            results.setdefault(m.tool_call_id, item)
    units: list[Unit] = []
    omitted_all: list[str] = []
    turn = -1
    for item in messages:
        m = item.message
        if m is None or m.role == "tool":
            continue
        if m.role == "user":
            if m.content.strip():
                turn += 1
                units.append(Unit(item.seq, "user", item, m, [], [], turn, []))
            continue
        paired = [c for c in m.tool_calls if c.id in results]
        omitted = [c.id for c in m.tool_calls if c.id not in results]
        omitted_all += omitted
        if paired:
            sent = m if not omitted else m.model_copy(update={"tool_calls": paired})
            answers = [results[c.id] for c in paired]
            named = [_named(r, c.name) for r, c in zip(answers, paired, strict=True)]
            units.append(Unit(item.seq, "tools", item, sent, answers, omitted, turn, named))
        elif m.content.strip():
            sent = m.model_copy(update={"tool_calls": []}) if m.tool_calls else m
            units.append(Unit(item.seq, "assistant", item, sent, [], omitted, turn, []))
    return units, omitted_all


def _named(result: ContextItem, name: str) -> Message:
    """A result carries its call's function name (Gemini matches responses by name)."""
    m = result.message
    assert m is not None
    return m if m.name == name else m.model_copy(update={"name": name})
