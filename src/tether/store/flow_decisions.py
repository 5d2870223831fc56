"""Flow-control decisions taken in the transaction that creates a run, for every backend.

Rate limit, singleton, debounce, batch, throttle and priority are all decided when a
trigger arrives, against what the store holds for the same key, so every worker and
every sender sees one consistent answer. Each decision is recorded: a ``skipped`` run
with its reason, a ``reason`` on a delayed run, a note on the event for a folded one.

The statements are written once and run through a ``Tx`` (its dialect adapts them). On
SQLite the writer lock serialises creators; elsewhere the creator first takes the
advisory locks of the keys it decides on (``creation_keys``, ``Tx.lock``).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from tether.codec import dumps, loads
from tether.flow.keys import read_path
from tether.store.base import NewRun
from tether.store.executor import Tx
from tether.store.rows import event_json

ACTIVE = "('queued', 'running', 'sleeping', 'waiting')"
PRIORITY_CAP = 600.0


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="milliseconds")


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


def _debounced(due: float) -> str:
    return f"debounced: starts {_iso(due)} unless another trigger comes"


def decide(tx: Tx, run: NewRun, now: float) -> tuple[str, str] | None:
    """Apply creation-time controls to ``run`` (mutating it: status, reason, due time).

    Returns (existing run id, decision) when the trigger folded into an existing run
    (debounce, batch) and no new run must be created."""
    flow = run.flow
    if flow is None:
        return None
    if flow.rate is not None:
        key, limit, period = flow.rate
        (count,) = tx.one(
            "SELECT count(*) FROM runs WHERE rate_key=? AND created_at>? AND status!='skipped'",
            (key, now - period),
        )
        if count >= limit:
            run.status = "skipped"
            run.reason = f"rate limit: {limit} run(s) per {period:g}s for key {key} reached"
            return None
    if flow.singleton is not None:
        key, mode = flow.singleton
        active = tx.all(
            f"SELECT id, status FROM runs WHERE singleton_key=? AND status IN {ACTIVE} "
            "ORDER BY seq",
            (key,),
        )
        if active and mode == "skip":
            run.status = "skipped"
            run.reason = f"singleton: run {active[0][0]} is already active for key {key}"
            return None
        for other_id, status in active:
            cancel_in_txn(
                tx,
                other_id,
                status,
                now,
                f"cancelled by singleton: newer run {run.id} for key {key}",
            )
    if flow.debounce is not None:
        key, period, max_wait = flow.debounce
        row = tx.one(
            "SELECT id, debounce_until FROM runs WHERE debounce_key=? AND status='queued' "
            "ORDER BY seq DESC LIMIT 1",
            (key,),
        )
        if row is not None:
            existing, until = row
            due = now + period if until is None else min(now + period, until)
            tx.execute(
                "UPDATE runs SET input=?, event_id=?, event_ts=?, event_name=?, due_at=?, "
                "reason=? WHERE id=?",
                (
                    tx.codec.encode(run.input),
                    run.event_id,
                    run.event_ts,
                    run.event_name,
                    due,
                    _debounced(due),
                    existing,
                ),
            )
            return existing, f"debounced into run {existing}"
        # ``max_wait`` caps the first delay too: a lone trigger starts by then at the latest.
        wait = period if max_wait is None else min(period, max_wait)
        run.due_at = max(run.due_at, now + wait)
        run.reason = _debounced(run.due_at)
    if flow.batch is not None:
        key, size, timeout = flow.batch
        this = event_json(run.event_name, loads(run.input), run.event_id, run.event_ts)
        row = tx.one(
            "SELECT id, batch_events, batch_size, due_at FROM runs WHERE batch_key=? AND "
            "status='queued' AND batch_size<? ORDER BY seq DESC LIMIT 1",
            (key, size),
        )
        if row is not None:
            existing, stored, count, due = row
            events = tx.codec.decode(stored)[:-1] + "," + this + "]"
            if count + 1 >= size:
                due = now  # full: start it now
            tx.execute(
                "UPDATE runs SET batch_events=?, batch_size=?, due_at=? WHERE id=?",
                (tx.codec.encode(events), count + 1, due, existing),
            )
            return existing, f"batched into run {existing}"
        if size > 1:
            run.due_at = max(run.due_at, now + timeout)
    if flow.throttle is not None:
        key, limit, period = flow.throttle
        recent = tx.all(
            "SELECT scheduled_at FROM runs WHERE throttle_key=? "
            "ORDER BY scheduled_at DESC NULLS LAST LIMIT ?",
            (key, limit),
        )
        if len(recent) >= limit and recent[-1][0] is not None:
            earliest = recent[-1][0] + period
            if earliest > run.due_at:
                run.due_at = earliest
                run.reason = f"throttled until {_iso(earliest)} ({limit} per {period:g}s)"
    if flow.priority and run.due_at <= now + 1.0:  # immediate runs only
        run.due_at -= max(-PRIORITY_CAP, min(PRIORITY_CAP, flow.priority))
    return None


def after_insert(tx: Tx, run: NewRun, now: float) -> None:
    """Store the run's flow-control keys (and its cancel-on-event registrations)."""
    flow = run.flow
    if flow is None:
        return
    c1 = flow.concurrency[0] if flow.concurrency and flow.concurrency[0][0] else (None, None)
    c2 = flow.concurrency[1] if len(flow.concurrency) > 1 else (None, None)
    batch_events = None
    if flow.batch is not None:
        batch_events = tx.codec.encode(
            "[" + event_json(run.event_name, loads(run.input), run.event_id, run.event_ts) + "]"
        )
    throttle, debounce = flow.throttle, flow.debounce
    tx.execute(
        "UPDATE runs SET ckey1=?, climit1=?, ckey2=?, climit2=?, chold=?, singleton_key=?, "
        "throttle_key=?, scheduled_at=?, throttle_limit=?, throttle_period=?, rate_key=?, "
        "debounce_key=?, debounce_until=?, batch_key=?, batch_events=?, batch_size=? "
        "WHERE id=?",
        (
            c1[0],
            c1[1],
            c2[0],
            c2[1],
            1 if flow.hold and flow.concurrency else None,
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
        tx.execute(
            "INSERT INTO cancel_waits (run_id, event_name, match_path, match_value, "
            "expires_at) VALUES (?,?,?,?,?) ON CONFLICT (run_id, event_name) DO UPDATE SET "
            "match_path=excluded.match_path, match_value=excluded.match_value, "
            "expires_at=excluded.expires_at",
            (run.id, event, path, value, None if timeout is None else now + timeout),
        )


def cancel_in_txn(tx: Tx, run_id: str, status: str, now: float, reason: str) -> None:
    """Cancel a run inside the current transaction: at once unless it is executing, in
    which case its worker stops it at the next step boundary."""
    if status == "running":
        tx.execute("UPDATE runs SET cancel_requested=1, reason=? WHERE id=?", (reason, run_id))
        return
    error = tx.codec.encode(dumps({"type": "RunCancelled", "message": reason}))
    if not tx.changed(
        "UPDATE runs SET status='cancelled', error=?, reason=?, ended_at=?, due_at=NULL, "
        "lease_owner=NULL WHERE id=? AND status IN ('queued', 'sleeping', 'waiting')",
        (error, reason, now, run_id),
    ):
        # Claimed since its status was read: flag it for its worker instead.
        tx.execute(
            "UPDATE runs SET cancel_requested=1, reason=? WHERE id=? AND status='running'",
            (reason, run_id),
        )


def cancel_by_event(tx: Tx, name: str, doc: dict[str, Any], event_id: str, now: float) -> list[str]:
    """Cancel the runs registered to be cancelled by this event; return their ids."""
    cancelled: list[str] = []
    paths = tx.all("SELECT DISTINCT match_path FROM cancel_waits WHERE event_name=?", (name,))
    for (path,) in paths:
        value = None if path is None else dumps(read_path(path, doc))
        rows = tx.all(
            "SELECT c.run_id, r.status FROM cancel_waits c JOIN runs r ON r.id = c.run_id "
            "WHERE c.event_name=? AND c.match_path {same} ? AND c.match_value {same} ? "
            f"AND (c.expires_at IS NULL OR c.expires_at > ?) AND r.status IN {ACTIVE}",
            (name, path, value, now),
        )
        for run_id, status in rows:
            cancel_in_txn(tx, run_id, status, now, f"cancelled by event {name} ({event_id})")
            cancelled.append(run_id)
    return cancelled
