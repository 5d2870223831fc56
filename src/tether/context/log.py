"""The append-only log of one window: the interface, its shared rules, and an in-memory
implementation that is the reference every other implementation must match
(``tests/context/conformance.py`` checks any of them).

An implementation keeps a ``LogIndex`` of what it holds (or answers the same questions from
its tables) and calls ``validate_append`` inside the transaction that appends: the rules
live in one place, each backend only stores.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Protocol, runtime_checkable

from tether.context.errors import InvalidContextItem, StaleCompaction, WriteKeyConflict
from tether.context.items import check_message
from tether.context.records import ContextItem


@runtime_checkable
class WindowLog(Protocol):
    """One window's items. ``append`` is atomic: every item is appended, or none and it
    raises. An item whose ``key`` the log holds is not appended again: the held one is
    returned in its place."""

    def append(self, items: Sequence[ContextItem]) -> list[ContextItem]: ...

    def items(self, after: int = 0) -> list[ContextItem]:
        """The items with ``seq > after``, in order."""
        ...

    def pins(self) -> dict[str, ContextItem]:
        """The current pin of each name (unpinned names left out)."""
        ...

    def summary(self) -> ContextItem | None:
        """The summary in force: the highest ``through_seq``, the newest among equals."""
        ...

    def artifact(self, handle: str) -> ContextItem | None: ...

    def clear(self) -> int:
        """Delete every item for good; returns how many. The log can be used again."""
        ...


@dataclass
class LogIndex:
    """What the rules need to know about a log's items."""

    calls: set[str] = field(default_factory=set)
    answered: set[str] = field(default_factory=set)
    pins: dict[str, ContextItem] = field(default_factory=dict)
    summary: ContextItem | None = None
    keys: dict[str, ContextItem] = field(default_factory=dict)
    artifacts: dict[str, ContextItem] = field(default_factory=dict)
    last_seq: int = 0

    @classmethod
    def of(cls, items: Iterable[ContextItem]) -> LogIndex:
        index = cls()
        for item in items:
            index.add(item)
        return index

    def add(self, item: ContextItem) -> None:
        """Record an appended item (with its seq)."""
        self.last_seq = max(self.last_seq, item.seq)
        if item.key is not None:
            self.keys[item.key] = item
        if item.kind in ("message", "artifact") and item.message is not None:
            self.calls.update(c.id for c in item.message.tool_calls)
            if item.message.role == "tool" and item.message.tool_call_id:
                self.answered.add(item.message.tool_call_id)
            if item.kind == "artifact" and item.handle:
                self.artifacts[item.handle] = item
        elif item.kind == "pin" and item.name is not None:
            if item.text is None:
                self.pins.pop(item.name, None)
            else:
                self.pins[item.name] = item
        elif item.kind == "summary" and supersedes(item, self.summary):
            self.summary = item


def supersedes(new: ContextItem, current: ContextItem | None) -> bool:
    if current is None:
        return True
    return (new.through_seq or 0) >= (current.through_seq or 0)


def validate_append(index: LogIndex, items: Sequence[ContextItem]) -> list[ContextItem | None]:
    """Check a batch against the log; for each item, the held item with its key (a replay)
    or None (to append). Raises, changing nothing, on the first bad item."""
    calls, answered = set(index.calls), set(index.answered)
    pins = set(index.pins)
    batch_keys: set[str] = set()
    summary = index.summary
    out: list[ContextItem | None] = []
    for pos, item in enumerate(items):
        if not isinstance(item, ContextItem):
            raise InvalidContextItem(
                f"item {pos} of the batch is a {type(item).__name__}, not a ContextItem; "
                "make items with tether.context.message_item / pin_item"
            )
        if item.key is not None:
            if item.key in batch_keys:
                raise InvalidContextItem(f"write key {item.key!r} is used twice in one batch")
            batch_keys.add(item.key)
            held = index.keys.get(item.key)
            if held is not None:
                if not held.same_write(item):
                    raise WriteKeyConflict(
                        f"write key {item.key!r} already names item #{held.seq} ({held.kind}), "
                        "which differs from this one: a replayed run must write the same items "
                        "in the same order (is something non-deterministic outside a step?)"
                    )
                out.append(held)
                continue
        if item.kind in ("message", "artifact"):
            _check_message_item(item, calls, answered)
        elif item.kind == "pin":
            _check_pin(item, pins)
        else:
            _check_summary(item, summary, index.last_seq)
            summary = item
        out.append(None)
    return out


def _check_message_item(item: ContextItem, calls: set[str], answered: set[str]) -> None:
    m = item.message
    if m is None:
        raise InvalidContextItem(f"a {item.kind} item needs a message")
    check_message(m)
    if item.kind == "artifact" and (m.role != "tool" or not item.handle):
        raise InvalidContextItem("an artifact is a tool result with a handle")
    if m.role == "tool":
        call_id = m.tool_call_id or ""
        if call_id not in calls:
            raise InvalidContextItem(
                f"tool result for unknown call id {call_id!r}: append the assistant message "
                "whose tool_calls include that id first (a result must answer a call)"
            )
        if call_id in answered:
            raise InvalidContextItem(
                f"tool call {call_id!r} already has a result; a call gets exactly one"
            )
        answered.add(call_id)
    for call in m.tool_calls:
        if call.id in calls:
            raise InvalidContextItem(
                f"tool call id {call.id!r} is already used in this window; ids must be unique"
            )
        calls.add(call.id)


def _check_pin(item: ContextItem, pins: set[str]) -> None:
    name = item.name or ""
    if not name.strip():
        raise InvalidContextItem("a pin needs a non-empty name")
    if item.text is None:
        if name not in pins:
            raise InvalidContextItem(
                f"no pin named {name!r} to unpin; pinned: {sorted(pins) or 'none'}"
            )
        pins.discard(name)
    else:
        pins.add(name)


def _check_summary(item: ContextItem, current: ContextItem | None, last_seq: int) -> None:
    if not (item.text or "").strip():
        raise InvalidContextItem("a summary needs text")
    if item.from_seq is None or item.through_seq is None or item.from_seq > item.through_seq:
        raise InvalidContextItem(
            f"a summary needs from_seq <= through_seq, got {item.from_seq}..{item.through_seq}"
        )
    if item.through_seq > last_seq:
        raise InvalidContextItem(
            f"summary through #{item.through_seq} covers items the log does not have "
            f"(last is #{last_seq})"
        )
    expected = current.seq if current is not None else None
    if item.meta.get("previous") != expected:
        raise StaleCompaction(
            f"the summary was planned on summary #{item.meta.get('previous')} but the window's "
            f"summary is now #{expected}: plan the compaction again"
        )
    if current is not None and (item.through_seq < (current.through_seq or 0)):
        raise StaleCompaction(
            f"summary through #{item.through_seq} would cover less than the current one "
            f"(through #{current.through_seq})"
        )


def _utcnow() -> datetime:
    return datetime.now(UTC)


class MemoryWindowLog:
    """A ``WindowLog`` in a Python list: for tests, for one process, and as the reference."""

    def __init__(self, clock: Callable[[], datetime] = _utcnow) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._items: list[ContextItem] = []
        self._index = LogIndex()
        self._next = 1

    def append(self, items: Sequence[ContextItem]) -> list[ContextItem]:
        with self._lock:
            held = validate_append(self._index, items)
            out: list[ContextItem] = []
            for item, existing in zip(items, held, strict=True):
                if existing is not None:
                    out.append(existing)
                    continue
                stored = item.model_copy(
                    update={"seq": self._next, "created_at": item.created_at or self._clock()}
                )
                self._next += 1
                self._items.append(stored)
                self._index.add(stored)
                out.append(stored)
            return out

    def items(self, after: int = 0) -> list[ContextItem]:
        with self._lock:
            return [i for i in self._items if i.seq > after]

    def pins(self) -> dict[str, ContextItem]:
        with self._lock:
            return dict(self._index.pins)

    def summary(self) -> ContextItem | None:
        with self._lock:
            return self._index.summary

    def artifact(self, handle: str) -> ContextItem | None:
        with self._lock:
            return self._index.artifacts.get(handle)

    def clear(self) -> int:
        with self._lock:
            n = len(self._items)
            self._items = []
            self._index = LogIndex(last_seq=0)
            return n
