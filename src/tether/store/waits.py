"""Which waiting steps an accepted event resolves (``wait_for_event``), for every backend."""

from __future__ import annotations

from typing import Any

from tether.codec import dumps, loads
from tether.flow.expr import evaluate
from tether.flow.keys import read_path
from tether.store.base import EventRow
from tether.store.dialect import Dialect
from tether.store.rows import event_json


def waiting_for(conn: Any, ev: EventRow, d: Dialect) -> tuple[str, list[tuple[str, str]]]:
    """The event as a step output, and the (run id, step id) of every step it resolves:
    waiting for this event name, with the same value at the ``match`` path and an ``if_``
    expression (if any) that holds. Ordered by run id (a stable lock order)."""
    paths = conn.execute(
        d.q("SELECT DISTINCT wait_match FROM steps WHERE status='waiting' AND wait_event=?"),
        (ev.name,),
    ).fetchall()
    if not paths:
        return "", []
    data = loads(ev.data)
    doc = {"name": ev.name, "data": data, "id": ev.id}
    found: list[tuple[str, str]] = []
    for (path,) in paths:
        value = None if path is None else dumps(read_path(path, doc))
        rows = conn.execute(
            d.q(
                "SELECT s.run_id, s.step_id, s.wait_if, r.event_name, r.input, r.event_id "
                "FROM steps s JOIN runs r ON r.id = s.run_id WHERE s.status='waiting' "
                "AND s.wait_event=? AND s.wait_match {same} ? AND s.wait_value {same} ? "
                "ORDER BY s.run_id"
            ),
            (ev.name, path, value),
        ).fetchall()
        for run_id, step_id, wait_if, t_name, t_input, t_id in rows:
            trigger = {"name": t_name, "data": loads(t_input), "id": t_id}
            if wait_if and not evaluate(wait_if, event=trigger, async_=doc):
                continue
            found.append((run_id, step_id))
    return event_json(ev.name, data, ev.id, ev.ts), found
