"""Flow-control decisions taken in the transaction that creates a run, for every backend.

Rate limit, singleton, debounce, batch, throttle and priority are all decided when a
trigger arrives, against what the store holds for the same key, so every worker and
every sender sees one consistent answer. Each decision is recorded: a ``skipped`` run
with its reason, a ``reason`` on a delayed run, a note on the event for a folded one.

The statements are written once, with ``?`` parameters; a ``Dialect`` adapts them. On
SQLite the writer lock serialises creators; PostgreSQL callers take the keys' advisory
locks first (``postgres_flow.lock_keys``).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from tether.codec import dumps, loads
from tether.flow.keys import read_path
from tether.store.base import NewRun
from tether.store.dialect import POSTGRES, SQLITE, Dialect
from tether.store.rows import event_json

ACTIVE = "('queued', 'running', 'sleeping', 'waiting')"
PRIORITY_CAP = 600.0


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="milliseconds")


def decide(conn: Any, run: NewRun, now: float, d: Dialect) -> tuple[str, str] | None:
    """Apply creation-time controls to ``run`` (mutating it: status, reason, due time).

    Returns (existing run id, decision) when the trigger folded into an existing run
    (debounce, batch) and no new run must be created."""
    flow = run.flow
    if flow is None:
        return None
    if flow.rate is not None:
        key, limit, period = flow.rate
        (count,) = conn.execute(
            d.q(
                "SELECT count(*) FROM runs WHERE rate_key=? AND created_at>? AND status!='skipped'"
            ),
            (key, now - period),
        ).fetchone()
        if count >= limit:
            run.status = "skipped"
            run.reason = f"rate limit: {limit} run(s) per {period:g}s for key {key} reached"
            return None
    if flow.singleton is not None:
        key, mode = flow.singleton
        active = conn.execute(
            d.q(
                f"SELECT id, status FROM runs WHERE singleton_key=? AND status IN {ACTIVE} "
                "ORDER BY seq"
            ),
            (key,),
        ).fetchall()
        if active and mode == "skip":
            run.status = "skipped"
            run.reason = f"singleton: run {active[0][0]} is already active for key {key}"
            return None
        for other_id, status in active:
            cancel_in_txn(
                conn,
                other_id,
                status,
                now,
                f"cancelled by singleton: newer run {run.id} for key {key}",
                d,
            )
    if flow.debounce is not None:
        key, period, _ = flow.debounce
        row = conn.execute(
            d.q(
                "SELECT id, debounce_until FROM runs WHERE debounce_key=? AND status='queued' "
                "ORDER BY seq DESC LIMIT 1"
            ),
            (key,),
        ).fetchone()
        if row is not None:
            existing, until = row
            due = now + period if until is None else min(now + period, until)
            conn.execute(
                d.q(
                    "UPDATE runs SET input=?, event_id=?, event_ts=?, event_name=?, due_at=? "
                    "WHERE id=?"
                ),
                (run.input, run.event_id, run.event_ts, run.event_name, due, existing),
            )
            return existing, f"debounced into run {existing}"
        run.due_at = max(run.due_at, now + period)
        run.reason = f"debounced: starts {_iso(run.due_at)} unless another trigger comes"
    if flow.batch is not None:
        key, size, timeout = flow.batch
        this = event_json(run.event_name, loads(run.input), run.event_id, run.event_ts)
        row = conn.execute(
            d.q(
                "SELECT id, batch_events, batch_size, due_at FROM runs WHERE batch_key=? AND "
                "status='queued' AND batch_size<? ORDER BY seq DESC LIMIT 1"
            ),
            (key, size),
        ).fetchone()
        if row is not None:
            existing, events, count, due = row
            events = events[:-1] + "," + this + "]"
            if count + 1 >= size:
                due = now  # full: start it now
            conn.execute(
                d.q("UPDATE runs SET batch_events=?, batch_size=?, due_at=? WHERE id=?"),
                (events, count + 1, due, existing),
            )
            return existing, f"batched into run {existing}"
        if size > 1:
            run.due_at = max(run.due_at, now + timeout)
    if flow.throttle is not None:
        key, limit, period = flow.throttle
        recent = conn.execute(
            d.q(
                "SELECT scheduled_at FROM runs WHERE throttle_key=? "
                "ORDER BY scheduled_at DESC NULLS LAST LIMIT ?"
            ),
            (key, limit),
        ).fetchall()
        if len(recent) >= limit and recent[-1][0] is not None:
            earliest = recent[-1][0] + period
            if earliest > run.due_at:
                run.due_at = earliest
                run.reason = f"throttled until {_iso(earliest)} ({limit} per {period:g}s)"
    if flow.priority and run.due_at <= now + 1.0:  # immediate runs only
        run.due_at -= max(-PRIORITY_CAP, min(PRIORITY_CAP, flow.priority))
    return None


def after_insert(conn: Any, run: NewRun, now: float, d: Dialect) -> None:
    """Store the run's flow-control keys (and its cancel-on-event registrations)."""
    flow = run.flow
    if flow is None:
        return
    c1 = flow.concurrency[0] if flow.concurrency and flow.concurrency[0][0] else (None, None)
    c2 = flow.concurrency[1] if len(flow.concurrency) > 1 else (None, None)
    batch_events = None
    if flow.batch is not None:
        batch_events = (
            "[" + event_json(run.event_name, loads(run.input), run.event_id, run.event_ts) + "]"
        )
    throttle, debounce = flow.throttle, flow.debounce
    conn.execute(
        d.q(
            "UPDATE runs SET ckey1=?, climit1=?, ckey2=?, climit2=?, singleton_key=?, "
            "throttle_key=?, scheduled_at=?, throttle_limit=?, throttle_period=?, rate_key=?, "
            "debounce_key=?, debounce_until=?, batch_key=?, batch_events=?, batch_size=? "
            "WHERE id=?"
        ),
        (
            c1[0],
            c1[1],
            c2[0],
            c2[1],
            flow.singleton[0] if flow.singleton else None,
            throttle[0] if throttle else None,
            run.due_at if throttle else None,
            throttle[1] if throttle else None,
            throttle[2] if throttle else None,
            flow.rate[0] if flow.rate else None,
            debounce[0] if debounce else None,
            now + debounce[2] if debounce and debounce[2] is not None else None,
            flow.batch[0] if flow.batch else None,
            batch_events,
            1 if flow.batch else None,
            run.id,
        ),
    )
    for event, path, value, timeout in flow.cancel_waits:
        conn.execute(
            d.q(
                "INSERT INTO cancel_waits (run_id, event_name, match_path, match_value, "
                "expires_at) VALUES (?,?,?,?,?) ON CONFLICT (run_id, event_name) DO UPDATE SET "
                "match_path=excluded.match_path, match_value=excluded.match_value, "
                "expires_at=excluded.expires_at"
            ),
            (run.id, event, path, value, None if timeout is None else now + timeout),
        )


def cancel_in_txn(conn: Any, run_id: str, status: str, now: float, reason: str, d: Dialect) -> None:
    """Cancel a run inside the current transaction: at once unless it is executing, in
    which case its worker stops it at the next step boundary."""
    if status == "running":
        conn.execute(
            d.q("UPDATE runs SET cancel_requested=1, reason=? WHERE id=?"), (reason, run_id)
        )
        return
    error = dumps({"type": "RunCancelled", "message": reason})
    row = conn.execute(
        d.q(
            "UPDATE runs SET status='cancelled', error=?, reason=?, ended_at=?, due_at=NULL, "
            "lease_owner=NULL WHERE id=? AND status IN ('queued', 'sleeping', 'waiting') "
            "RETURNING status"
        ),
        (error, reason, now, run_id),
    ).fetchone()
    if row is None:
        # Claimed since its status was read: flag it for its worker instead.
        conn.execute(
            d.q("UPDATE runs SET cancel_requested=1, reason=? WHERE id=? AND status='running'"),
            (reason, run_id),
        )


def cancel_by_event(
    conn: Any, name: str, doc: dict[str, Any], event_id: str, now: float, d: Dialect
) -> list[str]:
    """Cancel the runs registered to be cancelled by this event; return their ids."""
    cancelled: list[str] = []
    paths = conn.execute(
        d.q("SELECT DISTINCT match_path FROM cancel_waits WHERE event_name=?"), (name,)
    ).fetchall()
    for (path,) in paths:
        value = None if path is None else dumps(read_path(path, doc))
        rows = conn.execute(
            d.q(
                f"SELECT c.run_id, r.status FROM cancel_waits c JOIN runs r ON r.id = c.run_id "
                f"WHERE c.event_name=? AND c.match_path {d.same} ? AND "
                f"c.match_value {d.same} ? AND (c.expires_at IS NULL OR c.expires_at > ?) "
                f"AND r.status IN {ACTIVE}"
            ),
            (name, path, value, now),
        ).fetchall()
        for run_id, status in rows:
            cancel_in_txn(conn, run_id, status, now, f"cancelled by event {name} ({event_id})", d)
            cancelled.append(run_id)
    return cancelled


__all__ = ["POSTGRES", "SQLITE", "Dialect", "after_insert", "cancel_by_event", "decide"]
