"""Creating runs: the flow-control decisions, then the row (shared by every backend)."""

from __future__ import annotations

import copy

from tether.records import TERMINAL_STATUSES
from tether.store import flow_decisions as flow
from tether.store.base import Claim, NewRun
from tether.store.executor import Tx

DAY = 86400.0

_INSERT = (
    "INSERT INTO runs (id, function_id, status, event_name, event_id, event_ts, input, "
    "created_at, started_at, due_at, lease_owner, lease_token, timeout_s, deadline_at, "
    "parent_id, parent_step, replay_of, version, idempotency_key, reason, ended_at, subject) "
    "VALUES (?,?,?,?,?,?,?,?,?,?,?,CASE WHEN ?::boolean THEN {first_token} ELSE 0 END,"
    "?,?,?,?,?,?,?,?,?,?) ON CONFLICT (id) DO NOTHING"
)
_INSERT_RETURNING = _INSERT + " RETURNING lease_token"


def insert_run(
    tx: Tx, run: NewRun, now: float, owner: str | None = None, ttl: float = 0.0
) -> tuple[str, bool, str | None, int]:
    """Insert a run after its flow-control decisions, claimed by ``owner`` if given (and
    the decisions let it start now). Returns (run id, created, decision, lease token);
    the id is an existing run's when the trigger folded into it (idempotency key,
    debounce, batch), the token 0 unless ``owner`` claimed the run."""
    run = copy.copy(run)  # decisions adjust it; a retried transaction starts afresh
    tx.lock(flow.creation_keys(run))
    if run.idempotency_key is not None:
        row = tx.one(
            "SELECT id FROM runs WHERE function_id=? AND idempotency_key=? AND created_at>? "
            "ORDER BY seq LIMIT 1",
            (run.function_id, run.idempotency_key, now - DAY),
        )
        if row:
            return row[0], False, f"idempotency: run {row[0]} has this key", 0
    if run.flow is not None:
        folded = flow.decide(tx, run, now)
        if folded is not None:
            return folded[0], False, folded[1], 0
        if run.status != "queued":
            owner = None
    claimed = owner is not None
    terminal = run.status in TERMINAL_STATUSES
    params = (
        run.id,
        run.function_id,
        "running" if claimed else run.status,
        run.event_name,
        run.event_id,
        run.event_ts,
        tx.codec.encode(run.input),
        now,
        now if claimed else None,
        None if terminal else (now + ttl if claimed else run.due_at),
        owner,
        claimed,
        run.timeout_s,
        now + run.timeout_s if claimed and run.timeout_s is not None else None,
        run.parent_id,
        run.parent_step,
        run.replay_of,
        run.version,
        run.idempotency_key,
        run.reason,
        now if terminal else None,
        run.subject,
    )
    token = tx.d.first_token
    if token is None:  # the server computes it: read it back
        row = tx.one(_INSERT_RETURNING, params)
        created, token = row is not None, row[0] if row is not None else 0
    else:
        created = tx.changed(_INSERT, params) == 1
    if created and run.flow is not None:
        flow.after_insert(tx, run, now)
    decision = run.reason if run.status == "skipped" else None
    return run.id, created, decision, token if created and claimed else 0


def new_claim(run: NewRun, token: int, now: float) -> Claim:
    """The claim of a run its creator claimed in the creating transaction."""
    return Claim(
        run.id,
        run.function_id,
        token,
        run.event_name,
        run.input,
        run.event_id,
        run.event_ts,
        run.version,
        now + run.timeout_s if run.timeout_s is not None else None,
        False,
        now,
        now,
        subject=run.subject,
    )
