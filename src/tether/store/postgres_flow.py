"""Key locks for the flow-control decisions on PostgreSQL (``flow_decisions`` decides).

The decisions (rate limit, singleton, debounce, batch, throttle, priority) are made safe
for many writers: SQLite serialises every write, PostgreSQL does not,
so each decision first takes a transaction-scoped advisory lock on its key. Two processes
creating runs for one key then decide one after the other, and the second sees the first's
committed run (READ COMMITTED reads a fresh snapshot per statement).
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

from tether.store.base import NewRun

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
