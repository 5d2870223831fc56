"""What the summarizer reads: its prompt and the folded messages as numbered lines; and
``extractive_summarizer``, a summarizer that needs no model (it copies, never invents)."""

from __future__ import annotations

import json
import re

from tether.context.records import ContextItem, StructuredSummary, SummaryRequest
from tether.context.render import stub_text
from tether.context.settings import ContextSettings
from tether.context.terms import identifiers

SUMMARIZER_PROMPT = (
    "You keep the running summary of a conversation for an assistant whose context window is "
    "limited. Merge the previous summary (if any) with the new messages into one updated "
    "summary with these sections: Goal, Constraints, Progress, Decisions, Next steps, "
    "Critical context. Keep every identifier, file path, number, name, date and instruction "
    "that may matter later exactly as written. When a fact was updated, keep the newest value "
    "and say it changed. Write at most {words} words; no preamble."
)

#: answers that are not summaries: a summarizer that says this has failed
REFUSALS = (
    "error",
    "i'm sorry",
    "i am sorry",
    "sorry,",
    "i cannot",
    "i can't",
    "as an ai",
)


def transcript_line(item: ContextItem, settings: ContextSettings) -> str:
    m = item.message
    if m is None:
        return ""
    if m.role == "tool":
        body = stub_text(m.content, item.handle or f"item:{item.seq}", settings)
        return f"#{item.seq} tool result ({m.name or 'call ' + (m.tool_call_id or '')}): {body}"
    text = m.content
    for call in m.tool_calls:
        text += f" [called {call.name}({json.dumps(call.arguments, ensure_ascii=False)})]"
    return f"#{item.seq} {m.role}: {text.strip()}"


_LINE = re.compile(r"^#(\d+) (user|assistant|tool result[^:]*): (.*)$", re.S)
_RULE = re.compile(r"\b(must|never|always|don't|do not|only|should|required?|avoid)\b", re.I)


async def extractive_summarizer(request: SummaryRequest) -> StructuredSummary:
    """A summary made of the request's own words: the first user message as the goal,
    sentences that state rules as constraints, the last messages as progress and next step,
    and every protected term and identifier as critical context; cut to the size asked."""
    parsed = [m.groups() for line in request.lines if (m := _LINE.match(line))]
    users = [text for _, role, text in parsed if role == "user"]
    others = [text for _, role, text in parsed if role == "assistant"]
    budget = request.max_chars
    previous = _previous_goal(request.previous)
    goal = _clip(previous or (users[0] if users else ""), budget // 5)
    rules = [s for text in users for s in _sentences(text) if _RULE.search(s)]
    ids: list[str] = list(request.required)
    for text in [request.previous or "", *(t for _, _, t in parsed)]:
        ids += sorted(identifiers(text))
    critical = list(dict.fromkeys(ids))
    summary = StructuredSummary(
        goal=goal,
        constraints=[_clip(r, 160) for r in dict.fromkeys(rules)],
        progress=[_clip(t, 160) for t in others[-2:]],
        next_steps=[_clip(users[-1], 160)] if users else [],
        critical_context=[", ".join(critical)] if critical else [],
    )
    while len(summary.render()) > budget and (summary.constraints or summary.progress):
        if summary.progress:
            summary.progress.pop(0)
        else:
            summary.constraints.pop(0)
    return summary


def _previous_goal(previous: str | None) -> str:
    if not previous:
        return ""
    first = previous.splitlines()[0]
    return first[len("Goal: ") :] if first.startswith("Goal: ") else ""


def _sentences(text: str) -> list[str]:
    return [s.strip() for s in re.split(r"(?<=[.!?])\s+", text) if s.strip()]


def _clip(text: str, n: int) -> str:
    text = " ".join(text.split())
    return text if len(text) <= n else text[: max(1, n - 1)].rstrip() + "…"
