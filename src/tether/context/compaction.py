"""Compaction: fold older turns into the running summary.

``plan_compaction`` picks the units to fold (whole units only, never the newest turns, never
pins) and writes the summarizer's request (the previous summary and the new messages, for a
structured answer); ``summary_item`` validates the answer and makes the summary record;
``apply`` appends it — one append, so a crash leaves the previous summary in force. A
summary that is not ``min_saving`` shorter than what it replaces, or that drops a
protected term (a pinned identifier, path or number present in the folded turns, or an
identifier or path of the previous summary), is refused: nothing changes. A summarizer that
raises changes nothing either; its error is never pasted into a prompt.

The summarizer is any ``async (SummaryRequest) -> StructuredSummary | str``; inside a
durable function the window wires it to a durable LLM step keyed by ``request.key``
(``hash(range, policy, model)``), so a replayed compaction reuses the step's answer.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from pydantic import BaseModel

from tether.context.build import build, snapshot
from tether.context.errors import CompactionRejected
from tether.context.log import WindowLog
from tether.context.records import (
    BuiltContext,
    Compaction,
    ContextItem,
    StructuredSummary,
    SummaryRequest,
)
from tether.context.render import pins_block, summary_block, system_text
from tether.context.retrieval import Retriever
from tether.context.settings import DEFAULT_SETTINGS, ContextSettings
from tether.context.terms import identifiers, missing, protected
from tether.context.tokens import DEFAULT_COUNTER, MessageCosts, TokenCounter, costs_for
from tether.context.transcript import REFUSALS, SUMMARIZER_PROMPT, transcript_line
from tether.context.view import LogView, Unit
from tether.llm.types import Message


class CompactionPlan(BaseModel):
    key: str
    from_seq: int
    through_seq: int
    kept: list[int]
    folded: list[int]  # seqs of every folded item (units' messages and results)
    previous: int | None
    tokens_before: int
    replaced_tokens: int  # the folded messages and the previous summary
    head: str  # the system prompt and the pins, as the system message shows them
    units_after: int  # the tokens of the units that stay
    required: list[str]
    handles: list[str]
    request: SummaryRequest
    budget: int


Summarizer = Callable[[SummaryRequest], Awaitable[StructuredSummary | str | dict[str, Any]]]


def plan_compaction(
    log: Any,
    *,
    budget: int,
    system: str | None = None,
    counter: TokenCounter | None = None,
    settings: ContextSettings | None = None,
    model: str | None = None,
    force: bool = False,
) -> CompactionPlan | None:
    """The compaction to run now, or None: below the soft trigger (unless ``force``), or
    when less than ``min_fold_share`` of the budget (any amount with ``force``) can fold."""
    settings = settings or DEFAULT_SETTINGS
    items = snapshot(log)
    costs = costs_for(counter or DEFAULT_COUNTER, None if isinstance(log, Sequence) else log)
    costs.bound(len(items))
    view = LogView.of(items)
    live = view.live_units()
    if not live:
        return None
    fixed = _system_tokens(costs, system, pins_block(view.pins))
    previous = summary_block(view.summary)
    unit_costs = [_unit_cost(costs, u) for u in live]
    before = _system_tokens(costs, system, pins_block(view.pins), previous) + sum(unit_costs)
    if not force and before < settings.soft_trigger * budget:
        return None
    keep_room = settings.target * budget - fixed - settings.summary_cap(budget)
    start = len(live) - 1  # the newest unit is always kept
    used = unit_costs[start] if live else 0
    while start > 0 and used + unit_costs[start - 1] <= keep_room:
        start -= 1
        used += unit_costs[start]
    folded, kept = _fold(live, start, costs, settings)
    folded_cost = sum(_unit_cost(costs, u) for u in folded)
    folded_keys = {u.key for u in folded}
    if not folded or (not force and folded_cost < settings.min_fold_share * budget):
        return None
    previous_cost = costs.counter.count(view.summary.text or "") if view.summary else 0
    pinned = protected(" ".join(p.text or "" for p in view.pins))
    folded_text = " ".join(i.content for u in folded for i in u.items)
    required = {t for t in pinned if t in folded_text}
    if view.summary is not None:
        required |= identifiers(view.summary.text or "")
    seqs = sorted(i.seq for u in folded for i in u.items)
    through = max(u.key for u in folded)
    first = view.summary.from_seq if view.summary is not None else None
    from_seq = min(first or seqs[0], seqs[0])
    prev_seq = view.summary.seq if view.summary is not None else None
    key = _key(from_seq, through, kept, seqs, prev_seq, settings.policy(), model)
    replaced = folded_cost + previous_cost
    lines = [transcript_line(i, settings) for u in folded for i in u.items]
    request = _request(
        key, view.summary, lines, sorted(required), replaced, settings.summary_cap(budget), model
    )
    handles = [i.handle for u in folded for i in u.items if i.handle]
    if view.summary is not None:
        handles = [*view.summary.meta.get("handles", []), *handles]
    return CompactionPlan(
        key=key,
        from_seq=from_seq,
        through_seq=through,
        kept=kept,
        folded=seqs,
        previous=prev_seq,
        tokens_before=before,
        replaced_tokens=replaced,
        head=system_text(system, pins_block(view.pins)),
        units_after=sum(
            c for u, c in zip(live, unit_costs, strict=True) if u.key not in folded_keys
        ),
        required=sorted(required),
        handles=handles,
        request=request,
        budget=budget,
    )


def _fold(
    live: list[Unit], start: int, costs: MessageCosts, settings: ContextSettings
) -> tuple[list[Unit], list[int]]:
    """The units before ``start`` that fold (within the summarizer's input), and the user
    message kept as the anchor of a turn whose later units stay."""
    candidates = live[:start]
    limit = settings.summarizer_input_tokens
    total, n = 0, 0
    for unit in candidates:
        cost = sum(costs.counter.count(transcript_line(i, settings)) for i in unit.items)
        if total + cost > limit and n:
            break
        total, n = total + cost, n + 1
    folded = candidates[:n]
    boundary = live[n] if n < len(live) else None
    kept: list[int] = []
    if boundary is not None and boundary.role != "user" and boundary.turn >= 0:
        anchor = next((u for u in folded if u.role == "user" and u.turn == boundary.turn), None)
        if anchor is not None:  # (else its user message was folded before: none to keep)
            folded = [u for u in folded if u is not anchor]
            kept = [anchor.key]
    return folded, kept


def _request(
    key: str,
    summary: ContextItem | None,
    lines: list[str],
    required: list[str],
    replaced: int,
    cap: int,
    model: str | None,
) -> SummaryRequest:
    limit = int(min(cap, replaced * 0.6))
    words = max(30, int(limit * 0.7))
    parts = []
    if summary is not None:
        parts.append(f"Previous summary:\n{summary.text}")
    parts.append("New messages to fold in (#n is the message number):\n" + "\n".join(lines))
    if required:
        parts.append("Keep these exactly as written: " + ", ".join(required))
    messages = [
        Message(role="system", content=SUMMARIZER_PROMPT.format(words=words)),
        Message(role="user", content="\n\n".join(parts)),
    ]
    return SummaryRequest(
        key=key,
        messages=messages,
        max_tokens=max(64, limit),
        model=model,
        previous=summary.text if summary is not None else None,
        lines=lines,
        required=required,
        max_chars=max(120, limit * 4),
    )


def summary_text(result: StructuredSummary | str | dict[str, Any]) -> str:
    if isinstance(result, StructuredSummary):
        return result.render()
    if isinstance(result, dict):
        return StructuredSummary.model_validate(result).render()
    return str(result).strip()


def check_summary(
    plan: CompactionPlan,
    text: str,
    *,
    counter: TokenCounter | None = None,
    settings: ContextSettings | None = None,
) -> list[str]:
    """Why ``text`` cannot replace what the plan folds (empty when it can)."""
    settings = settings or DEFAULT_SETTINGS
    counter = counter or DEFAULT_COUNTER
    if not text.strip():
        return ["the summary is empty"]
    problems = []
    if text.strip().lower().startswith(REFUSALS):
        problems.append("the summarizer answered with an error or a refusal, not a summary")
    tokens, limit = counter.count(text), (1 - settings.min_saving) * plan.replaced_tokens
    if tokens > limit:
        problems.append(
            f"the summary ({tokens} tokens) is not {settings.min_saving:.0%} shorter than "
            f"what it replaces ({plan.replaced_tokens} tokens)"
        )
    lost = missing(plan.required, text)
    if lost:
        problems.append(f"the summary drops protected terms: {', '.join(lost)}")
    return problems


def summary_item(
    plan: CompactionPlan,
    result: StructuredSummary | str | dict[str, Any],
    *,
    counter: TokenCounter | None = None,
    settings: ContextSettings | None = None,
) -> ContextItem:
    """The summary record for a valid answer; raises ``CompactionRejected`` otherwise."""
    text = summary_text(result)
    problems = check_summary(plan, text, counter=counter, settings=settings)
    if problems:
        raise CompactionRejected(problems)
    costs = MessageCosts(counter or DEFAULT_COUNTER)
    shown = ContextItem(
        kind="summary", text=text, through_seq=plan.through_seq, meta={"handles": plan.handles}
    )
    block = summary_block(shown)
    after = _system_tokens(costs, plan.head, block) + plan.units_after
    return ContextItem(
        kind="summary",
        text=text,
        from_seq=plan.from_seq,
        through_seq=plan.through_seq,
        kept=plan.kept,
        key=plan.key,
        meta={
            "previous": plan.previous,
            "tokens_before": plan.tokens_before,
            "tokens_after": min(after, plan.tokens_before),
            "folded": len(plan.folded),
            "handles": plan.handles,
            "model": plan.request.model,
        },
    )


def apply(
    log: WindowLog,
    plan: CompactionPlan,
    result: StructuredSummary | str | dict[str, Any],
    *,
    counter: TokenCounter | None = None,
    settings: ContextSettings | None = None,
) -> Compaction:
    """Validate and append the summary (one atomic append); returns what was done."""
    item = summary_item(plan, result, counter=counter, settings=settings)
    stored = log.append([item])[0]
    return Compaction(
        turns_folded=int(stored.meta.get("folded", len(plan.folded))),
        tokens_before=int(stored.meta["tokens_before"]),
        tokens_after=int(stored.meta["tokens_after"]),
        summary_seq=stored.seq,
    )


async def acompact(
    log: WindowLog,
    *,
    budget: int,
    summarizer: Summarizer,
    system: str | None = None,
    counter: TokenCounter | None = None,
    settings: ContextSettings | None = None,
    model: str | None = None,
    force: bool = False,
) -> Compaction | None:
    """Plan, summarize, validate and apply. None when there is nothing to fold; the
    summarizer's error or ``CompactionRejected`` propagates with the window unchanged."""
    plan = plan_compaction(
        log,
        budget=budget,
        system=system,
        counter=counter,
        settings=settings,
        model=model,
        force=force,
    )
    if plan is None:
        return None
    result = await summarizer(plan.request)
    return apply(log, plan, result, counter=counter, settings=settings)


async def abuild(
    log: WindowLog,
    *,
    budget: int,
    system: str | None = None,
    counter: TokenCounter | None = None,
    query: str | None = None,
    retriever: Retriever | list[Retriever] | None = None,
    settings: ContextSettings | None = None,
    summarizer: Summarizer | None = None,
    model: str | None = None,
) -> BuiltContext:
    """``build``, compacting first when the hard trigger is reached and a summarizer is
    set. A compaction that fails or is refused leaves the window as it was; the build then
    fits by stubbing, clearing and leaving turns out, and ``report.compaction_error`` says
    why (the error's type and message, never sent to the model)."""
    kwargs: dict[str, Any] = dict(
        budget=budget,
        system=system,
        counter=counter,
        query=query,
        retriever=retriever,
        settings=settings,
    )
    built = build(log, **kwargs)
    if built.report.trigger != "hard" or summarizer is None:
        return built
    try:
        done = await acompact(
            log,
            budget=budget,
            summarizer=summarizer,
            system=system,
            counter=counter,
            settings=settings,
            model=model,
        )
    except Exception as exc:  # the window is unchanged; the turns stay
        report = built.report.model_copy(
            update={"compaction_error": f"{type(exc).__name__}: {exc}"}
        )
        return built.model_copy(update={"report": report})
    if done is None:
        return built
    rebuilt = build(log, **kwargs)
    return rebuilt.model_copy(
        update={"report": rebuilt.report.model_copy(update={"compacted": True})}
    )


def _unit_cost(costs: MessageCosts, unit: Unit) -> int:
    return costs.of(unit.message) + sum(costs.of(m) for m in unit.sent_results)


def _system_tokens(costs: MessageCosts, system: str | None, *sections: str) -> int:
    text = system_text(system, *sections)
    return costs.total([Message(role="system", content=text)]) if text else costs.base


def _key(*parts: Any) -> str:
    data = json.dumps(parts, sort_keys=True, default=str)
    return "compact:" + hashlib.sha256(data.encode()).hexdigest()[:24]
