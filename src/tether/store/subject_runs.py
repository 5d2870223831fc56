"""The runs and events of a subject (DESIGN 4b): list, cancel, export and delete them.

A run belongs to a subject when its function was declared with ``subject=`` (the column
``runs.subject``, migration 8); an event belongs to the subject of a run it started or
resumed (``events.subject``, set when it is accepted), and to the subject of any run whose
``event_id`` names it. Deleting a
subject's runs deletes everything stored for them: steps, attempts, cancel-on-event
registrations, LangGraph checkpoints written by them, their trace ids and the events that
triggered them (takeovers go with their run, by trigger).
"""

from __future__ import annotations

from typing import Any

from tether.codec import dumps, loads
from tether.records import Run
from tether.store import waits
from tether.store.executor import Tx
from tether.store.queries import RUN_ATTEMPTS_SQL, RUN_COLUMNS, RUN_STEPS_SQL
from tether.store.rows import build_run

TRACE_KEY = "otel.trace:"  # tether.observe.TRACE_KV_PREFIX (the store does not import observe)
_RUNS = "SELECT id FROM runs WHERE subject=?"
_EVENTS = "subject=? OR id IN (SELECT event_id FROM runs WHERE subject=? AND event_id IS NOT NULL)"


def subjects(tx: Tx) -> list[str]:
    """The subjects that own runs, events or context windows."""
    rows = tx.all(
        "SELECT subject FROM runs WHERE subject IS NOT NULL UNION "
        "SELECT subject FROM events WHERE subject IS NOT NULL UNION "
        "SELECT subject FROM windows WHERE subject IS NOT NULL"
    )
    return [r[0] for r in rows]


def has_runs(tx: Tx, subject: str) -> bool:
    """True when a run or an event belongs to ``subject``."""
    return bool(
        tx.one("SELECT 1 FROM runs WHERE subject=? LIMIT 1", (subject,))
        or tx.one("SELECT 1 FROM events WHERE subject=? LIMIT 1", (subject,))
    )


def stop(tx: Tx, subject: str, now: float) -> list[str]:
    """Cancel the subject's runs that are not executing (no worker can claim them after
    this commits) and flag the executing ones; return the ids of the executing ones."""
    error = tx.codec.encode(
        dumps({"type": "RunCancelled", "message": "cancelled: its subject was forgotten"})
    )
    tx.execute(
        "UPDATE runs SET status='cancelled', error=?, reason='subject forgotten', ended_at=?, "
        "due_at=NULL, lease_owner=NULL "
        "WHERE subject=? AND status IN ('queued', 'sleeping', 'waiting')",
        (error, now, subject),
    )
    rows = tx.all(
        "UPDATE runs SET cancel_requested=1 WHERE subject=? AND status='running' RETURNING id",
        (subject,),
    )
    return [r[0] for r in rows]


def executing(tx: Tx, subject: str) -> list[str]:
    """The subject's runs a worker still holds."""
    rows = tx.all("SELECT id FROM runs WHERE subject=? AND status='running'", (subject,))
    return [r[0] for r in rows]


def export(tx: Tx, subject: str) -> dict[str, list[dict[str, Any]]]:
    """The subject's runs (steps and attempts included) and events, as JSON values."""
    runs: list[Run] = []
    for row in tx.all(f"SELECT {RUN_COLUMNS} FROM runs WHERE subject=? ORDER BY seq", (subject,)):
        steps = tx.all(RUN_STEPS_SQL, (row[0],))
        attempts = tx.all(RUN_ATTEMPTS_SQL, (row[0],))
        runs.append(build_run(row, steps, attempts, tx.codec))
    events = [
        {"id": r[0], "name": r[1], "data": loads(tx.codec.decode(r[2])), "ts": r[3]}
        for r in tx.all(
            f"SELECT id, name, data, ts FROM events WHERE {_EVENTS} ORDER BY received_at, id",
            (subject, subject),
        )
    ]
    return {"runs": [r.model_dump(mode="json") for r in runs], "events": events}


def delete(tx: Tx, subject: str, now: float) -> dict[str, int]:
    """Delete the subject's runs with everything stored for them, and its events. A parent
    of another subject (or none) waiting on one of these runs sees its step fail."""
    params = (subject,)
    orphaned = tx.all(
        "SELECT r.id, r.parent_id, r.parent_step FROM runs r "
        "JOIN runs p ON p.id = r.parent_id "
        "JOIN steps s ON s.run_id = r.parent_id AND s.step_id = r.parent_step "
        "WHERE r.subject=? AND s.status='waiting' AND (p.subject IS NULL OR p.subject<>?)",
        (subject, subject),
    )
    for child, parent, step in orphaned:
        error = {"type": "RunCancelled", "message": f"child run {child} was forgotten"}
        waits.resolve(tx, parent, step, "failed", None, tx.codec.encode(dumps(error)), now)
    if orphaned:
        tx.wake()
    events = tx.changed(f"DELETE FROM events WHERE {_EVENTS}", (subject, subject))
    tx.execute(f"DELETE FROM steps WHERE run_id IN ({_RUNS})", params)
    tx.execute(f"DELETE FROM attempts WHERE run_id IN ({_RUNS})", params)
    tx.execute(f"DELETE FROM cancel_waits WHERE run_id IN ({_RUNS})", params)
    tx.execute(
        "DELETE FROM langgraph_writes WHERE (thread_id, checkpoint_ns, checkpoint_id) IN "
        "(SELECT thread_id, checkpoint_ns, checkpoint_id FROM langgraph_checkpoints "
        f"WHERE run_id IN ({_RUNS}))",
        params,
    )
    tx.execute(f"DELETE FROM langgraph_checkpoints WHERE run_id IN ({_RUNS})", params)
    tx.execute(
        "DELETE FROM kv WHERE key IN (SELECT ?::text || id FROM runs WHERE subject=?)",
        (TRACE_KEY, subject),
    )
    runs = tx.changed("DELETE FROM runs WHERE subject=?", params)
    return {"runs": runs, "events": events}


__all__ = ["delete", "executing", "export", "has_runs", "stop", "subjects"]
