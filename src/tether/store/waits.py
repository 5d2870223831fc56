"""Resolving blocked steps: ``wait_for_event`` steps an accepted event resolves, and the
step of a parent waiting on a child run (shared by every backend)."""

from __future__ import annotations

from tether.codec import dumps, loads
from tether.flow.expr import evaluate
from tether.flow.keys import read_path
from tether.store.base import EventRow
from tether.store.executor import Tx
from tether.store.rows import event_json


def waiting_for(tx: Tx, ev: EventRow) -> tuple[str, list[tuple[str, str]]]:
    """The event as a step output, and the (run id, step id) of every step it resolves:
    waiting for this event name, with the same value at the ``match`` path and an ``if_``
    expression (if any) that holds. Ordered by run id (a stable lock order)."""
    paths = tx.all(
        "SELECT DISTINCT wait_match FROM steps WHERE status='waiting' AND wait_event=?",
        (ev.name,),
    )
    if not paths:
        return "", []
    data = loads(ev.data)
    doc = {"name": ev.name, "data": data, "id": ev.id}
    found: list[tuple[str, str]] = []
    for (path,) in paths:
        value = None if path is None else dumps(read_path(path, doc))
        rows = tx.all(
            "SELECT s.run_id, s.step_id, s.wait_if, r.event_name, r.input, r.event_id "
            "FROM steps s JOIN runs r ON r.id = s.run_id WHERE s.status='waiting' "
            "AND s.wait_event=? AND s.wait_match {same} ? AND s.wait_value {same} ? "
            "ORDER BY s.run_id",
            (ev.name, path, value),
        )
        for run_id, step_id, wait_if, t_name, t_input, t_id in rows:
            if wait_if:
                trigger = {"name": t_name, "data": loads(tx.codec.decode(t_input)), "id": t_id}
                if not evaluate(wait_if, event=trigger, async_=doc):
                    continue
            found.append((run_id, step_id))
    return event_json(ev.name, data, ev.id, ev.ts), found


def wake_waiters(tx: Tx, ev: EventRow, now: float) -> None:
    """Resolve every step waiting for ``ev`` with the event and requeue its run."""
    payload, found = waiting_for(tx, ev)
    if found:
        stored = tx.codec.encode(payload)
        for run_id, step_id in found:
            resolve(tx, run_id, step_id, "completed", stored, None, now)
        # An event a subject's run received is the subject's too (DESIGN 4b: forget()).
        where, params = tx.in_("id", sorted({run_id for run_id, _ in found}))
        tx.execute(
            "UPDATE events SET subject=(SELECT subject FROM runs WHERE "
            f"{where} AND subject IS NOT NULL ORDER BY id LIMIT 1) "
            "WHERE id=? AND subject IS NULL",
            (*params, ev.id),
        )


def resolve(
    tx: Tx,
    run_id: str,
    step_id: str,
    status: str,
    output: str | None,
    error: str | None,
    now: float,
) -> None:
    """Resolve a run's waiting step (``output``/``error`` already encoded) and requeue the
    run if it is suspended.

    The run row is locked first: a worker suspending this run at the same moment either
    sees the resolved step (and requeues itself) or has committed its suspension, which
    this requeues. Without the lock both could miss each other."""
    tx.lock_run(run_id)
    tx.execute(
        "UPDATE steps SET status=?, output=?, error=?, ended_at=? "
        "WHERE run_id=? AND step_id=? AND status='waiting'",
        (status, output, error, now, run_id, step_id),
    )
    tx.execute(
        "UPDATE runs SET status='queued', due_at=? WHERE id=? AND status IN ('waiting', 'sleeping')",
        (now, run_id),
    )
