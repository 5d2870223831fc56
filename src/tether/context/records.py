"""The records of a context window: log items, what a build returns, what a compaction did.

All are pydantic models that survive ``model_dump(mode="json")`` and ``model_validate``:
they are stored, checkpointed and shown on the dashboard.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from tether.llm.types import Message

ItemKind = Literal["message", "pin", "summary", "artifact"]
Trigger = Literal["none", "soft", "hard"]
SLOTS = ("system", "pinned", "memory", "summary", "recent", "tool_results")


class ContextItem(BaseModel):
    """One entry of a window's append-only log.

    - ``message``: a user or assistant message, or a tool result (``tool_call_id`` set).
    - ``artifact``: a large tool result; ``message`` holds it whole, ``handle`` names it and
      builds may show it as a stub (head, tail and the handle) that ``recall(handle)`` undoes.
    - ``pin``: ``name`` and ``text``, shown verbatim in every build; a later pin of the same
      name replaces it, and one with ``text=None`` unpins it.
    - ``summary``: ``text`` stands for every message unit whose first item has a ``seq`` at
      most ``through_seq``, except those in ``kept`` (kept verbatim). The summary with the
      highest ``through_seq`` wins (the newest among equals); ``meta["previous"]`` is the
      summary it replaced, so a summary planned on a stale window is refused.

    ``seq`` and ``created_at`` are given by the log on append (0 and None before). ``key``
    makes a write idempotent: appending an item whose key the log holds returns that item.
    """

    model_config = ConfigDict(frozen=True)

    seq: int = 0
    kind: ItemKind
    message: Message | None = None
    name: str | None = None
    created_at: datetime | None = None
    text: str | None = None
    tool_call_id: str | None = None
    handle: str | None = None
    from_seq: int | None = None
    through_seq: int | None = None
    kept: list[int] = Field(default_factory=list)
    key: str | None = None
    meta: dict[str, Any] = Field(default_factory=dict)

    @property
    def content(self) -> str:
        """The text this item carries: the message content, or the pin or summary text."""
        if self.message is not None:
            return self.message.content
        return self.text or ""

    def same_write(self, other: ContextItem) -> bool:
        """Whether two items are the same write (what a replay must reproduce)."""
        fields = ("kind", "message", "name", "text", "tool_call_id", "from_seq", "through_seq")
        return all(getattr(self, f) == getattr(other, f) for f in fields)


class Hit(BaseModel):
    """One retrieval result. ``id`` is ``"item:<seq>"`` for a window item or
    ``"memory:<id>"`` for a long-term memory."""

    id: str
    text: str
    score: float


class ContextReport(BaseModel):
    """What a build put in the window, and why.

    ``tokens`` is the count of the built messages and never exceeds ``budget``; ``slots``
    splits it (system / pinned / memory / summary / recent / tool_results) and sums to it.
    ``full_tokens`` is what the window would take with nothing stubbed, cleared or left out:
    the triggers compare it with the budget (``trigger``: "soft" from ``soft_trigger``,
    "hard" from ``hard_trigger``). ``stubbed`` lists the handles of tool results shown as
    stubs, ``cleared`` those shown as a one-line placeholder; each placeholder names its
    handle. ``omitted_calls`` are tool calls left out because their result never came.
    """

    budget: int
    tokens: int
    slots: dict[str, int] = Field(default_factory=lambda: dict.fromkeys(SLOTS, 0))
    stubbed: list[str] = Field(default_factory=list)
    cleared: list[str] = Field(default_factory=list)
    summarized_through: int | None = None
    retrieved: list[str] = Field(default_factory=list)
    compacted: bool = False
    trigger: Trigger = "none"
    full_tokens: int = 0
    dropped: int = 0
    omitted_calls: list[str] = Field(default_factory=list)
    compaction_error: str | None = None


class BuiltContext(BaseModel):
    """The messages to send and the report. ``sources[i]`` lists the item seqs that message
    ``i`` was made from (empty for the system message)."""

    messages: list[Message]
    report: ContextReport
    sources: list[list[int]] = Field(default_factory=list)

    def included(self) -> set[int]:
        """Seqs of the items present verbatim (or as a stub) in the messages."""
        return {seq for group in self.sources for seq in group}


class Compaction(BaseModel):
    """What one compaction did: ``turns_folded`` messages became the summary ``summary_seq``;
    the window's full size went from ``tokens_before`` to ``tokens_after``."""

    turns_folded: int
    tokens_before: int
    tokens_after: int
    summary_seq: int

    @property
    def tokens_saved(self) -> int:
        return self.tokens_before - self.tokens_after


class StructuredSummary(BaseModel):
    """The summarizer's answer: the sections of a running summary."""

    goal: str = ""
    constraints: list[str] = Field(default_factory=list)
    progress: list[str] = Field(default_factory=list)
    decisions: list[str] = Field(default_factory=list)
    next_steps: list[str] = Field(default_factory=list)
    critical_context: list[str] = Field(default_factory=list)

    def render(self) -> str:
        parts = [f"Goal: {self.goal.strip()}"] if self.goal.strip() else []
        for title, lines in (
            ("Constraints", self.constraints),
            ("Progress", self.progress),
            ("Decisions", self.decisions),
            ("Next steps", self.next_steps),
            ("Critical context", self.critical_context),
        ):
            kept = [line.strip() for line in lines if line.strip()]
            if kept:
                parts.append(title + ":\n" + "\n".join(f"- {line}" for line in kept))
        return "\n".join(parts)


class SummaryRequest(BaseModel):
    """What the summarizer is asked. ``messages`` are ready for ``ctx.step.llm`` with
    ``output=StructuredSummary`` and ``max_tokens``; the other fields say the same as data."""

    key: str
    messages: list[Message]
    max_tokens: int
    model: str | None = None
    previous: str | None = None
    lines: list[str] = Field(default_factory=list)
    required: list[str] = Field(default_factory=list)
    max_chars: int = 0
