"""Flow-control decisions taken in the transaction that creates a run (PostgreSQL dialect).

The same decisions as ``sqlite_flow`` (rate limit, singleton, debounce, batch, throttle,
priority), made safe for many writers: SQLite serialises every write, PostgreSQL does not,
so each decision first takes a transaction-scoped advisory lock on its key. Two processes
creating runs for one key then decide one after the other, and the second sees the first's
committed run (READ COMMITTED reads a fresh snapshot per statement).
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

from tether.codec import dumps, loads
from tether.store.base import NewRun
from tether.store.rows import event_json

ACTIVE = "('queued', 'running', 'sleeping', 'waiting')"
PRIORITY_CAP = 600.0


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="milliseconds")


def lock_keys(conn: Any, keys: Iterable[str]) -> None:
    """Take the advisory locks of ``keys`` (held to commit), in one global order.

    Advisory locks are per database; the schema name keeps tether installations in
    different schemas of one database from waiting on each other's keys."""
    ordered = sorted(set(keys))
    if ordered:
        conn.execute(
            "SELECT pg_advisory_xact_lock(hashtextextended(current_schema() || ':' || k, 0)) "
            "FROM unnest(%s::text[]) AS k",
            (ordered,),
        )


def creation_keys(run: NewRun) -> list[str]:
    """The lock names a run's creation decides on (idempotency key and flow keys)."""
    keys = []
    if run.idempotency_key is not None:
        keys.append(f"idem:{run.function_id}:{run.idempotency_key}")
    flow = run.flow
    if flow is not None:
        for kind, spec in (
            ("rate", flow.rate),
            ("singleton", flow.singleton),
            ("debounce", flow.debounce),
            ("batch", flow.batch),
            ("throttle", flow.throttle),
        ):
            if spec is not None:
                keys.append(f"{kind}:{spec[0]}")
    return keys


def decide(conn: Any, run: NewRun, now: float) -> tuple[str, str] | None:
    """Apply creation-time controls to ``run`` (mutating it: status, reason, due time).

    Returns (existing run id, decision) when the trigger folded into an existing run
    (debounce, batch) and no new run must be created. The caller holds the key locks."""
    flow = run.flow
    if flow is None:
        return None
    if flow.rate is not None:
        key, limit, period = flow.rate
        (count,) = conn.execute(
            "SELECT count(*) FROM runs WHERE rate_key=%s AND created_at>%s AND status!='skipped'",
            (key, now - period),
        ).fetchone()
        if count >= limit:
            run.status = "skipped"
            run.reason = f"rate limit: {limit} run(s) per {period:g}s for key {key} reached"
            return None
    if flow.singleton is not None:
        key, mode = flow.singleton
        active = conn.execute(
            f"SELECT id, status FROM runs WHERE singleton_key=%s AND status IN {ACTIVE} "
            "ORDER BY seq",
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
            )
    if flow.debounce is not None:
        key, period, _ = flow.debounce
        row = conn.execute(
            "SELECT id, debounce_until FROM runs WHERE debounce_key=%s AND status='queued' "
            "ORDER BY seq DESC LIMIT 1",
            (key,),
        ).fetchone()
        if row is not None:
            existing, until = row
            due = now + period if until is None else min(now + period, until)
            conn.execute(
                "UPDATE runs SET input=%s, event_id=%s, event_ts=%s, event_name=%s, due_at=%s "
                "WHERE id=%s",
                (run.input, run.event_id, run.event_ts, run.event_name, due, existing),
            )
            return existing, f"debounced into run {existing}"
        run.due_at = max(run.due_at, now + period)
        run.reason = f"debounced: starts {_iso(run.due_at)} unless another trigger comes"
    if flow.batch is not None:
        key, size, timeout = flow.batch
        this = event_json(run.event_name, loads(run.input), run.event_id, run.event_ts)
        row = conn.execute(
            "SELECT id, batch_events, batch_size FROM runs WHERE batch_key=%s AND "
            "status='queued' AND batch_size<%s ORDER BY seq DESC LIMIT 1",
            (key, size),
        ).fetchone()
        if row is not None:
            existing, events, count = row
            events = events[:-1] + "," + this + "]"
            full = count + 1 >= size
            conn.execute(
                "UPDATE runs SET batch_events=%s, batch_size=%s, "
                "due_at=CASE WHEN %s::boolean THEN %s ELSE due_at END WHERE id=%s",
                (events, count + 1, full, now, existing),
            )
            return existing, f"batched into run {existing}"
        if size > 1:
            run.due_at = max(run.due_at, now + timeout)
    if flow.throttle is not None:
        key, limit, period = flow.throttle
        recent = conn.execute(
            "SELECT scheduled_at FROM runs WHERE throttle_key=%s "
            "ORDER BY scheduled_at DESC NULLS LAST LIMIT %s",
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


def after_insert(conn: Any, run: NewRun, now: float) -> None:
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
    conn.execute(
        "UPDATE runs SET ckey1=%s, climit1=%s, ckey2=%s, climit2=%s, singleton_key=%s, "
        "throttle_key=%s, scheduled_at=%s, throttle_limit=%s, throttle_period=%s, rate_key=%s, "
        "debounce_key=%s, debounce_until=%s, "
        "batch_key=%s, batch_events=%s, batch_size=%s WHERE id=%s",
        (
            c1[0],
            c1[1],
            c2[0],
            c2[1],
            flow.singleton[0] if flow.singleton else None,
            flow.throttle[0] if flow.throttle else None,
            run.due_at if flow.throttle else None,
            flow.throttle[1] if flow.throttle else None,
            flow.throttle[2] if flow.throttle else None,
            flow.rate[0] if flow.rate else None,
            flow.debounce[0] if flow.debounce else None,
            now + flow.debounce[2] if flow.debounce and flow.debounce[2] is not None else None,
            flow.batch[0] if flow.batch else None,
            batch_events,
            1 if flow.batch else None,
            run.id,
        ),
    )
    for event, path, value, timeout in flow.cancel_waits:
        conn.execute(
            "INSERT INTO cancel_waits (run_id, event_name, match_path, match_value, expires_at) "
            "VALUES (%s,%s,%s,%s,%s) ON CONFLICT (run_id, event_name) DO UPDATE SET "
            "match_path=excluded.match_path, match_value=excluded.match_value, "
            "expires_at=excluded.expires_at",
            (run.id, event, path, value, None if timeout is None else now + timeout),
        )


def cancel_in_txn(conn: Any, run_id: str, status: str, now: float, reason: str) -> None:
    """Cancel a run inside the current transaction: at once unless it is executing, in
    which case its worker stops it at the next step boundary."""
    if status == "running":
        conn.execute("UPDATE runs SET cancel_requested=1, reason=%s WHERE id=%s", (reason, run_id))
        return
    error = dumps({"type": "RunCancelled", "message": reason})
    row = conn.execute(
        "UPDATE runs SET status='cancelled', error=%s, reason=%s, ended_at=%s, due_at=NULL, "
        "lease_owner=NULL WHERE id=%s AND status IN ('queued', 'sleeping', 'waiting') "
        "RETURNING status",
        (error, reason, now, run_id),
    ).fetchone()
    if row is None:
        # Claimed since we read its status: flag it for its worker instead.
        conn.execute(
            "UPDATE runs SET cancel_requested=1, reason=%s WHERE id=%s AND status='running'",
            (reason, run_id),
        )


def cancel_by_event(
    conn: Any, name: str, doc: dict[str, Any], event_id: str, now: float
) -> list[str]:
    """Cancel the runs registered to be cancelled by this event; return their ids."""
    from tether.flow.keys import read_path

    cancelled: list[str] = []
    paths = conn.execute(
        "SELECT DISTINCT match_path FROM cancel_waits WHERE event_name=%s", (name,)
    ).fetchall()
    for (path,) in paths:
        value = None if path is None else dumps(read_path(path, doc))
        rows = conn.execute(
            f"SELECT c.run_id, r.status FROM cancel_waits c JOIN runs r ON r.id = c.run_id "
            f"WHERE c.event_name=%s AND c.match_path IS NOT DISTINCT FROM %s AND "
            f"c.match_value IS NOT DISTINCT FROM %s AND "
            f"(c.expires_at IS NULL OR c.expires_at > %s) AND r.status IN {ACTIVE}",
            (name, path, value, now),
        ).fetchall()
        for run_id, status in rows:
            cancel_in_txn(conn, run_id, status, now, f"cancelled by event {name} ({event_id})")
            cancelled.append(run_id)
    return cancelled
