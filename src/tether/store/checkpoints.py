"""Writes of a running run, all fenced by its lease token (shared by every backend).

Every write carries the token the worker's claim returned and matches the run's row on
it: once another worker has taken the run over (a new token), the write matches nothing
and raises ``Fenced``. Where writers are concurrent the statement locks the row it fenced
on (``{share}``/``{lock}``), so a takeover and a write serialise: the old worker either
commits before the takeover (and the new owner loads its step) or re-reads the new token
after it and commits nothing.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import Any

from tether.store.base import AttemptWrite, Fenced, StepRow, StepWrite
from tether.store.executor import Tx

_UPSERT = (
    "INSERT INTO steps (run_id, step_id, seq, kind, status, output, error, started_at, "
    "ended_at, wake_at, wait_event, wait_match, wait_value, wait_if, child_id) "
    "SELECT ?::text, ?::text, ?::int, ?::text, ?::text, ?::text, ?::text, ?::float8, "
    "?::float8, ?::float8, ?::text, ?::text, ?::text, ?::text, ?::text "
    "WHERE EXISTS (SELECT 1 FROM runs WHERE id=? AND lease_token=? <live>{share}) "
    "ON CONFLICT (run_id, step_id) DO UPDATE SET status=excluded.status, "
    "output=excluded.output, error=excluded.error, "
    "started_at=CASE WHEN steps.kind='sleep' THEN coalesce(steps.started_at, "
    "excluded.started_at) ELSE excluded.started_at END, "  # a sleep started when it fell asleep
    "ended_at=excluded.ended_at, wake_at=excluded.wake_at, wait_event=excluded.wait_event, "
    "wait_match=excluded.wait_match, wait_value=excluded.wait_value, "
    "wait_if=excluded.wait_if, child_id=excluded.child_id"
)
# The common case in one statement: the lease holds and nobody asked to cancel.
STEP_LIVE = _UPSERT.replace("<live>", "AND cancel_requested=0")
# The lease holds (a run asked to cancel still records the step it finished).
STEP_ANY = _UPSERT.replace("<live>", "")


def step_params(tx: Tx, run_id: str, token: int, s: StepWrite) -> tuple[Any, ...]:
    codec = tx.codec
    return (
        run_id,
        s.step_id,
        s.seq,
        s.kind,
        s.status,
        codec.encode_opt(s.output),
        codec.encode_opt(s.error),
        s.started_at,
        s.ended_at,
        s.wake_at,
        s.wait_event,
        s.wait_match,
        s.wait_value,
        s.wait_if,
        s.child_id,
        run_id,
        token,
    )


def checkpoint(tx: Tx, run_id: str, params: tuple[Any, ...]) -> bool:
    """Write a step (``step_params``); return whether the run was asked to cancel.

    Each statement is fenced on its own, so this is right even when each commits alone."""
    if tx.changed(STEP_LIVE, params) == 1:
        return False
    if tx.changed(STEP_ANY, params) == 1:
        return True
    raise Fenced(run_id)


def checkpoints(tx: Tx, batch: Sequence[tuple[str, tuple[Any, ...]]]) -> list[bool | Fenced]:
    """``checkpoint`` for each (run id, params); a Fenced in place of a lost lease.

    On PostgreSQL the common statements of the batch go in one pipeline: one round trip
    for the batch instead of one per step; the rare ones (cancel asked, lease lost) follow
    one by one."""
    if len(batch) > 1 and tx.d.name == "postgres" and _can_pipeline():
        return _pipelined(tx, batch)
    out: list[bool | Fenced] = []
    for run_id, params in batch:
        try:
            out.append(checkpoint(tx, run_id, params))
        except Fenced as exc:
            out.append(exc)
    return out


def fence(tx: Tx, run_id: str, token: int, update: bool = False) -> bool:
    """Lock the run row while this lease holds; raise Fenced when the lease moved.
    Returns whether cancellation was asked."""
    lock = "{lock}" if update else "{share}"
    row = tx.one(
        f"SELECT cancel_requested FROM runs WHERE id=? AND lease_token=?{lock}", (run_id, token)
    )
    if row is None:
        raise Fenced(run_id)
    return bool(row[0])


def load_steps(tx: Tx, run_id: str) -> dict[str, StepRow]:
    decode = tx.codec.decode_opt
    rows = tx.all(
        "SELECT step_id, seq, kind, status, output, error, wake_at, "
        "(SELECT count(*) FROM attempts a WHERE a.run_id=s.run_id AND a.step_id=s.step_id), "
        "child_id FROM steps s WHERE run_id=?",
        (run_id,),
    )
    return {
        r[0]: StepRow(r[0], r[1], r[2], r[3], decode(r[4]), decode(r[5]), r[6], r[7], r[8])
        for r in rows
    }


def resolve_wait(tx: Tx, run_id: str, token: int, step_id: str, now: float) -> bool:
    fence(tx, run_id, token)
    return (
        tx.changed(
            "UPDATE steps SET status='completed', output=?, ended_at=? "
            "WHERE run_id=? AND step_id=? AND status='waiting'",
            (tx.codec.encode("null"), now, run_id, step_id),
        )
        == 1
    )


def save_attempt(tx: Tx, run_id: str, token: int, attempt: AttemptWrite) -> None:
    fence(tx, run_id, token)
    tx.execute(
        "INSERT INTO attempts (run_id, step_id, number, started_at, ended_at, "
        "error_type, error_message, traceback) VALUES (?,?,?,?,?,?,?,?) "
        "ON CONFLICT (run_id, step_id, number) DO UPDATE SET "
        "started_at=excluded.started_at, ended_at=excluded.ended_at, "
        "error_type=excluded.error_type, error_message=excluded.error_message, "
        "traceback=excluded.traceback",
        (
            run_id,
            attempt.step_id,
            attempt.number,
            attempt.started_at,
            attempt.ended_at,
            attempt.error_type,
            tx.codec.encode_opt(attempt.error_message),
            tx.codec.encode_opt(attempt.traceback),
        ),
    )


_DONE = (
    "EXISTS (SELECT 1 FROM steps WHERE run_id=? AND {ids} AND status IN ('completed', 'failed'))"
)


def suspend_sleeping(
    tx: Tx, run_id: str, token: int, due_at: float | None, blocked: Sequence[str], now: float
) -> None:
    """Put a sleeping run to rest in one statement, requeued at once if a step it waits
    for is already done. Nothing outside the run resolves a sleep, so no lock is needed:
    the statement waits for a claim in flight and re-checks the token on the row that
    claim committed (fencing)."""
    if not blocked:
        if not tx.changed(
            "UPDATE runs SET status='sleeping', due_at=?, lease_owner=NULL "
            "WHERE id=? AND lease_token=?",
            (due_at, run_id, token),
        ):
            raise Fenced(run_id)
        return
    ids, values = tx.in_("step_id", blocked)
    done = _DONE.format(ids=ids)
    row = tx.one(
        f"UPDATE runs SET status=CASE WHEN {done} THEN 'queued' ELSE 'sleeping' END, "
        f"due_at=CASE WHEN {done} THEN ? ELSE ? END, lease_owner=NULL "
        "WHERE id=? AND lease_token=? RETURNING status",
        (run_id, *values, run_id, *values, now, due_at, run_id, token),
    )
    if row is None:
        raise Fenced(run_id)
    if row[0] == "queued":
        tx.wake()


def suspend_waiting(
    tx: Tx,
    run_id: str,
    token: int,
    status: str,
    due_at: float | None,
    blocked: Sequence[str],
    now: float,
) -> None:
    """Suspend a run waiting for an event or a child, requeued at once if one of the
    steps it waits for is already resolved.

    The run row is locked before the blocked steps are read: an event or a child
    resolving one of them at this moment either committed already (and is seen here) or
    waits for this suspension and then requeues the run (``waits.resolve``)."""
    fence(tx, run_id, token, update=True)
    new_status, due = status, due_at
    if blocked:
        ids, values = tx.in_("step_id", blocked)
        resolved = tx.one(
            f"SELECT 1 FROM steps WHERE run_id=? AND {ids} "
            "AND status IN ('completed', 'failed') LIMIT 1",
            (run_id, *values),
        )
        if resolved:
            new_status, due = "queued", now
    tx.execute(
        "UPDATE runs SET status=?, due_at=?, lease_owner=NULL WHERE id=? AND lease_token=?",
        (new_status, due, run_id, token),
    )
    if new_status == "queued":
        tx.wake()


@functools.cache
def _can_pipeline() -> bool:
    """Whether psycopg's libpq has pipeline mode (libpq 14+; psycopg[binary] bundles one)."""
    import psycopg

    return bool(psycopg.Pipeline.is_supported())


def _pipelined(tx: Tx, batch: Sequence[tuple[str, tuple[Any, ...]]]) -> list[bool | Fenced]:
    conn, live = tx.conn, tx.d.q(STEP_LIVE)
    with conn.pipeline():  # sent together; the results are read when the block ends
        cursors = [conn.execute(live, params) for _, params in batch]
    out: list[bool | Fenced] = []
    for (run_id, params), cursor in zip(batch, cursors, strict=True):
        if cursor.rowcount == 1:
            out.append(False)
        elif tx.changed(STEP_ANY, params) == 1:
            out.append(True)
        else:
            out.append(Fenced(run_id))
    return out
