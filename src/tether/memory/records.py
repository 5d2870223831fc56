"""What a memory hands back: ``MemoryItem`` (one version of an item) and ``MemoryHit``."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime

from tether.store.memories import MemoryRow


@dataclass(frozen=True)
class MemoryItem:
    """One version of a memory item. ``supersedes`` is the id of the version it replaced."""

    id: str
    subject: str
    text: str
    source: str | None = None
    tags: tuple[str, ...] = ()
    created_at: datetime = field(default_factory=lambda: datetime.now(UTC))
    supersedes: str | None = None

    @classmethod
    def from_row(cls, row: MemoryRow) -> MemoryItem:
        return cls(
            row.id,
            row.subject,
            row.text,
            row.source,
            row.tags,
            datetime.fromtimestamp(row.created_at, UTC),
            row.supersedes,
        )


@dataclass(frozen=True)
class MemoryHit:
    """A search result: the item and its fused ``score`` (0 to 1, higher is better)."""

    id: str
    text: str
    score: float
    created_at: datetime
    source: str | None = None
    tags: tuple[str, ...] = ()
    # Where it ranked in each retriever (1 = first), None where it was no candidate.
    text_rank: int | None = None
    vector_rank: int | None = None
    similarity: float | None = None
