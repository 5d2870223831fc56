"""``build``: fit a window into its budget, cheapest action first, and check the result.

1. large tool results (artifacts) become stubs, oldest first;
2. older tool results are cleared, the newest ``keep_tool_results`` kept;
3. turns the running summary stands for are shown as the summary;
4. the newest turns are kept verbatim, whole units only (a tool call with its results);
5. turns that left the window and long-term memories come back by relevance to the query,
   into a memory slot of at most ``memory_share`` of the budget.

The build reads the log once and writes nothing; compaction (which writes a summary) is
``compaction.acompact``, and ``abuild`` runs it first when the hard trigger is reached.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from tether.context.checks import check_build
from tether.context.errors import ContextBudgetError
from tether.context.packing import Conversation, Shown, fit
from tether.context.records import SLOTS, BuiltContext, ContextItem, ContextReport, Hit, Trigger
from tether.context.render import (
    item_handle,
    memory_block,
    memory_line,
    pins_block,
    summary_block,
    system_text,
)
from tether.context.retrieval import Retriever, fuse, terms, window_retriever
from tether.context.settings import DEFAULT_SETTINGS, ContextSettings
from tether.context.tokens import DEFAULT_COUNTER, MessageCosts, TokenCounter, costs_for
from tether.context.view import LogView, Unit
from tether.llm.types import Message

#: a memory slot smaller than this is not worth a retrieval
MIN_MEMORY_TOKENS = 24


def snapshot(source: Any) -> list[ContextItem]:
    """The items of a ``WindowLog`` (read once) or of a sequence of items."""
    if isinstance(source, Sequence):
        return list(source)
    return list(source.items())


def build(
    log: Any,
    *,
    budget: int,
    system: str | None = None,
    counter: TokenCounter | None = None,
    query: str | None = None,
    retriever: Retriever | Sequence[Retriever] | None = None,
    settings: ContextSettings | None = None,
    cache: object | None = None,
) -> BuiltContext:
    """Build the messages of a window (a ``WindowLog`` or its items) within ``budget`` tokens.

    Token counts and the default BM25 index are kept per log between builds; when ``log`` is
    a list of items, ``cache`` is the (weakly referenced) object to keep them on, e.g. the
    window object that read the items.

    ``retriever`` fills the memory slot (several are fused by rank); by default a BM25
    index of the window's own messages. ``query`` defaults to the last user message.
    Raises ``ContextBudgetError`` when the budget cannot hold the system prompt and the pins
    (or the newest user message once shortened): the error names the numbers and the fix.
    """
    settings = settings or DEFAULT_SETTINGS
    items = snapshot(log)
    owner = cache if cache is not None else (None if isinstance(log, Sequence) else log)
    costs = costs_for(counter or DEFAULT_COUNTER, owner)
    costs.bound(len(items))
    view = LogView.of(items)
    head = _Head(system, view, costs)
    head.check_fits(budget)
    live = view.live_units()
    full_tokens = head.tokens() + sum(
        costs.of(u.message) + sum(costs.of(m) for m in u.sent_results) for u in live
    )
    reserve = int(settings.memory_share * budget)
    conv, left = _conversation(live, costs, budget - head.tokens(), settings, budget)
    memory_room = fit(conv, budget - head.tokens(), reserve, left=left)
    if memory_room < 0 and head.summary:  # the newest turn matters more than the summary
        head.summary = ""
        conv, left = _conversation(live, costs, budget - head.tokens(), settings, budget)
        memory_room = fit(conv, budget - head.tokens(), reserve, left=left)
    if memory_room < 0:
        raise ContextBudgetError(
            f"the budget of {budget} tokens cannot hold the system prompt and pins "
            f"({head.fixed} tokens) plus the newest user message even shortened "
            f"({conv.total} tokens): raise budget= or shorten system=/the pins",
            budget=budget,
            needed=head.fixed + conv.total,
        )
    hits: list[Hit] = []
    if settings.retrieve_k and settings.memory_share:
        room_for_memory = min(memory_room, int(settings.memory_share * budget))
        if room_for_memory >= MIN_MEMORY_TOKENS:
            q = query if query is not None else view.last_user_text()
            if q:
                k = min(settings.retrieve_k * 2 + len(conv.seqs()), 200)
                hits = _search(retriever, items, owner, q, k)
            head.fill_memory(hits, conv.seqs(), view, room_for_memory, settings, q or "")
    _refill(conv, budget - head.tokens())
    messages, sources = _assemble(head, conv)
    total = costs.total(messages)
    while total > budget and head.memory_lines:  # a counter that is not additive
        head.drop_memory_line()
        messages, sources = _assemble(head, conv)
        total = costs.total(messages)
    while total > budget and len(conv.shown) > 1:  # older turns first, then the newest
        if conv.shown[0].unit.turn != conv.newest_turn():  # turn's units after its question
            conv.drop_first()
            while len(conv.shown) > 1 and conv.shown[0].unit.role != "user":
                conv.drop_first()
        else:
            conv.drop_at(1)
        messages, sources = _assemble(head, conv)
        total = costs.total(messages)
    if total > budget:
        raise ContextBudgetError(
            f"the budget of {budget} tokens cannot hold these messages ({total} tokens by the "
            "counter, which counts more than the sum of the messages): raise budget=",
            budget=budget,
            needed=total,
        )
    report = _report(budget, total, full_tokens, head, conv, view, messages, settings)
    built = BuiltContext(messages=messages, report=report, sources=sources)
    check_build(built, system=system, pins=view.pins)
    return built


def _conversation(
    live: list[Unit], costs: MessageCosts, room: int, settings: ContextSettings, budget: int
) -> tuple[Conversation, bool]:
    """The conversation of the units that could be shown, and whether some could not."""
    shown = _candidates(live, costs, room)
    users = [u for u in live if u.role == "user"]
    first = live.index(users[0]) if users else len(live)
    left = len(shown) < len(live) - first
    return Conversation(shown, costs, _stub_sized(settings, budget)), left


def _candidates(live: list[Unit], costs: MessageCosts, room: int) -> list[Unit]:
    """The units that could be shown: the newest ones whose texts alone fit the room (an
    older one could never be), the newest turn's user message, from a user message on."""
    start, used = len(live), 0
    while start > 0 and used + costs.of(live[start - 1].message) <= room:
        start -= 1
        used += costs.of(live[start].message)
    shown = live[start:]
    newest = live[-1].turn if live else -1
    anchor = next((u for u in live[:start] if u.role == "user" and u.turn == newest), None)
    if anchor is not None and newest >= 0:
        shown = [anchor, *(u for u in shown if u.turn == newest)]
    while shown and shown[0].role != "user":  # a conversation starts with a user message
        shown = shown[1:]
    return shown


def _stub_sized(settings: ContextSettings, budget: int) -> ContextSettings:
    """A stub shows at most about 5% of the budget (at four characters a token)."""
    cap = max(90, int(budget * 0.05 * 4))
    head, tail = (
        min(settings.stub_head_chars, cap * 2 // 3),
        min(settings.stub_tail_chars, cap // 3),
    )
    if (head, tail) == (settings.stub_head_chars, settings.stub_tail_chars):
        return settings
    return settings.model_copy(update={"stub_head_chars": head, "stub_tail_chars": tail})


def _search(
    retriever: Retriever | Sequence[Retriever] | None,
    items: list[ContextItem],
    owner: object | None,
    query: str,
    k: int,
) -> list[Hit]:
    if retriever is None:
        return window_retriever(items, owner).search(query, k)
    if isinstance(retriever, Sequence):
        return fuse((r.search(query, k) for r in retriever), k)
    return retriever.search(query, k)


def _refill(conv: Conversation, room: int) -> None:
    """Turns dropped to make room for a memory slot that came out smaller come back, newest
    first and whole, while they fit."""
    while conv.dropped:
        turn = conv.dropped[-1].unit.turn
        group: list[Shown] = []
        for shown in reversed(conv.dropped):
            if shown.unit.turn != turn:
                break
            group.insert(0, shown)
        starts_turn = group[0].unit.role == "user"
        nxt = conv.shown[0].unit if conv.shown else None
        if not starts_turn or nxt is None or nxt.role != "user" or nxt.turn != turn + 1:
            return
        if conv.total + sum(s.cost for s in group) > room:
            return
        conv.restore_before(group)


class _Head:
    """The system message: system prompt, pins, summary, memory slot."""

    def __init__(self, system: str | None, view: LogView, costs: MessageCosts) -> None:
        self.system = system or ""
        self.pins = pins_block(view.pins)
        self.summary = summary_block(view.summary)
        self.costs = costs
        self.memory_lines: list[str] = []
        self.memory_ids: list[str] = []
        self.fixed = self._count(self.system, self.pins)
        self.system_only = self._count(self.system)
        self.pin_names = [p.name for p in view.pins]

    def _count(self, *sections: str) -> int:
        text = system_text(*sections) if sections else ""
        if not text:
            return self.costs.base
        return self.costs.total([Message(role="system", content=text)])

    def check_fits(self, budget: int) -> None:
        if self.fixed > budget:
            raise ContextBudgetError(
                f"the budget of {budget} tokens cannot hold the system prompt "
                f"({self.system_only} tokens) and the pinned facts "
                f"({self.fixed - self.system_only} tokens, pins: {self.pin_names or 'none'}): "
                f"raise budget= to at least {self.fixed} (or use a model with a larger "
                "window), shorten system=, or unpin something",
                budget=budget,
                needed=self.fixed,
            )
        if self._count(self.system, self.pins, self.summary) > budget:
            self.summary = ""  # a budget too small for the summary shows the turns alone

    def sections(self) -> list[str]:
        return [self.pins, self.summary, memory_block(self.memory_lines)]

    def text(self) -> str:
        return system_text(self.system, *self.sections())

    def tokens(self) -> int:
        return self._count(self.system, *self.sections())

    def fill_memory(
        self,
        hits: list[Hit],
        shown: set[int],
        view: LogView,
        room: int,
        settings: ContextSettings,
        query: str = "",
    ) -> None:
        """The best hits not already shown, as lines, in message order, within ``room``;
        a long hit shows the passage that matches the query best."""
        chosen: list[tuple[int, str, str]] = []
        count = self.costs.counter.count
        focus = set(terms(query))
        asked = " ".join(query.split()).lower()
        for hit in hits:
            if len(chosen) >= settings.retrieve_k:
                break
            seq = _item_seq(hit.id)
            if seq is not None and (seq in shown or seq not in view.by_seq):
                continue
            if " ".join(hit.text.split()).lower() == asked:
                continue  # the same question asked before adds nothing
            item = view.by_seq.get(seq) if seq is not None else None
            for max_chars in (settings.max_hit_chars, settings.max_hit_chars // 3):
                line = memory_line(hit, item, max_chars, focus)
                trial = sorted([*chosen, (seq if seq is not None else -1, hit.id, line)])
                if count(memory_block([t[2] for t in trial])) + 2 <= room:  # + the separator
                    chosen = trial
                    break
        self.memory_lines = [t[2] for t in chosen]
        self.memory_ids = [t[1] for t in chosen]

    def drop_memory_line(self) -> None:
        self.memory_lines.pop()
        self.memory_ids.pop()


def _item_seq(hit_id: str) -> int | None:
    if hit_id.startswith("item:"):
        try:
            return int(hit_id[5:])
        except ValueError:
            return None
    return None


def _assemble(head: _Head, conv: Conversation) -> tuple[list[Message], list[list[int]]]:
    messages: list[Message] = []
    sources: list[list[int]] = []
    text = head.text()
    if text:
        messages.append(Message(role="system", content=text))
        sources.append([])
    for part in conv.parts():
        m, seq = part.sent, part.item.seq
        prev = messages[-1] if messages else None
        mergeable = prev is not None and prev.role == m.role and m.role in ("user", "assistant")
        if mergeable and prev is not None and not prev.tool_calls:
            content = "\n\n".join(c for c in (prev.content, m.content) if c)
            messages[-1] = m.model_copy(update={"content": content})
            sources[-1].append(seq)
        else:
            messages.append(m)
            sources.append([seq])
    return messages, sources


def _report(
    budget: int,
    total: int,
    full_tokens: int,
    head: _Head,
    conv: Conversation,
    view: LogView,
    messages: list[Message],
    settings: ContextSettings,
) -> ContextReport:
    slots = dict.fromkeys(SLOTS, 0)
    costs = head.costs
    for m in messages:
        if m.role != "system":
            slots["tool_results" if m.role == "tool" else "recent"] += costs.of(m)
    count = costs.counter.count
    slots["pinned"] = count(head.pins) if head.pins else 0
    slots["summary"] = count(head.summary) if head.summary else 0
    slots["memory"] = count(memory_block(head.memory_lines)) if head.memory_lines else 0
    rest = total - sum(slots.values())  # the system prompt and the request's own overhead
    slots["system" if messages and messages[0].role == "system" else "recent"] += rest
    trigger: Trigger = "none"
    if full_tokens >= settings.hard_trigger * budget:
        trigger = "hard"
    elif full_tokens >= settings.soft_trigger * budget:
        trigger = "soft"
    parts = list(conv.parts())
    shown_units = {s.unit.key for s in conv.shown}
    return ContextReport(
        budget=budget,
        tokens=total,
        slots=slots,
        stubbed=[item_handle(p.item) for p in parts if p.form in ("stub", "cut")],
        cleared=[item_handle(p.item) for p in parts if p.form == "cleared"],
        summarized_through=view.summary.through_seq if view.summary and head.summary else None,
        retrieved=list(head.memory_ids),
        trigger=trigger,
        full_tokens=full_tokens,
        dropped=sum(1 for u in view.live_units() if u.key not in shown_units),
        omitted_calls=list(view.omitted),
    )
