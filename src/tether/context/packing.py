"""The conversation part of a build: which units are shown, and in which form.

Each message of a shown unit is in one form: ``full``, ``stub`` (an artifact's head, tail and
handle), ``cleared`` (a one-line placeholder naming the handle) or ``cut`` (an oversized text
shortened like a stub). Every reduction keeps the count of what is shown up to date, so the
pipeline can try the cheapest action first and stop as soon as the conversation fits.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Literal

from tether.context.records import ContextItem
from tether.context.render import cleared_text, item_handle, stub_text
from tether.context.settings import ContextSettings
from tether.context.tokens import MessageCosts
from tether.context.view import Unit
from tether.llm.types import Message

Form = Literal["full", "stub", "cleared", "cut"]


@dataclass(slots=True, eq=False)
class Part:
    item: ContextItem
    full: Message
    sent: Message
    cost: int
    form: Form = "full"

    @property
    def is_result(self) -> bool:
        return self.full.role == "tool"


@dataclass(slots=True, eq=False)
class Shown:
    unit: Unit
    parts: list[Part]

    @property
    def cost(self) -> int:
        return sum(p.cost for p in self.parts)


class Conversation:
    def __init__(self, units: list[Unit], costs: MessageCosts, settings: ContextSettings) -> None:
        self.costs = costs
        self.settings = settings
        self.shown: list[Shown] = []
        for unit in units:
            parts = [Part(unit.head, unit.message, unit.message, costs.of(unit.message))]
            for result, m in zip(unit.results, unit.sent_results, strict=True):
                parts.append(Part(result, m, m, costs.of(m)))
            self.shown.append(Shown(unit, parts))
        self.total = sum(s.cost for s in self.shown)
        self.dropped: list[Shown] = []

    # ------------------------------------------------------------ forms

    def _set(self, part: Part, form: Form, text: str) -> None:
        sent = part.full.model_copy(update={"content": text})
        cost = self.costs.of(sent)
        if cost >= part.cost:
            return  # a reduction that does not reduce is not made
        self.total += cost - part.cost
        part.sent, part.cost, part.form = sent, cost, form

    def stub(self, part: Part) -> None:
        if part.form == "full" and part.item.kind == "artifact":
            text = stub_text(part.full.content, item_handle(part.item), self.settings)
            self._set(part, "stub", text)

    def clear(self, part: Part) -> None:
        if part.is_result and part.form in ("full", "stub"):
            self._set(part, "cleared", cleared_text(part.full.content, item_handle(part.item)))

    def cut(self, part: Part) -> None:
        if part.form == "full" and not part.is_result:
            self._set(
                part, "cut", stub_text(part.full.content, item_handle(part.item), self.settings)
            )

    # ------------------------------------------------------------ selection

    def results(self) -> list[Part]:
        return [p for s in self.shown for p in s.parts if p.is_result]

    def drop_first(self) -> Shown:
        gone = self.shown.pop(0)
        self.total -= gone.cost
        self.dropped.append(gone)
        return gone

    def drop_at(self, index: int) -> None:
        gone = self.shown.pop(index)
        self.total -= gone.cost
        self.dropped.append(gone)

    def restore_before(self, shown: list[Shown]) -> None:
        self.shown[:0] = shown
        self.total += sum(s.cost for s in shown)
        for s in shown:
            self.dropped.remove(s)

    def newest_turn(self) -> int:
        return self.shown[-1].unit.turn if self.shown else -1

    def seqs(self) -> set[int]:
        return {p.item.seq for s in self.shown for p in s.parts}

    def parts(self) -> Iterator[Part]:
        for s in self.shown:
            yield from s.parts


def fit(conv: Conversation, room: int, reserve: int, *, left: bool = False) -> int:
    """Reduce ``conv`` until it fits ``room`` (or ``room - reserve`` once turns must go, or
    already went: ``left``), cheapest action first. Returns the room left (-1: no fit)."""
    keep = conv.settings.keep_tool_results
    limit = room - reserve
    target = limit if left else room

    def fits(n: int) -> bool:
        return conv.total <= n

    if fits(target):
        return room - conv.total
    results = conv.results()
    newest_turn = conv.newest_turn()
    current = [p for s in conv.shown if s.unit.turn == newest_turn for p in s.parts if p.is_result]
    protected = {id(p) for p in (current[-keep:] if keep else [])}
    recent = {id(p) for p in (results[-keep:] if keep else [])} | protected
    for part in results:  # (1) large tool results become stubs, oldest first
        if id(part) not in protected:
            conv.stub(part)
            if fits(target):
                return room - conv.total
    for part in results:  # (2) older tool results are cleared, the newest few kept
        if id(part) not in recent:
            conv.clear(part)
            if fits(target):
                return room - conv.total
    while not fits(limit) and conv.shown and conv.shown[0].unit.turn != newest_turn:
        first_turn = conv.shown[0].unit.turn  # (3) older turns leave, whole
        while conv.shown and conv.shown[0].unit.turn == first_turn:
            conv.drop_first()
    # (4) inside the newest turn, its oldest units after the user message leave
    while not fits(limit) and len(conv.shown) > 2:
        conv.drop_at(1 if conv.shown[0].unit.role == "user" else 0)
    # (5) the newest tool results shrink, stubs then placeholders; (6) oversized texts are
    # cut; (7) the newest units leave until only the user message is left. These work
    # against the whole room: the memory slot never costs the newest turn anything.
    for part in list(conv.parts()):
        if part.is_result and not fits(room):
            conv.stub(part)
    for part in list(conv.parts()):
        if part.is_result and not fits(room):
            conv.clear(part)
    for part in sorted(conv.parts(), key=lambda p: -p.cost):
        if not fits(room):
            conv.cut(part)
    while not fits(room) and len(conv.shown) > 1:
        conv.drop_at(len(conv.shown) - 1)
    return room - conv.total if fits(room) else -1
