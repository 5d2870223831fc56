"""The text a build shows the model: the system message's sections, stubs and placeholders.

The system message is the system prompt, then the pinned facts (verbatim), then the running
summary, then the memory slot: the stable parts first, so a provider's prompt cache keeps
its prefix while only the memory slot changes.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Sequence

from tether.context.records import ContextItem, Hit
from tether.context.retrieval import terms
from tether.context.settings import ContextSettings

PINS_TITLE = "Pinned facts (current; they override anything older):"
SUMMARY_TITLE = "Summary of the earlier conversation:"
MEMORY_TITLE = "Retrieved from earlier (#n: message number; a later one supersedes):"


def pins_block(pins: Sequence[ContextItem]) -> str:
    if not pins:
        return ""
    return PINS_TITLE + "".join(f"\n[{p.name}]\n{p.text}" for p in pins)


#: how many handles of folded tool results the summary section lists (the newest)
MAX_HANDLES = 20


def summary_block(summary: ContextItem | None) -> str:
    if summary is None:
        return ""
    text = f"{SUMMARY_TITLE} (messages up to #{summary.through_seq})\n{summary.text}"
    handles = list(summary.meta.get("handles") or [])[-MAX_HANDLES:]
    if handles:
        text += "\nFull texts of folded tool results: " + ", ".join(
            f'recall(handle="{h}")' for h in handles
        )
    return text


def memory_block(lines: Sequence[str]) -> str:
    if not lines:
        return ""
    return MEMORY_TITLE + "".join("\n" + line for line in lines)


def system_text(system: str | None, *sections: str) -> str:
    return "\n\n".join(part for part in (system or "", *sections) if part)


def memory_line(
    hit: Hit, item: ContextItem | None, max_chars: int, focus: Collection[str] = ()
) -> str:
    text = snippet(hit.text, focus, max_chars)
    if item is not None and item.message is not None:
        role: str = item.message.role
        if role == "tool":
            role = f"tool result {item.message.name or ''}".rstrip()
        return f"- #{item.seq} {role}: {text}"
    return f"- {hit.id}: {text}"


def snippet(text: str, focus: Collection[str], max_chars: int) -> str:
    """At most ``max_chars`` of ``text`` (whitespace folded): all of it when it fits, else
    the passage around the line or sentence that holds the most ``focus`` terms."""
    flat = " ".join(text.split())
    if len(flat) <= max_chars:
        return flat
    pieces = [p for p in re.split(r"\n+|(?<=[.!?])\s+", text) if p.strip()]
    best = max(range(len(pieces)), key=lambda i: (_overlap(pieces[i], focus), -i))
    lo = hi = best
    out = " ".join(pieces[best].split())
    while True:
        grown = False
        for j in (hi + 1, lo - 1):
            if 0 <= j < len(pieces):
                piece = " ".join(pieces[j].split())
                if len(out) + len(piece) + 1 <= max_chars - 2:
                    out = f"{out} {piece}" if j > hi else f"{piece} {out}"
                    lo, hi, grown = min(lo, j), max(hi, j), True
        if not grown:
            break
    if len(out) > max_chars - 2:
        out = out[: max_chars - 3].rstrip()
    return ("…" if lo > 0 else "") + out + ("…" if hi < len(pieces) - 1 else "")


def _overlap(piece: str, focus: Collection[str]) -> int:
    return len(set(terms(piece)) & set(focus))


def stub_text(content: str, handle: str, settings: ContextSettings) -> str:
    """Head, tail and the handle of a large text."""
    head = content[: settings.stub_head_chars]
    tail = content[-settings.stub_tail_chars :] if settings.stub_tail_chars else ""
    omitted = len(content) - len(head) - len(tail)
    if omitted <= 0:
        return content
    return (
        f"[{len(content)} characters, shortened to fit the context window; the full text: "
        f'recall(handle="{handle}")]\n{head}\n[... {omitted} characters omitted ...]\n{tail}'
    )


def cleared_text(content: str, handle: str) -> str:
    return (
        f"[an older tool result of {len(content)} characters, cleared to fit the context "
        f'window; the full text: recall(handle="{handle}")]'
    )


def item_handle(item: ContextItem) -> str:
    """The handle ``recall`` takes for an item: its artifact handle, else ``item:<seq>``."""
    return item.handle or f"item:{item.seq}"
