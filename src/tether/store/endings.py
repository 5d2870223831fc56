"""Ending runs: finishing, cancelling on request, pruning (shared by every backend)."""

from __future__ import annotations

from tether.codec import dumps
from tether.store import waits
from tether.store.base import Fenced, NewRun
from tether.store.creation import insert_run
from tether.store.executor import Tx

TERMINAL = "('completed', 'failed', 'cancelled', 'skipped')"

# Most runs have no parent to wake: then one fenced UPDATE ends the run.
FINISH_ALONE = (
    "UPDATE runs SET status=?, output=?, error=?, ended_at=?, due_at=NULL, lease_owner=NULL "
    f"WHERE id=? AND lease_token=? AND parent_id IS NULL AND status NOT IN {TERMINAL}"
)


def finish(
    tx: Tx,
    run_id: str,
    token: int | None,
    status: str,
    output: str | None,
    error: str | None,
    now: float,
    follow_up: NewRun | None,
) -> bool:
    """End a run (``output``/``error`` already encoded): resolve the parent's step waiting
    on it and create the follow-up run. ``token=None`` skips fencing. Returns False when
    the run had ended already; raises Fenced when another worker holds it."""
    row = tx.one(
        "UPDATE runs SET status=?, output=?, error=?, ended_at=?, due_at=NULL, "
        "lease_owner=NULL WHERE id=? AND (?::bigint IS NULL OR lease_token=?) "
        f"AND status NOT IN {TERMINAL} RETURNING parent_id, parent_step",
        (status, output, error, now, run_id, token, token),
    )
    if row is None:
        if token is not None:
            raise Fenced(run_id)
        return False
    parent_id, parent_step = row
    if parent_id is not None:
        ok = status == "completed"
        waits.resolve(
            tx,
            parent_id,
            parent_step,
            "completed" if ok else "failed",
            output if ok else None,
            None if ok else error,
            now,
        )
    if follow_up is not None:
        insert_run(tx, follow_up, now)
    if parent_id is not None or follow_up is not None:
        tx.wake()
    return True


def request_cancel(tx: Tx, run_id: str, now: float) -> str | None:
    """Cancel a run that is not executing, flag an executing one; one transaction, the
    run's row locked first, so no claim can slip between the check and the cancel."""
    row = tx.one("SELECT status FROM runs WHERE id=?{lock}", (run_id,))
    if row is None:
        return None
    status: str = row[0]
    if status == "running":
        tx.execute("UPDATE runs SET cancel_requested=1 WHERE id=?", (run_id,))
    elif status in ("queued", "sleeping", "waiting"):
        error = tx.codec.encode(dumps({"type": "RunCancelled", "message": "cancelled by request"}))
        finish(tx, run_id, None, "cancelled", None, error, now, None)
        return "cancelled"
    return status


def prune(tx: Tx, before: float, events_before: float) -> dict[str, int]:
    """Delete finished runs that ended before ``before`` (with everything that belongs to
    them) and events received before ``events_before``."""
    old = f"SELECT id FROM runs WHERE ended_at < ? AND status IN {TERMINAL}"
    steps = tx.changed(f"DELETE FROM steps WHERE run_id IN ({old})", (before,))
    tx.execute(f"DELETE FROM attempts WHERE run_id IN ({old})", (before,))
    tx.execute(f"DELETE FROM cancel_waits WHERE run_id IN ({old})", (before,))
    runs = tx.changed(f"DELETE FROM runs WHERE ended_at < ? AND status IN {TERMINAL}", (before,))
    events = tx.changed("DELETE FROM events WHERE received_at < ?", (events_before,))
    return {"runs": runs, "steps": steps, "events": events}
