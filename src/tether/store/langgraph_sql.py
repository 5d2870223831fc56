"""The statements of LangGraph checkpoints (``tether.integrations.langgraph.TetherSaver``),
written once with ``?`` parameters and adapted to a backend by its ``Dialect``.

Checkpoints, their metadata and pending writes are serialised by LangGraph's serializer
(``serde.dumps_typed``: a type tag and bytes); ``encode``/``decode`` turn those into the
text kept in the payload columns, through the store's payload codec (``store.codec``), so
encryption at rest covers them.
"""

from __future__ import annotations

import base64
from collections.abc import Sequence
from typing import Any

from tether.codec import dumps, loads
from tether.store.dialect import Dialect
from tether.store.payloads import PayloadCodec

COLUMNS = "thread_id, checkpoint_ns, checkpoint_id, parent_checkpoint_id, checkpoint, metadata"


def encode(typed: tuple[str, bytes], codec: PayloadCodec) -> str:
    """A serde ``(type, bytes)`` pair as payload text, through the store's codec."""
    kind, data = typed
    return codec.encode(dumps([kind, base64.b64encode(data).decode("ascii")]))


def decode(text: str | bytes, codec: PayloadCodec) -> tuple[str, bytes]:
    kind, data = loads(codec.decode(text))
    return str(kind), base64.b64decode(data)


# -- writes ------------------------------------------------------------------------------
def put_checkpoint(conn: Any, d: Dialect, row: Sequence[Any]) -> None:
    """Insert or replace one checkpoint: (thread, ns, id, parent, run_id, checkpoint, metadata,
    created_at); ``created_at`` (epoch seconds) dates it for retention."""
    conn.execute(
        d.q(
            "INSERT INTO langgraph_checkpoints (thread_id, checkpoint_ns, checkpoint_id, "
            "parent_checkpoint_id, run_id, checkpoint, metadata, created_at) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?) "
            "ON CONFLICT (thread_id, checkpoint_ns, checkpoint_id) DO UPDATE SET "
            "parent_checkpoint_id=excluded.parent_checkpoint_id, run_id=excluded.run_id, "
            "checkpoint=excluded.checkpoint, metadata=excluded.metadata, "
            "created_at=excluded.created_at"
        ),
        tuple(row),
    )


def put_writes(conn: Any, d: Dialect, rows: Sequence[Sequence[Any]]) -> None:
    """Pending writes: (thread, ns, checkpoint, task, idx, channel, value, task_path). Special
    channels (negative idx: errors, interrupts) replace an earlier value; others keep it."""
    for row in rows:
        action = (
            "DO UPDATE SET channel=excluded.channel, value=excluded.value, "
            "task_path=excluded.task_path"
            if row[4] < 0
            else "DO NOTHING"
        )
        conn.execute(
            d.q(
                "INSERT INTO langgraph_writes (thread_id, checkpoint_ns, checkpoint_id, task_id, "
                "idx, channel, value, task_path) VALUES (?, ?, ?, ?, ?, ?, ?, ?) "
                f"ON CONFLICT (thread_id, checkpoint_ns, checkpoint_id, task_id, idx) {action}"
            ),
            tuple(row),
        )


def delete_thread(conn: Any, d: Dialect, thread_id: str) -> None:
    for table in ("langgraph_writes", "langgraph_checkpoints"):
        conn.execute(d.q(f"DELETE FROM {table} WHERE thread_id=?"), (thread_id,))


def delete_for_runs(conn: Any, d: Dialect, run_ids: Sequence[str]) -> None:
    for run_id in run_ids:
        conn.execute(
            d.q(
                "DELETE FROM langgraph_writes WHERE EXISTS (SELECT 1 FROM langgraph_checkpoints c "
                "WHERE c.run_id=? AND c.thread_id=langgraph_writes.thread_id AND "
                "c.checkpoint_ns=langgraph_writes.checkpoint_ns AND "
                "c.checkpoint_id=langgraph_writes.checkpoint_id)"
            ),
            (run_id,),
        )
        conn.execute(d.q("DELETE FROM langgraph_checkpoints WHERE run_id=?"), (run_id,))


def copy_thread(conn: Any, d: Dialect, source: str, target: str) -> None:
    conn.execute(
        d.q(
            "INSERT INTO langgraph_checkpoints (thread_id, checkpoint_ns, checkpoint_id, "
            "parent_checkpoint_id, run_id, checkpoint, metadata, created_at) SELECT ?, "
            "checkpoint_ns, checkpoint_id, parent_checkpoint_id, run_id, checkpoint, metadata, "
            "created_at FROM "
            "langgraph_checkpoints WHERE thread_id=? ON CONFLICT DO NOTHING"
        ),
        (target, source),
    )
    conn.execute(
        d.q(
            "INSERT INTO langgraph_writes (thread_id, checkpoint_ns, checkpoint_id, task_id, idx, "
            "channel, value, task_path) SELECT ?, checkpoint_ns, checkpoint_id, task_id, idx, "
            "channel, value, task_path FROM langgraph_writes WHERE thread_id=? "
            "ON CONFLICT DO NOTHING"
        ),
        (target, source),
    )


def delete_checkpoints(conn: Any, d: Dialect, keys: Sequence[tuple[str, str, str]]) -> None:
    """Delete the given (thread, ns, checkpoint) rows and their writes."""
    for key in keys:
        for table in ("langgraph_writes", "langgraph_checkpoints"):
            conn.execute(
                d.q(
                    f"DELETE FROM {table} WHERE thread_id=? AND checkpoint_ns=? AND checkpoint_id=?"
                ),
                key,
            )


def rewrite_checkpoint(conn: Any, d: Dialect, key: tuple[str, str, str], checkpoint: str) -> None:
    conn.execute(
        d.q(
            "UPDATE langgraph_checkpoints SET checkpoint=?, parent_checkpoint_id=NULL "
            "WHERE thread_id=? AND checkpoint_ns=? AND checkpoint_id=?"
        ),
        (checkpoint, *key),
    )


# -- reads -------------------------------------------------------------------------------
def select_checkpoints(
    conn: Any,
    d: Dialect,
    thread_id: str | None,
    checkpoint_ns: str | None,
    checkpoint_id: str | None,
    before: str | None,
    limit: int | None,
) -> list[Any]:
    """Checkpoints, newest first (ids are time-ordered), with the given filters."""
    where, params = [], []
    for column, value in (
        ("thread_id", thread_id),
        ("checkpoint_ns", checkpoint_ns),
        ("checkpoint_id", checkpoint_id),
    ):
        if value is not None:
            where.append(f"{column}=?")
            params.append(value)
    if before is not None:
        where.append("checkpoint_id<?")
        params.append(before)
    sql = f"SELECT {COLUMNS} FROM langgraph_checkpoints"
    if where:
        sql += " WHERE " + " AND ".join(where)
    sql += " ORDER BY thread_id, checkpoint_ns, checkpoint_id DESC"
    if limit is not None:
        sql += f" LIMIT {int(limit)}"
    return list(conn.execute(d.q(sql), tuple(params)).fetchall())


def select_writes(
    conn: Any, d: Dialect, thread_id: str, checkpoint_ns: str, checkpoint_id: str
) -> list[Any]:
    """(task_id, channel, value, task_path, idx) of one checkpoint's pending writes."""
    return list(
        conn.execute(
            d.q(
                "SELECT task_id, channel, value, task_path, idx FROM langgraph_writes "
                "WHERE thread_id=? AND checkpoint_ns=? AND checkpoint_id=?"
            ),
            (thread_id, checkpoint_ns, checkpoint_id),
        ).fetchall()
    )


__all__ = [
    "copy_thread",
    "decode",
    "delete_checkpoints",
    "delete_for_runs",
    "delete_thread",
    "encode",
    "put_checkpoint",
    "put_writes",
    "rewrite_checkpoint",
    "select_checkpoints",
    "select_writes",
]
