"""Claims: which due runs a worker takes, under concurrency keys and throttles.

A plain claim is one statement: the due runs are updated in place and returned. Where
writers run concurrently (PostgreSQL) candidates are locked with ``FOR UPDATE SKIP
LOCKED``: rows another worker is claiming are skipped, never waited for.

A keyed claim must not start more runs of a key than its limit. Candidates whose keys
are saturated are filtered out in SQL (``KEYS_FREE``); candidates sharing a key within
one batch are counted here (``picking.pick``). Under READ COMMITTED counting then
claiming is a race, so there the claim first takes the transaction-scoped advisory lock of
every key its candidates use, in one global order (two claimers cannot deadlock), and
only then counts the keys' running runs and recent starts: the lock's previous holder
committed before releasing it, and each statement reads a fresh snapshot. SQLite's
writers are serialised, so its SQL check is already current.

Due-order scans read the due index only (``Dialect.unindexed(function_id)``): the planner
must not sort a function's whole history when its statistics are stale.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from tether.store.base import Claim
from tether.store.executor import Tx
from tether.store.picking import Slot, pick

COLUMNS = (
    "id, function_id, lease_token, event_name, input, event_id, event_ts, version, "
    "deadline_at, cancel_requested, created_at, started_at, batch_events, subject"
)
SET = (
    "status='running', lease_owner=:owner, lease_token={next_token}, due_at=:until, "
    "started_at=coalesce(started_at, :now), deadline_at=coalesce(deadline_at, :now + timeout_s), "
    "claimed_at=:now"  # when this lease was taken: the run audit's takeovers (migration 0006)
)
# A run of a key with ``Concurrency(hold=True)`` that started keeps its slot while it
# sleeps, waits or is queued to resume: it counts as running for the keys, and resuming it
# takes no new slot.
_HOLDING = "(chold=1 AND started_at IS NOT NULL)"
_HELD = "r.chold=1 AND r.started_at IS NOT NULL AND r.status IN ('queued', 'sleeping', 'waiting')"
_CANDIDATE = (
    f"id, CASE WHEN {_HOLDING} THEN 'running' ELSE status END, ckey1, climit1, ckey2, "
    "climit2, throttle_key, throttle_limit, throttle_period"
)
# Scoped (shared) concurrency keys always sit in ckey2, unscoped ones in ckey1, so a key
# is counted in one column only.
_COUNT1 = (
    "((SELECT count(*) FROM runs r WHERE r.ckey1=runs.ckey1 AND r.status='running') + "
    f"CASE WHEN runs.chold=1 THEN (SELECT count(*) FROM runs r WHERE r.ckey1=runs.ckey1 "
    f"AND {_HELD}) ELSE 0 END)"
)
_COUNT2 = (
    "((SELECT count(*) FROM runs r WHERE r.ckey2=runs.ckey2 AND r.status='running') + "
    f"CASE WHEN runs.chold=1 THEN (SELECT count(*) FROM runs r WHERE r.ckey2=runs.ckey2 "
    f"AND {_HELD}) ELSE 0 END)"
)
_STARTS = (
    "(SELECT count(*) FROM runs r WHERE r.throttle_key=runs.throttle_key "
    "AND r.started_at > :now - runs.throttle_period)"
)
# A run may start when each of its concurrency keys has a free slot and its throttle key
# has a start left in the period (a takeover of a running run, or a run resuming a slot it
# holds, is already counted).
KEYS_FREE = (
    f"(status='running' OR {_HOLDING} OR ((ckey1 IS NULL OR {_COUNT1} < climit1) AND "
    f"(ckey2 IS NULL OR {_COUNT2} < climit2) AND "
    f"(throttle_key IS NULL OR {_STARTS} < throttle_limit)))"
)


def from_rows(tx: Tx, rows: list[Any]) -> list[Claim]:
    decode, decode_opt = tx.codec.decode, tx.codec.decode_opt
    return [
        Claim(
            r[0],
            r[1],
            r[2],
            r[3],
            decode(r[4]),
            r[5],
            r[6],
            r[7],
            r[8],
            bool(r[9]),
            r[10],
            r[11],
            decode_opt(r[12]),
            r[13],
        )
        for r in rows
    ]


def _in(tx: Tx, column: str, values: Sequence[Any], name: str) -> tuple[str, dict[str, Any]]:
    """``column IN values`` with named parameters ``name0, name1...`` (SQLite) or one
    array parameter (PostgreSQL)."""
    if tx.d.name == "postgres":
        return f"{column} = ANY(:{name})", {name: list(values)}
    marks = ",".join(f":{name}{i}" for i in range(len(values)))
    return f"{column} IN ({marks})", {f"{name}{i}": v for i, v in enumerate(values)}


def _due(tx: Tx, fids: Sequence[str], busy: Sequence[str]) -> tuple[str, dict[str, Any]]:
    """The due runs of ``fids``, none of ``busy``: a WHERE clause and its parameters."""
    where, params = _in(tx, tx.d.unindexed("function_id"), fids, "fid")
    if busy:
        not_busy, more = _in(tx, "id", busy, "busy")
        where += f" AND NOT ({not_busy})"
        params.update(more)
    return f"due_at<=:now AND {where}", params


def _params(owner: str, now: float, ttl: float, **more: Any) -> dict[str, Any]:
    return {"owner": owner, "until": now + ttl, "now": now, **more}


def plain(
    tx: Tx, owner: str, limit: int, fids: Sequence[str], now: float, ttl: float, busy: Sequence[str]
) -> list[Any]:
    """Lease up to ``limit`` due runs of ``fids`` (one statement), none of ``busy``."""
    where, params = _due(tx, fids, busy)
    return tx.all(
        f"UPDATE runs SET {SET} WHERE id IN (SELECT id FROM runs WHERE {where} "
        f"ORDER BY due_at LIMIT :limit{{skip_locked}}) RETURNING {COLUMNS}",
        {**_params(owner, now, ttl, limit=limit), **params},
    )


def keyed(
    tx: Tx, owner: str, limit: int, fids: Sequence[str], now: float, ttl: float, busy: Sequence[str]
) -> list[Any]:
    """Lease up to ``limit`` due runs, only those whose keys have a free slot."""
    where, params = _due(tx, fids, busy)
    params.update(_params(owner, now, ttl, limit=limit + 8))
    rows = tx.all(
        f"SELECT {_CANDIDATE} FROM runs WHERE {where} AND {KEYS_FREE} "
        "ORDER BY due_at LIMIT :limit{skip_locked_runs}",
        params,
    )
    if not rows:
        return []
    picked = pick(rows, usage(tx, rows, now), limit)
    if not picked:
        return []
    ids, more = _in(tx, "id", picked, "pick")
    return tx.all(
        f"UPDATE runs SET {SET} WHERE {ids} RETURNING {COLUMNS}",
        {**_params(owner, now, ttl), **more},
    )


def one(tx: Tx, run_id: str, owner: str, now: float, ttl: float) -> list[Any]:
    """Lease one run by id if it is due and its keys have a free slot."""
    params = _params(owner, now, ttl, id=run_id)
    if tx.d.serialised:  # nobody can claim between the check and the update
        return tx.all(
            f"UPDATE runs SET {SET} WHERE id=:id AND due_at<=:now AND {KEYS_FREE} "
            f"RETURNING {COLUMNS}",
            params,
        )
    row = tx.one(
        f"SELECT {_CANDIDATE} FROM runs WHERE id=:id AND due_at<=:now{{skip_locked}}", params
    )
    if row is None:
        return []
    _, status, k1, l1, k2, l2, tk, tl, _ = row
    if status != "running" and (k1 or k2 or tk):
        used = usage(tx, [row], now)
        slots = ((("c1", k1), l1), (("c2", k2), l2), (("t", tk), tl))
        if any(s[1] is not None and used.get(s, 0) >= lim for s, lim in slots):
            return []
    return tx.all(f"UPDATE runs SET {SET} WHERE id=:id RETURNING {COLUMNS}", params)


def usage(tx: Tx, rows: Sequence[Sequence[Any]], now: float) -> dict[Slot, int]:
    """Current use of the keys of candidates about to start: running runs per concurrency
    key, recent starts per throttle key (locked first where writers are concurrent).

    With serialised writers each candidate passed the SQL check alone, so only keys that
    several candidates share need counting."""
    pending = [r for r in rows if r[1] != "running"]

    def keys(index: int) -> list[str]:
        seen = [r[index] for r in pending if r[index] is not None]
        if tx.d.serialised:
            seen = [k for k in seen if seen.count(k) > 1]
        return sorted(set(seen))

    keys1, keys2, throttled = keys(2), keys(4), keys(6)
    periods = {r[6]: r[8] for r in pending if r[6] is not None}
    if not tx.d.serialised:
        tx.lock(
            [f"concurrency:{k}" for k in (*keys1, *keys2)]
            + [f"throttle-start:{k}" for k in throttled]
        )
    counts: dict[Slot, int] = {}
    for column, slot, found in (("ckey1", "c1", keys1), ("ckey2", "c2", keys2)):
        if found:
            where, params = tx.in_(column, found)
            for key, count in tx.all(
                f"SELECT {column}, count(*) FROM runs r WHERE {where} "
                f"AND (r.status='running' OR ({_HELD})) GROUP BY {column}",
                params,
            ):
                counts[(slot, key)] = count
    for key in throttled:
        (started,) = tx.one(
            "SELECT count(*) FROM runs WHERE throttle_key=? AND started_at>?",
            (key, now - periods[key]),
        )
        counts[("t", key)] = started
    return counts
