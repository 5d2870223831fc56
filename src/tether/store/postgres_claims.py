"""Claims on PostgreSQL: which runs a worker takes, under concurrency keys and throttles.

A plain claim is one statement: candidates are locked with ``FOR UPDATE SKIP LOCKED``
(rows another worker is claiming are skipped, never waited for) and updated in place.

A keyed claim must not start more runs of a key than its limit, and counting then
claiming is a race under READ COMMITTED. So after locking its candidates the claim takes
the transaction-scoped advisory lock of every key they use, in one global order (two
claimers cannot deadlock), and only then counts the keys' running runs and recent starts.
The lock's previous holder committed before releasing it and each statement reads a fresh
snapshot, so the count includes its claims; runs beyond a limit are left for later.

Due-order scans read the due index only: ``function_id || ''`` keeps the planner from
sorting a function's whole history when its statistics are stale.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from tether.store.base import Claim
from tether.store.picking import pick
from tether.store.postgres_flow import lock_keys

_CLAIM_COLUMNS = (
    "id, function_id, lease_token, event_name, input, event_id, event_ts, version, "
    "deadline_at, cancel_requested, created_at, started_at, batch_events"
)
# A lease token is never handed out twice for a run, even when the server crashes and
# loses the last asynchronous commits (durability="process"): a new token is above the
# last one and at least the server's clock in milliseconds, which has moved on since.
NEW_TOKEN = "greatest({prev} + 1, floor(extract(epoch FROM clock_timestamp()) * 1000)::bigint)"
_CLAIM_SET = (
    "status='running', lease_owner=%(owner)s, "
    f"lease_token={NEW_TOKEN.format(prev='lease_token')}, due_at=%(until)s, "
    "started_at=coalesce(started_at, %(now)s), "
    "deadline_at=coalesce(deadline_at, %(now)s + timeout_s), "
    "claimed_at=%(now)s"  # when this lease was taken (the run audit's takeovers, 0006)
)
# The candidate filter of a keyed claim (see sqlite.py): keys with a free slot.
_COUNT1 = "(SELECT count(*) FROM runs r WHERE r.ckey1=runs.ckey1 AND r.status='running')"
_COUNT2 = "(SELECT count(*) FROM runs r WHERE r.ckey2=runs.ckey2 AND r.status='running')"
_STARTS = (
    "(SELECT count(*) FROM runs r WHERE r.throttle_key=runs.throttle_key "
    "AND r.started_at > %(now)s - runs.throttle_period)"
)
_KEYS_FREE = (
    f"(status='running' OR ((ckey1 IS NULL OR {_COUNT1} < climit1) AND "
    f"(ckey2 IS NULL OR {_COUNT2} < climit2) AND "
    f"(throttle_key IS NULL OR {_STARTS} < throttle_limit)))"
)


def from_rows(rows: list[Any]) -> list[Claim]:
    return [
        Claim(r[0], r[1], r[2], r[3], r[4], r[5], r[6], r[7], r[8], bool(r[9]), r[10], r[11], r[12])
        for r in rows
    ]


def _params(owner: str, now: float, ttl: float, **more: Any) -> dict[str, Any]:
    return {"owner": owner, "until": now + ttl, "now": now, **more}


def plain(
    conn: Any,
    owner: str,
    limit: int,
    fids: Sequence[str],
    now: float,
    ttl: float,
    busy: Sequence[str] = (),
) -> list[Any]:
    """Lease up to ``limit`` due runs of ``fids`` (one statement), none of ``busy``."""
    rows: list[Any] = conn.execute(
        f"UPDATE runs SET {_CLAIM_SET} WHERE id IN (SELECT id FROM runs "
        "WHERE due_at<=%(now)s AND (function_id || '') = ANY(%(fids)s) "
        "AND NOT (id = ANY(%(busy)s)) "
        f"ORDER BY due_at LIMIT %(limit)s FOR UPDATE SKIP LOCKED) RETURNING {_CLAIM_COLUMNS}",
        _params(owner, now, ttl, fids=list(fids), limit=limit, busy=list(busy)),
    ).fetchall()
    return rows


def keyed(
    conn: Any,
    owner: str,
    limit: int,
    fids: Sequence[str],
    now: float,
    ttl: float,
    busy: Sequence[str] = (),
) -> list[Any]:
    """Lease up to ``limit`` due runs, only those whose keys have a free slot."""
    params = _params(owner, now, ttl, fids=list(fids), limit=limit + 8, busy=list(busy))
    rows = conn.execute(
        "SELECT id, status, ckey1, climit1, ckey2, climit2, throttle_key, throttle_limit, "
        "throttle_period FROM runs WHERE due_at<=%(now)s "
        "AND (function_id || '') = ANY(%(fids)s) "
        f"AND NOT (id = ANY(%(busy)s)) AND {_KEYS_FREE} "
        "ORDER BY due_at LIMIT %(limit)s FOR UPDATE OF runs SKIP LOCKED",
        params,
    ).fetchall()
    if not rows:
        return []
    picked = pick(rows, lock_and_count(conn, rows, now), limit, lambda kind, key: (kind, key))
    if not picked:
        return []
    claimed: list[Any] = conn.execute(
        f"UPDATE runs SET {_CLAIM_SET} WHERE id = ANY(%(ids)s) RETURNING {_CLAIM_COLUMNS}",
        {**params, "ids": picked},
    ).fetchall()
    return claimed


def one(conn: Any, run_id: str, owner: str, now: float, ttl: float) -> list[Any]:
    """Lease one run by id if it is due and its keys have a free slot."""
    params = _params(owner, now, ttl, id=run_id)
    row = conn.execute(
        "SELECT id, status, ckey1, climit1, ckey2, climit2, throttle_key, "
        "throttle_limit, throttle_period FROM runs WHERE id=%(id)s AND due_at<=%(now)s "
        "FOR UPDATE SKIP LOCKED",
        params,
    ).fetchone()
    if row is None:
        return []
    _, status, k1, l1, k2, l2, tk, tl, _ = row
    if status != "running" and (k1 or k2 or tk):
        used = lock_and_count(conn, [row], now)
        slots = ((("c1", k1), l1), (("c2", k2), l2), (("t", tk), tl))
        if any(s[1] is not None and used.get(s, 0) >= lim for s, lim in slots):
            return []
    claimed: list[Any] = conn.execute(
        f"UPDATE runs SET {_CLAIM_SET} WHERE id=%(id)s RETURNING {_CLAIM_COLUMNS}", params
    ).fetchall()
    return claimed


def lock_and_count(conn: Any, rows: list[Any], now: float) -> dict[tuple[str, str], int]:
    """Lock the keys of the runs about to start; return their current usage."""
    pending = [r for r in rows if r[1] != "running"]
    keys1 = sorted({r[2] for r in pending if r[2] is not None})
    keys2 = sorted({r[4] for r in pending if r[4] is not None})
    throttles = {r[6]: r[8] for r in pending if r[6] is not None}
    lock_keys(
        conn,
        [f"concurrency:{k}" for k in (*keys1, *keys2)] + [f"throttle-start:{k}" for k in throttles],
    )
    counts: dict[tuple[str, str], int] = {}
    for column, slot, keys in (("ckey1", "c1", keys1), ("ckey2", "c2", keys2)):
        if keys:
            for key, count in conn.execute(
                f"SELECT {column}, count(*) FROM runs WHERE {column} = ANY(%s) "
                f"AND status='running' GROUP BY {column}",
                (keys,),
            ).fetchall():
                counts[(slot, key)] = count
    for key, period in throttles.items():
        (started,) = conn.execute(
            "SELECT count(*) FROM runs WHERE throttle_key=%s AND started_at>%s",
            (key, now - period),
        ).fetchone()
        counts[("t", key)] = started
    return counts
