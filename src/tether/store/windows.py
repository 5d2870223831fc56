"""Context windows in the store: one row per window and its append-only log of items.

``append`` is the one write: in a single transaction it locks the window's row, checks the
batch with the core's rules (``tether.context.validate_append``, given the part of the log
the batch touches: the write keys it reuses, the tool calls it answers or makes, the pins,
the summary in force), inserts the new items, records tool calls and their results, and
swaps in a new summary. Because it takes a ``Tx``, ``ctx.step.llm`` runs it inside the
transaction of its step's checkpoint.

Each item's JSON is a payload: it goes through ``tx.codec`` with the window's subject.
What SQL matches on is not: the window key, write keys, artifact handles (hashes), tool
call ids.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from tether.errors import ConfigurationError
from tether.store.executor import Tx

if TYPE_CHECKING:  # the context package is imported on first use (it pulls in the LLM layer)
    from tether.context.log import LogIndex
    from tether.context.records import ContextItem

_PAYLOAD_EXCLUDE = {"seq", "created_at", "key"}
ITEM_COLUMNS = "seq, created_at, write_key, payload"


@dataclass(slots=True)
class WindowRow:
    key: str
    subject: str | None
    model: str | None
    created_at: float
    updated_at: float
    last_seq: int
    generation: int
    summary_seq: int | None


_ROW = "key, subject, model, created_at, updated_at, last_seq, generation, summary_seq"


def _row(r: Any) -> WindowRow:
    return WindowRow(r[0], r[1], r[2], r[3], r[4], int(r[5]), int(r[6]), r[7])


def when(ts: float) -> datetime:
    return datetime.fromtimestamp(ts, UTC)


def encode(tx: Tx, item: ContextItem, subject: str | None) -> str:
    text = item.model_dump_json(exclude=_PAYLOAD_EXCLUDE, exclude_defaults=True)
    return tx.codec.encode(text, subject)


def decode(codec: Any, r: Any, subject: str | None) -> ContextItem:
    """An item from a row of ``ITEM_COLUMNS``."""
    from tether.context.records import ContextItem

    data = json.loads(codec.decode(r[3], subject))
    data["seq"] = int(r[0])
    data["created_at"] = when(r[1])
    data["key"] = r[2]
    return ContextItem.model_validate(data)


# ---------------------------------------------------------------------------- writes


def open_window(tx: Tx, key: str, subject: str | None, model: str | None, now: float) -> WindowRow:
    """The window's row, created on first use and locked until commit."""
    if not isinstance(key, str) or not key.strip():
        raise ConfigurationError(f"a context window needs a non-empty string key, got {key!r}")
    tx.execute(
        "INSERT INTO windows (key, subject, model, created_at, updated_at) VALUES (?,?,?,?,?) "
        "ON CONFLICT (key) DO NOTHING",
        (key, subject, model, now, now),
    )
    row = _row(tx.one(f"SELECT {_ROW} FROM windows WHERE key=?{{lock}}", (key,)))
    unowned = subject is not None and row.subject is None
    if unowned and tx.one("SELECT 1 FROM window_items WHERE window_key=? LIMIT 1", (key,)) is None:
        tx.execute("UPDATE windows SET subject=? WHERE key=?", (subject, key))
        row.subject = subject
    if subject is not None and row.subject != subject:
        raise ConfigurationError(
            f"context window {key!r} belongs to subject {row.subject!r}, not {subject!r}: "
            "a window keeps the subject it was opened with; use another key"
        )
    return row


def _index(tx: Tx, row: WindowRow, items: Sequence[ContextItem]) -> LogIndex:
    """The part of the log ``validate_append`` needs for this batch."""
    from tether.context.log import LogIndex
    from tether.context.records import ContextItem

    index = LogIndex(last_seq=row.last_seq)
    good = [i for i in items if isinstance(i, ContextItem)]
    keys = [i.key for i in good if i.key is not None]
    if keys:
        where, params = tx.in_("write_key", keys)
        for r in tx.all(
            f"SELECT {ITEM_COLUMNS} FROM window_items WHERE window_key=? AND {where}",
            (row.key, *params),
        ):
            held = decode(tx.codec, r, row.subject)
            index.keys[held.key or ""] = held
    ids: set[str] = set()
    for i in good:
        if i.message is not None:
            ids.update(c.id for c in i.message.tool_calls)
            if i.message.tool_call_id:
                ids.add(i.message.tool_call_id)
    if ids:
        where, params = tx.in_("call_id", sorted(ids))
        for call_id, result_seq in tx.all(
            f"SELECT call_id, result_seq FROM window_calls WHERE window_key=? AND {where}",
            (row.key, *params),
        ):
            index.calls.add(call_id)
            if result_seq is not None:
                index.answered.add(call_id)
    if any(i.kind == "pin" for i in good):
        index.pins = current_pins(tx, row)
    if any(i.kind == "summary" for i in good) and row.summary_seq is not None:
        index.summary = item_at(tx, row, row.summary_seq)
    return index


def append(
    tx: Tx,
    key: str,
    items: Sequence[ContextItem],
    now: float,
    *,
    subject: str | None = None,
    model: str | None = None,
    origins: Sequence[tuple[str, int] | None] | None = None,
) -> list[ContextItem]:
    """Append ``items`` to window ``key`` (created on first use) in this transaction: every
    item or none. An item whose write key the window holds is not appended again; the held
    one is returned. ``origins[i]`` is the (run, write number) that wrote item ``i``."""
    from tether.context.errors import InvalidContextItem
    from tether.context.log import supersedes, validate_append
    from tether.context.records import ContextItem

    if isinstance(items, ContextItem) or not isinstance(items, Sequence):
        raise InvalidContextItem(f"append takes a list of items, got {type(items).__name__}")
    if origins is not None and len(origins) != len(items):
        raise InvalidContextItem(f"{len(items)} items but {len(origins)} origins")
    row = open_window(tx, key, subject, model, now)
    held = validate_append(_index(tx, row, items), items)
    out: list[ContextItem] = []
    seq, summary_seq = row.last_seq, row.summary_seq
    summary_through: int | None = None
    if summary_seq is not None and any(i.kind == "summary" for i in items):
        current = item_at(tx, row, summary_seq)
        summary_through = current.through_seq if current is not None else None
    created = when(now)
    for pos, (item, existing) in enumerate(zip(items, held, strict=True)):
        if existing is not None:
            out.append(existing)
            continue
        seq += 1
        origin = origins[pos] if origins is not None else None
        tx.execute(
            "INSERT INTO window_items (window_key, seq, kind, handle, write_key, origin_run, "
            "origin_write, created_at, payload) VALUES (?,?,?,?,?,?,?,?,?)",
            (
                key,
                seq,
                item.kind,
                item.handle if item.kind == "artifact" else None,
                item.key,
                origin[0] if origin else None,
                origin[1] if origin else None,
                now,
                encode(tx, item, row.subject),
            ),
        )
        m = item.message
        if m is not None:
            for call in m.tool_calls:
                tx.execute(
                    "INSERT INTO window_calls (window_key, call_id, call_seq) VALUES (?,?,?)",
                    (key, call.id, seq),
                )
            if m.role == "tool" and m.tool_call_id:
                tx.execute(
                    "UPDATE window_calls SET result_seq=? WHERE window_key=? AND call_id=?",
                    (seq, key, m.tool_call_id),
                )
        if item.kind == "summary":
            stand_in = ContextItem(kind="summary", through_seq=summary_through)
            if summary_seq is None or supersedes(item, stand_in):
                summary_seq, summary_through = seq, item.through_seq
        out.append(item.model_copy(update={"seq": seq, "created_at": created}))
    if seq != row.last_seq:
        tx.execute(
            "UPDATE windows SET last_seq=?, summary_seq=?, updated_at=? WHERE key=?",
            (seq, summary_seq, now, key),
        )
    return out


def clear(tx: Tx, key: str, now: float) -> int:
    """Delete every item of window ``key`` for good; the key can be used again."""
    n = tx.changed("DELETE FROM window_items WHERE window_key=?", (key,))
    tx.execute("DELETE FROM window_calls WHERE window_key=?", (key,))
    tx.execute(
        "UPDATE windows SET generation=generation+1, summary_seq=NULL, updated_at=? WHERE key=?",
        (now, key),
    )
    return n


def delete_subject(tx: Tx, subject: str) -> dict[str, int]:
    """Delete every window of ``subject`` with its items: counts of windows and items."""
    keys = [r[0] for r in tx.all("SELECT key FROM windows WHERE subject=?", (subject,))]
    items = 0
    for key in keys:
        items += tx.changed("DELETE FROM window_items WHERE window_key=?", (key,))
        tx.execute("DELETE FROM window_calls WHERE window_key=?", (key,))
    windows = tx.changed("DELETE FROM windows WHERE subject=?", (subject,))
    return {"windows": windows, "items": items}


# ---------------------------------------------------------------------------- reads


def window(tx: Tx, key: str) -> WindowRow | None:
    r = tx.one(f"SELECT {_ROW} FROM windows WHERE key=?", (key,))
    return None if r is None else _row(r)


def items_after(tx: Tx, row: WindowRow, after: int = 0) -> list[ContextItem]:
    rows = tx.all(
        f"SELECT {ITEM_COLUMNS} FROM window_items WHERE window_key=? AND seq>? ORDER BY seq",
        (row.key, after),
    )
    return [decode(tx.codec, r, row.subject) for r in rows]


def item_at(tx: Tx, row: WindowRow, seq: int) -> ContextItem | None:
    r = tx.one(
        f"SELECT {ITEM_COLUMNS} FROM window_items WHERE window_key=? AND seq=?", (row.key, seq)
    )
    return None if r is None else decode(tx.codec, r, row.subject)


def current_pins(tx: Tx, row: WindowRow) -> dict[str, ContextItem]:
    pins: dict[str, ContextItem] = {}
    for r in tx.all(
        f"SELECT {ITEM_COLUMNS} FROM window_items WHERE window_key=? AND kind='pin' ORDER BY seq",
        (row.key,),
    ):
        item = decode(tx.codec, r, row.subject)
        if item.name is None:
            continue
        if item.text is None:
            pins.pop(item.name, None)
        else:
            pins[item.name] = item
    return pins


def artifact(tx: Tx, row: WindowRow, handle: str) -> ContextItem | None:
    r = tx.one(
        f"SELECT {ITEM_COLUMNS} FROM window_items WHERE window_key=? AND handle=? "
        "AND kind='artifact' ORDER BY seq LIMIT 1",
        (row.key, handle),
    )
    return None if r is None else decode(tx.codec, r, row.subject)


def origins(tx: Tx, key: str, run_id: str) -> dict[int, int]:
    """seq -> write number of the items run ``run_id`` wrote to window ``key``."""
    rows = tx.all(
        "SELECT seq, origin_write FROM window_items WHERE window_key=? AND origin_run=?",
        (key, run_id),
    )
    return {int(s): int(w) for s, w in rows}


def keys_of(tx: Tx, subject: str) -> list[str]:
    return [
        r[0] for r in tx.all("SELECT key FROM windows WHERE subject=? ORDER BY key", (subject,))
    ]


def listing(tx: Tx, limit: int) -> list[dict[str, Any]]:
    """The most recently updated windows with their item counts (the dashboard's list)."""
    rows = tx.all(
        f"SELECT {_ROW}, (SELECT count(*) FROM window_items i WHERE i.window_key=w.key) "
        "FROM windows w ORDER BY updated_at DESC, key LIMIT ?",
        (limit,),
    )
    return [{**describe(_row(r)), "items": int(r[8])} for r in rows]


def describe(row: WindowRow) -> dict[str, Any]:
    return {
        "key": row.key,
        "subject": row.subject,
        "model": row.model,
        "created_at": when(row.created_at).isoformat(),
        "updated_at": when(row.updated_at).isoformat(),
        "last_seq": row.last_seq,
        "summary_seq": row.summary_seq,
    }


def export(tx: Tx, key: str) -> dict[str, Any] | None:
    """Window ``key`` as one JSON-serialisable document (None when there is no such window)."""
    row = window(tx, key)
    if row is None:
        return None
    items = items_after(tx, row)
    return {**describe(row), "items": [i.model_dump(mode="json") for i in items]}


def run_reports(tx: Tx, run_id: str) -> dict[str, dict[str, Any]]:
    """The context report of each ``ctx.step.llm(context=...)`` step of a run, by step id:
    {"window": key, "seq": item seq, "report": ContextReport as JSON}."""
    rows = tx.all(
        f"SELECT i.window_key, w.subject, {', '.join('i.' + c for c in ITEM_COLUMNS.split(', '))} "
        "FROM window_items i JOIN windows w ON w.key = i.window_key "
        "WHERE i.origin_run=? AND i.kind='message' ORDER BY i.seq",
        (run_id,),
    )
    out: dict[str, dict[str, Any]] = {}
    for r in rows:
        item = decode(tx.codec, r[2:], r[1])
        step = item.meta.get("step")
        if step and "report" in item.meta:
            out[str(step)] = {"window": r[0], "seq": item.seq, "report": item.meta["report"]}
    return out
