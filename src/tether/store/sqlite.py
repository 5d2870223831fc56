"""The embedded SQLite store (stdlib ``sqlite3``, WAL), tether's zero-set-up default.

One write connection per process, shared through group commit (``committer.py``); one
read connection per thread. ``durability="process"`` commits with ``synchronous=NORMAL``
(a commit survives any process crash; accepted events are synced to disk all the same),
``durability="power"`` with ``synchronous=FULL`` (every commit reaches the disk before
the next step starts; concurrent checkpoints share one fsync).
"""

from __future__ import annotations

import contextlib
import math
import os
import sqlite3
import threading
from collections.abc import Callable, Iterator, Sequence
from importlib import resources
from typing import Any, TypeVar

from tether.codec import dumps, loads
from tether.errors import (
    ConfigurationError,
    SchemaVersionError,
    StoreCorrupt,
    StoreError,
    StoreFull,
    StoreLocked,
)
from tether.records import TERMINAL_STATUSES, Run
from tether.store import flow_decisions as flow
from tether.store import waits
from tether.store.base import (
    Accepted,
    AttemptWrite,
    Claim,
    EventRow,
    Fenced,
    NewRun,
    Planner,
    StepRow,
    StepWrite,
    Store,
)
from tether.store.committer import GroupCommitter, Op
from tether.store.flow_decisions import SQLITE
from tether.store.picking import pick
from tether.store.queries import (
    RETRIES_SQL,
    STATS_SQL,
    RunQuery,
    events_sql,
    runs_sql,
)
from tether.store.rows import build_run

T = TypeVar("T")
DAY = 86400.0

_CLAIM_COLUMNS = (
    "id, function_id, lease_token, event_name, input, event_id, event_ts, version, "
    "deadline_at, cancel_requested, created_at, started_at, batch_events"
)
_CLAIM_SET = (
    "status='running', lease_owner=?, lease_token=lease_token+1, due_at=?, "
    "started_at=coalesce(started_at, ?), deadline_at=coalesce(deadline_at, ? + timeout_s), "
    "claimed_at=?"  # when this lease was taken (the run audit's takeovers, migration 0006)
)
_RUN_INSERT = (
    "INSERT INTO runs (id, function_id, status, event_name, event_id, event_ts, input, "
    "created_at, started_at, due_at, lease_owner, lease_token, timeout_s, deadline_at, "
    "parent_id, parent_step, replay_of, version, idempotency_key, reason, ended_at) "
    "VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?) ON CONFLICT(id) DO NOTHING"
)
# Scoped (shared) concurrency keys always sit in ckey2, unscoped ones in ckey1, so a key
# is counted in one column only.
_COUNT1 = "(SELECT count(*) FROM runs r WHERE r.ckey1=runs.ckey1 AND r.status='running')"
_COUNT2 = "(SELECT count(*) FROM runs r WHERE r.ckey2=runs.ckey2 AND r.status='running')"
# Starts of the run's throttle key within its period (``{now}`` is filled in per claim).
_STARTS = (
    "CASE WHEN throttle_key IS NULL THEN 0 ELSE (SELECT count(*) FROM runs r WHERE "
    "r.throttle_key=runs.throttle_key AND r.started_at > {now} - runs.throttle_period) END"
)
# A run may start when each of its concurrency keys has a free slot and its throttle key
# has a start left in the period (a takeover of a running run is already counted).
_KEYS_FREE = (
    f"(status='running' OR ((ckey1 IS NULL OR {_COUNT1} < climit1) AND "
    f"(ckey2 IS NULL OR {_COUNT2} < climit2) AND "
    f"(throttle_key IS NULL OR {_STARTS} < throttle_limit)))"
)
_STEP_UPSERT = (
    "INSERT INTO steps (run_id, step_id, seq, kind, status, output, error, started_at, "
    "ended_at, wake_at, wait_event, wait_match, wait_value, wait_if, child_id) "
    "SELECT ?,?,?,?,?,?,?,?,?,?,?,?,?,?,? WHERE EXISTS "
    "(SELECT 1 FROM runs WHERE id=? AND lease_token=? {cancel}) "
    "ON CONFLICT(run_id, step_id) DO UPDATE SET status=excluded.status, "
    "output=excluded.output, error=excluded.error, "
    "started_at=CASE WHEN steps.kind='sleep' THEN coalesce(steps.started_at, "
    "excluded.started_at) ELSE excluded.started_at END, "  # a sleep started when it fell asleep
    "ended_at=excluded.ended_at, wake_at=excluded.wake_at, wait_event=excluded.wait_event, "
    "wait_match=excluded.wait_match, wait_value=excluded.wait_value, "
    "wait_if=excluded.wait_if, child_id=excluded.child_id"
)
_STEP_UPSERT_LIVE = _STEP_UPSERT.format(cancel="AND cancel_requested=0")
_STEP_UPSERT_ANY = _STEP_UPSERT.format(cancel="")


def _translate(exc: sqlite3.Error, path: str) -> StoreError:
    text = str(exc)
    low = text.lower()
    if "locked" in low or "busy" in low:
        return StoreLocked(
            f"the SQLite store {path} stayed locked by another process ({text}). Another "
            "tether process is holding a long write, or a tool has the file open in a "
            "transaction: close it, or raise the busy timeout with "
            "Harness(store='sqlite:///...?timeout=30')."
        )
    if "full" in low:
        return StoreFull(
            f"the SQLite store {path} cannot grow: {text}. Nothing from this write was "
            "kept. Free disk space (or prune old runs with `tether prune --older-than 30d`) "
            "and retry."
        )
    if "not a database" in low or "malformed" in low or "corrupt" in low:
        return StoreCorrupt(
            f"{path} is not a readable tether store: {text}. Restore it from a backup, or "
            "point TETHER_STORE at a new file; tether never overwrites a damaged file."
        )
    return StoreError(f"SQLite store {path}: {text}")


def _ln(x: float | None) -> float | None:
    """SQLite's ln() where the build has no math functions (NULL outside its domain)."""
    return math.log(x) if x is not None and x > 0 else None


def _tether_tables(conn: sqlite3.Connection, path: str) -> set[str]:
    """The file's tables; StoreCorrupt when it holds another application's tables."""
    tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    if "tether_meta" not in tables and tables - {"sqlite_sequence"}:
        raise StoreCorrupt(
            f"{path} is a SQLite database but not a tether store (it has tables "
            f"{sorted(tables)[:5]}). Point TETHER_STORE at a new file."
        )
    return tables


class SQLiteStore(Store):
    def __init__(self, path: str, durability: str = "process", timeout: float = 10.0) -> None:
        if durability not in ("process", "power"):
            raise ConfigurationError(
                f"durability={durability!r} is not a mode: use 'process' (the default) or 'power'"
            )
        self.path = path
        self.url = f"sqlite:///{path}"
        self.durability = durability
        self._timeout = timeout
        parent = os.path.dirname(os.path.abspath(path))
        os.makedirs(parent, exist_ok=True)
        self._local = threading.local()
        self._all: list[sqlite3.Connection] = []
        self._conns_lock = threading.Lock()
        self._write = self._connect()
        self._committer: GroupCommitter[sqlite3.Connection] = GroupCommitter(self._run_batch)
        self._closed = False
        self._commits = 0
        self.operations = 0  # writes committed; with ``commits``, shows group commit at work

    # -- connections --------------------------------------------------------------------
    def _connect(self) -> sqlite3.Connection:
        try:
            conn = sqlite3.connect(
                self.path, timeout=self._timeout, isolation_level=None, check_same_thread=False
            )
        except sqlite3.Error as exc:
            raise _translate(exc, self.path) from None
        try:
            _tether_tables(conn, self.path)  # before WAL mode rewrites another app's file
            conn.execute("PRAGMA journal_mode=WAL")
            sync = "FULL" if self.durability == "power" else "NORMAL"
            conn.execute(f"PRAGMA synchronous={sync}")
            try:  # the run audit buckets latencies with ln(); builds without math functions
                conn.execute("SELECT ln(1.0)")
            except sqlite3.OperationalError:
                conn.create_function("ln", 1, _ln, deterministic=True)
        except (sqlite3.Error, StoreError) as exc:
            conn.close()
            if isinstance(exc, StoreError):
                raise
            raise _translate(exc, self.path) from None
        with self._conns_lock:
            self._all.append(conn)
        return conn

    def _reader(self) -> sqlite3.Connection:
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            conn = self._connect()
            self._local.conn = conn
        return conn

    @contextlib.contextmanager
    def _errors(self) -> Iterator[None]:
        try:
            yield
        except sqlite3.Error as exc:
            raise _translate(exc, self.path) from None

    def _read(self, sql: str, params: Sequence[Any] = ()) -> list[Any]:
        with self._errors():
            return self._reader().execute(sql, params).fetchall()

    def _run_batch(self, ops: list[Op[sqlite3.Connection]]) -> None:
        conn = self._write
        raise_sync = self.durability != "power" and any(op.sync for op in ops)
        try:
            if raise_sync:
                conn.execute("PRAGMA synchronous=FULL")
            conn.execute("BEGIN IMMEDIATE")
            try:
                for op in ops:
                    op.result = op.fn(conn)
                conn.execute("COMMIT")
                self._commits += 1
                self.operations += len(ops)
            except BaseException:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise
        except sqlite3.Error as exc:
            raise _translate(exc, self.path) from None
        finally:
            if raise_sync:
                with contextlib.suppress(sqlite3.Error):
                    conn.execute("PRAGMA synchronous=NORMAL")

    @property
    def commits(self) -> int:
        """Transactions committed by this process."""
        return self._commits

    def _write_op(self, fn: Callable[[sqlite3.Connection], T], sync: bool = False) -> T:
        if self._closed:
            raise StoreError(f"the store {self.path} is closed")
        return self._committer.submit(fn, sync=sync)

    def close(self) -> None:
        self._closed = True
        with self._conns_lock:
            conns, self._all = self._all, []
        for conn in conns:
            with contextlib.suppress(sqlite3.Error):
                conn.close()

    # -- schema ----------------------------------------------------------------------------
    def migrate(self) -> int:
        folder = resources.files("tether.store.migrations") / "sqlite"
        files = sorted(
            (f for f in folder.iterdir() if f.name.endswith(".sql")), key=lambda f: f.name
        )
        latest = len(files)

        def op(conn: sqlite3.Connection) -> int:
            if "tether_meta" in _tether_tables(conn, self.path):
                row = conn.execute(
                    "SELECT value FROM tether_meta WHERE key='schema_version'"
                ).fetchone()
                version = int(row[0]) if row else 0
            else:
                version = 0
            if version > latest:
                raise SchemaVersionError(
                    f"the store {self.path} has schema version {version}, newer than this "
                    f"tether understands ({latest}). Upgrade tether (pip install -U tether) "
                    "on this machine; never point an older tether at a newer store."
                )
            for number, file in enumerate(files, start=1):
                if number > version:
                    for statement in file.read_text().split(";\n"):
                        if statement.strip():
                            conn.execute(statement)
            conn.execute(
                "INSERT INTO tether_meta (key, value) VALUES ('schema_version', ?) "
                "ON CONFLICT(key) DO UPDATE SET value=excluded.value",
                (str(max(version, latest)),),
            )
            return max(version, latest)

        return self._write_op(op)

    # -- functions ---------------------------------------------------------------------
    def register_functions(self, rows: Sequence[dict[str, Any]], now: float) -> None:
        def op(conn: sqlite3.Connection) -> None:
            conn.executemany(
                "INSERT INTO functions (id, triggers, idempotency, version, updated_at) "
                "VALUES (?,?,?,?,?) ON CONFLICT(id) DO UPDATE SET triggers=excluded.triggers, "
                "idempotency=excluded.idempotency, version=excluded.version, "
                "updated_at=excluded.updated_at",
                [
                    (r["id"], dumps(r["triggers"]), r.get("idempotency"), r.get("version"), now)
                    for r in rows
                ],
            )

        self._write_op(op)

    def registered_functions(self) -> list[dict[str, Any]]:
        rows = self._read("SELECT id, triggers, idempotency, version FROM functions")
        return [
            {"id": r[0], "triggers": loads(r[1]), "idempotency": r[2], "version": r[3]}
            for r in rows
        ]

    # -- events and runs ------------------------------------------------------------------
    def _insert_run(
        self,
        conn: sqlite3.Connection,
        run: NewRun,
        now: float,
        owner: str | None = None,
        ttl: float = 0.0,
    ) -> tuple[str, bool, str | None]:
        """Insert a run after its flow-control decisions. Returns (run id, created,
        decision), the id being an existing run's when the trigger folded into it."""
        if run.idempotency_key is not None:
            row = conn.execute(
                "SELECT id FROM runs WHERE function_id=? AND idempotency_key=? AND created_at>? "
                "ORDER BY seq LIMIT 1",
                (run.function_id, run.idempotency_key, now - DAY),
            ).fetchone()
            if row:
                return row[0], False, f"idempotency: run {row[0]} has this key"
        if run.flow is not None:
            folded = flow.decide(conn, run, now, SQLITE)
            if folded is not None:
                return folded[0], False, folded[1]
            if run.status != "queued":
                owner = None
        claimed = owner is not None
        terminal = run.status in TERMINAL_STATUSES
        cur = conn.execute(
            _RUN_INSERT,
            (
                run.id,
                run.function_id,
                "running" if claimed else run.status,
                run.event_name,
                run.event_id,
                run.event_ts,
                run.input,
                now,
                now if claimed else None,
                None if terminal else (now + ttl if claimed else run.due_at),
                owner,
                1 if claimed else 0,
                run.timeout_s,
                now + run.timeout_s if claimed and run.timeout_s is not None else None,
                run.parent_id,
                run.parent_step,
                run.replay_of,
                run.version,
                run.idempotency_key,
                run.reason,
                now if terminal else None,
            ),
        )
        created = cur.rowcount == 1
        if created and run.flow is not None:
            flow.after_insert(conn, run, now, SQLITE)
        return run.id, created, run.reason if run.status == "skipped" else None

    def accept(self, events: Sequence[EventRow], plan: Planner, now: float) -> list[Accepted]:
        def op(conn: sqlite3.Connection) -> list[Accepted]:
            out: list[Accepted] = []
            for ev in events:
                cur = conn.execute(
                    "INSERT INTO events (id, name, data, ts, received_at) VALUES (?,?,?,?,?) "
                    "ON CONFLICT(id) DO UPDATE SET name=excluded.name, data=excluded.data, "
                    "ts=excluded.ts, received_at=excluded.received_at "
                    "WHERE events.received_at < ?",
                    (ev.id, ev.name, ev.data, ev.ts, now, now - DAY),
                )
                if cur.rowcount == 0:
                    out.append(Accepted(ev.id, True))
                    continue
                run_ids = []
                decisions = []
                for new in plan(ev):
                    rid, created, decision = self._insert_run(conn, new, now)
                    if created:
                        run_ids.append(rid)
                    if decision is not None:
                        decisions.append(
                            {"function": new.function_id, "run_id": rid, "decision": decision}
                        )
                self._wake_waiters(conn, ev, now)
                doc = {"name": ev.name, "data": loads(ev.data), "id": ev.id}
                for rid in flow.cancel_by_event(conn, ev.name, doc, ev.id, now, SQLITE):
                    decisions.append({"run_id": rid, "decision": "cancelled this run"})
                if decisions:
                    conn.execute(
                        "UPDATE events SET decisions=? WHERE id=?", (dumps(decisions), ev.id)
                    )
                out.append(Accepted(ev.id, False, run_ids))
            return out

        result = self._write_op(op, sync=True)
        self.notify()
        return result

    def _wake_waiters(self, conn: sqlite3.Connection, ev: EventRow, now: float) -> None:
        payload, found = waits.waiting_for(conn, ev, SQLITE)
        for run_id, step_id in found:
            conn.execute(
                "UPDATE steps SET status='completed', output=?, ended_at=? "
                "WHERE run_id=? AND step_id=? AND status='waiting'",
                (payload, now, run_id, step_id),
            )
            conn.execute(
                "UPDATE runs SET status='queued', due_at=? "
                "WHERE id=? AND status IN ('waiting', 'sleeping')",
                (now, run_id),
            )

    def recent_events(self, name: str, since: float) -> list[EventRow]:
        rows = self._read(
            "SELECT id, name, data, ts FROM events WHERE name=? AND received_at>=? "
            "ORDER BY received_at",
            (name, since),
        )
        return [EventRow(r[0], r[1], r[2], r[3]) for r in rows]

    def create_run(
        self, run: NewRun, now: float, owner: str | None = None, ttl: float = 0.0
    ) -> tuple[str, bool, Claim | None]:
        def op(conn: sqlite3.Connection) -> tuple[str, bool, Claim | None]:
            row = conn.execute("SELECT id FROM runs WHERE id=?", (run.id,)).fetchone()
            if row:
                return run.id, False, None
            owner_now = None if run.flow is not None and run.flow.delays_start else owner
            rid, created, _ = self._insert_run(conn, run, now, owner_now, ttl)
            if not (created and owner_now is not None):
                return rid, created, None
            claim = Claim(
                rid,
                run.function_id,
                1,
                run.event_name,
                run.input,
                run.event_id,
                run.event_ts,
                run.version,
                now + run.timeout_s if run.timeout_s is not None else None,
                False,
                now,
                now,
            )
            return rid, True, claim

        result = self._write_op(op)
        if result[1] and result[2] is None:
            self.notify()
        return result

    def fork(self, run_id: str, from_step: str | None, new: NewRun, now: float) -> str:
        def op(conn: sqlite3.Connection) -> str:
            limit = None
            if from_step is not None:
                row = conn.execute(
                    "SELECT seq FROM steps WHERE run_id=? AND step_id=?", (run_id, from_step)
                ).fetchone()
                if row is None:
                    known = [
                        r[0]
                        for r in conn.execute(
                            "SELECT step_id FROM steps WHERE run_id=? ORDER BY seq", (run_id,)
                        )
                    ]
                    raise ConfigurationError(
                        f"run {run_id} has no step {from_step!r}; its steps are {known}"
                    )
                limit = row[0]
            self._insert_run(conn, new, now)
            if limit is not None:
                conn.execute(
                    "INSERT INTO steps (run_id, step_id, seq, kind, status, output, error, "
                    "started_at, ended_at, wake_at, child_id) SELECT ?, step_id, seq, kind, "
                    "status, output, error, started_at, ended_at, wake_at, child_id FROM steps "
                    "WHERE run_id=? AND seq<? AND status IN ('completed', 'failed')",
                    (new.id, run_id, limit),
                )
            return new.id

        rid = self._write_op(op)
        self.notify()
        return rid

    # -- claiming ----------------------------------------------------------------------
    @staticmethod
    def _claims(rows: list[Any]) -> list[Claim]:
        return [
            Claim(
                r[0],
                r[1],
                r[2],
                r[3],
                r[4],
                r[5],
                r[6],
                r[7],
                r[8],
                bool(r[9]),
                r[10],
                r[11],
                r[12],
            )
            for r in rows
        ]

    def claim(
        self,
        owner: str,
        limit: int,
        function_ids: Sequence[str],
        now: float,
        ttl: float,
        keyed: bool = False,
        exclude: Sequence[str] = (),
    ) -> list[Claim]:
        if not function_ids or limit <= 0:
            return []
        marks = ",".join("?" * len(function_ids))
        busy = f"AND id NOT IN ({','.join('?' * len(exclude))}) " if exclude else ""
        if keyed:
            return self._claim_keyed(owner, limit, function_ids, now, ttl, busy, exclude)
        sql = (
            f"UPDATE runs SET {_CLAIM_SET} WHERE id IN (SELECT id FROM runs WHERE due_at<=? "
            f"AND +function_id IN ({marks}) {busy}"
            f"ORDER BY due_at LIMIT ?) RETURNING {_CLAIM_COLUMNS}"
        )
        params = (owner, now + ttl, now, now, now, now, *function_ids, *exclude, limit)
        return self._claims(self._write_op(lambda c: c.execute(sql, params).fetchall()))

    def _claim_keyed(
        self,
        owner: str,
        limit: int,
        function_ids: Sequence[str],
        now: float,
        ttl: float,
        busy: str,
        exclude: Sequence[str],
    ) -> list[Claim]:
        """Claim while honouring concurrency keys: candidates whose keys are saturated are
        skipped in SQL; candidates sharing a key within this batch are counted here."""
        marks = ",".join("?" * len(function_ids))
        select = (
            "SELECT id, status, ckey1, climit1, ckey2, climit2, throttle_key, throttle_limit, "
            f"throttle_period FROM runs WHERE due_at<=? AND +function_id IN ({marks}) "
            f"{busy}AND {_KEYS_FREE} "
            "ORDER BY due_at LIMIT ?"
        ).replace("{now}", repr(float(now)))

        def op(conn: sqlite3.Connection) -> list[Any]:
            rows = conn.execute(select, (now, *function_ids, *exclude, limit + 8)).fetchall()
            if not rows:
                return []
            picked = pick(rows, self._key_counts(conn, rows, now), limit)
            if not picked:
                return []
            ids = ",".join("?" * len(picked))
            return conn.execute(
                f"UPDATE runs SET {_CLAIM_SET} WHERE id IN ({ids}) RETURNING {_CLAIM_COLUMNS}",
                (owner, now + ttl, now, now, now, *picked),
            ).fetchall()

        return self._claims(self._write_op(op))

    @staticmethod
    def _key_counts(conn: sqlite3.Connection, rows: list[Any], now: float) -> dict[str, int]:
        """Running runs per concurrency key and recent starts per throttle key."""
        # Each candidate passed the SQL check (its keys have a free slot), so only keys
        # shared by several candidates need their current counts.
        counts: dict[str, int] = {}
        for column, index in (("ckey1", 2), ("ckey2", 4)):
            seen = [r[index] for r in rows if r[index] is not None and r[1] != "running"]
            keys = sorted({k for k in seen if seen.count(k) > 1})
            if keys:
                marks = ",".join("?" * len(keys))
                counts.update(
                    conn.execute(
                        f"SELECT {column}, count(*) FROM runs WHERE {column} IN ({marks}) "
                        f"AND status='running' GROUP BY {column}",
                        keys,
                    ).fetchall()
                )
        throttled = [r[6] for r in rows if r[6] is not None and r[1] != "running"]
        for key, period in {(r[6], r[8]) for r in rows if throttled.count(r[6]) > 1}:
            (started,) = conn.execute(
                "SELECT count(*) FROM runs WHERE throttle_key=? AND started_at>?",
                (key, now - period),
            ).fetchone()
            counts[key] = started
        return counts

    def claim_run(self, run_id: str, owner: str, now: float, ttl: float) -> Claim | None:
        sql = (
            f"UPDATE runs SET {_CLAIM_SET} WHERE id=? AND due_at<=? AND {_KEYS_FREE} "
            f"RETURNING {_CLAIM_COLUMNS}"
        ).replace("{now}", repr(float(now)))
        params = (owner, now + ttl, now, now, now, run_id, now)
        claims = self._claims(self._write_op(lambda c: c.execute(sql, params).fetchall()))
        return claims[0] if claims else None

    def schedule_cron(
        self,
        function_id: str,
        ticks: Callable[[float], list[float]],
        make: Callable[[float], NewRun],
        now: float,
    ) -> tuple[list[str], float]:
        key = f"cron:{function_id}"

        def op(conn: sqlite3.Connection) -> tuple[list[str], float]:
            row = conn.execute("SELECT value FROM kv WHERE key=?", (key,)).fetchone()
            last = float(row[0]) if row else now
            if row is not None and last > now:
                return [], last  # the next tick is already scheduled
            created = []
            due = ticks(last)
            for tick in due:
                rid, ok, _ = self._insert_run(conn, make(tick), now)
                if ok:
                    created.append(rid)
            if due:
                conn.execute(
                    "INSERT INTO kv (key, value) VALUES (?, ?) "
                    "ON CONFLICT(key) DO UPDATE SET value=excluded.value",
                    (key, repr(due[-1])),
                )
            return created, due[-1] if due else last

        created, cursor = self._write_op(op)
        if created:
            self.notify()
        return created, cursor

    def next_due(self, function_ids: Sequence[str]) -> float | None:
        if not function_ids:
            return None
        marks = ",".join("?" * len(function_ids))
        rows = self._read(
            f"SELECT due_at FROM runs WHERE due_at IS NOT NULL AND +function_id IN ({marks}) "
            "ORDER BY due_at LIMIT 1",
            tuple(function_ids),
        )
        return float(rows[0][0]) if rows else None

    def renew(self, owner: str, run_ids: Sequence[str], until: float) -> list[str]:
        if not run_ids:
            return []
        marks = ",".join("?" * len(run_ids))

        def op(conn: sqlite3.Connection) -> list[str]:
            rows = conn.execute(
                f"UPDATE runs SET due_at=? WHERE id IN ({marks}) AND lease_owner=? "
                "AND status='running' RETURNING id, cancel_requested",
                (until, *run_ids, owner),
            ).fetchall()
            return [r[0] for r in rows if r[1]]

        return self._write_op(op)

    def release(self, run_id: str, token: int, now: float) -> None:
        self._write_op(
            lambda c: c.execute(
                "UPDATE runs SET due_at=?, lease_owner=NULL WHERE id=? AND lease_token=? "
                "AND status='running'",
                (now, run_id, token),
            )
        )
        self.notify()

    # -- execution ---------------------------------------------------------------------
    def load_steps(self, run_id: str) -> dict[str, StepRow]:
        with self._errors():
            conn = self._reader()
            steps = {
                r[0]: StepRow(r[0], r[1], r[2], r[3], r[4], r[5], r[6], 0, r[7])
                for r in conn.execute(
                    "SELECT step_id, seq, kind, status, output, error, wake_at, child_id "
                    "FROM steps WHERE run_id=?",
                    (run_id,),
                )
            }
            if steps:
                for step_id, count in conn.execute(
                    "SELECT step_id, count(*) FROM attempts WHERE run_id=? GROUP BY step_id",
                    (run_id,),
                ):
                    if step_id in steps:
                        steps[step_id].failed_attempts = count
        return steps

    @staticmethod
    def _step_params(run_id: str, token: int, s: StepWrite) -> tuple[Any, ...]:
        return (
            run_id,
            s.step_id,
            s.seq,
            s.kind,
            s.status,
            s.output,
            s.error,
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

    @staticmethod
    def _fence(conn: sqlite3.Connection, run_id: str, token: int) -> bool:
        """Raise Fenced when the lease moved; return whether cancellation was asked."""
        row = conn.execute(
            "SELECT lease_token, cancel_requested FROM runs WHERE id=?", (run_id,)
        ).fetchone()
        if row is None or row[0] != token:
            raise Fenced(run_id)
        return bool(row[1])

    def save_step(self, run_id: str, token: int, step: StepWrite) -> bool:
        params = self._step_params(run_id, token, step)

        def op(conn: sqlite3.Connection) -> bool:
            if conn.execute(_STEP_UPSERT_LIVE, params).rowcount == 1:
                return False
            cancel = self._fence(conn, run_id, token)
            conn.execute(_STEP_UPSERT_ANY, params)
            return cancel

        return self._write_op(op)

    def save_steps(self, items: Sequence[tuple[str, int, StepWrite]]) -> list[bool | Fenced]:
        batch = [
            (run_id, token, self._step_params(run_id, token, step)) for run_id, token, step in items
        ]

        def op(conn: sqlite3.Connection) -> list[bool | Fenced]:
            out: list[bool | Fenced] = []
            for run_id, token, params in batch:
                if conn.execute(_STEP_UPSERT_LIVE, params).rowcount == 1:
                    out.append(False)
                    continue
                try:
                    cancel = self._fence(conn, run_id, token)
                except Fenced as exc:
                    out.append(exc)
                    continue
                conn.execute(_STEP_UPSERT_ANY, params)
                out.append(cancel)
            return out

        return self._write_op(op)

    def resolve_wait(self, run_id: str, token: int, step_id: str, now: float) -> bool:
        def op(conn: sqlite3.Connection) -> bool:
            self._fence(conn, run_id, token)
            cur = conn.execute(
                "UPDATE steps SET status='completed', output='null', ended_at=? "
                "WHERE run_id=? AND step_id=? AND status='waiting'",
                (now, run_id, step_id),
            )
            return cur.rowcount == 1

        return self._write_op(op)

    def save_attempt(self, run_id: str, token: int, attempt: AttemptWrite) -> None:
        def op(conn: sqlite3.Connection) -> None:
            self._fence(conn, run_id, token)
            conn.execute(
                "INSERT OR REPLACE INTO attempts (run_id, step_id, number, started_at, "
                "ended_at, error_type, error_message, traceback) VALUES (?,?,?,?,?,?,?,?)",
                (
                    run_id,
                    attempt.step_id,
                    attempt.number,
                    attempt.started_at,
                    attempt.ended_at,
                    attempt.error_type,
                    attempt.error_message,
                    attempt.traceback,
                ),
            )

        self._write_op(op)

    def start_child(
        self, run_id: str, token: int, step: StepWrite, child: NewRun, now: float
    ) -> str:
        params = self._step_params(run_id, token, step)

        def op(conn: sqlite3.Connection) -> str:
            self._fence(conn, run_id, token)
            conn.execute(_STEP_UPSERT_ANY, params)
            self._insert_run(conn, child, now)
            return child.id

        rid = self._write_op(op)
        self.notify()
        return rid

    def suspend(
        self,
        run_id: str,
        token: int,
        status: str,
        due_at: float | None,
        blocked: Sequence[str],
        now: float,
    ) -> None:
        def op(conn: sqlite3.Connection) -> None:
            self._fence(conn, run_id, token)
            new_status, due = status, due_at
            if blocked:
                marks = ",".join("?" * len(blocked))
                resolved = conn.execute(
                    f"SELECT 1 FROM steps WHERE run_id=? AND step_id IN ({marks}) "
                    "AND status IN ('completed', 'failed') LIMIT 1",
                    (run_id, *blocked),
                ).fetchone()
                if resolved:
                    new_status, due = "queued", now
            conn.execute(
                "UPDATE runs SET status=?, due_at=?, lease_owner=NULL WHERE id=? AND lease_token=?",
                (new_status, due, run_id, token),
            )

        self._write_op(op)
        self.notify()

    def finish(
        self,
        run_id: str,
        token: int | None,
        status: str,
        output: str | None,
        error: str | None,
        now: float,
        follow_up: NewRun | None = None,
    ) -> bool:
        def op(conn: sqlite3.Connection) -> bool:
            row = conn.execute(
                "UPDATE runs SET status=?, output=?, error=?, ended_at=?, due_at=NULL, "
                "lease_owner=NULL WHERE id=? AND (? IS NULL OR lease_token=?) AND status NOT IN "
                "('completed', 'failed', 'cancelled', 'skipped') RETURNING parent_id, parent_step",
                (status, output, error, now, run_id, token, token),
            ).fetchone()
            if row is None:
                if token is not None:
                    raise Fenced(run_id)
                return False
            parent_id, parent_step = row
            if parent_id is not None:
                ok = status == "completed"
                conn.execute(
                    "UPDATE steps SET status=?, output=?, error=?, ended_at=? "
                    "WHERE run_id=? AND step_id=? AND status='waiting'",
                    (
                        "completed" if ok else "failed",
                        output if ok else None,
                        None if ok else error,
                        now,
                        parent_id,
                        parent_step,
                    ),
                )
                conn.execute(
                    "UPDATE runs SET status='queued', due_at=? WHERE id=? "
                    "AND status IN ('waiting', 'sleeping')",
                    (now, parent_id),
                )
            if follow_up is not None:
                self._insert_run(conn, follow_up, now)
            return True

        done = self._write_op(op)
        self.notify()
        return done

    # -- operations -------------------------------------------------------------------
    def request_cancel(self, run_id: str, now: float) -> str | None:
        error = dumps({"type": "RunCancelled", "message": "cancelled by request"})

        def op(conn: sqlite3.Connection) -> str | None:
            row = conn.execute("SELECT status FROM runs WHERE id=?", (run_id,)).fetchone()
            if row is None:
                return None
            status: str = row[0]
            if status == "running":
                conn.execute("UPDATE runs SET cancel_requested=1 WHERE id=?", (run_id,))
            return status

        status = self._write_op(op)
        if status in ("queued", "sleeping", "waiting"):
            if self.finish(run_id, None, "cancelled", None, error, now):
                return "cancelled"
            return self.request_cancel(run_id, now)
        return status

    def run_status(self, run_id: str) -> tuple[str, float | None] | None:
        rows = self._read("SELECT status, due_at FROM runs WHERE id=?", (run_id,))
        return (rows[0][0], rows[0][1]) if rows else None

    def run_result(self, run_id: str) -> tuple[str, str | None, str | None] | None:
        rows = self._read("SELECT status, output, error FROM runs WHERE id=?", (run_id,))
        return (rows[0][0], rows[0][1], rows[0][2]) if rows else None

    _RUN_COLUMNS = (
        "id, function_id, status, input, event_name, output, error, created_at, started_at, "
        "ended_at, parent_id, replay_of, version, reason"
    )

    def get_run(self, run_id: str) -> Run | None:
        with self._errors():
            conn = self._reader()
            row = conn.execute(
                f"SELECT {self._RUN_COLUMNS} FROM runs WHERE id=?", (run_id,)
            ).fetchone()
            if row is None:
                return None
            steps = conn.execute(
                "SELECT step_id, kind, status, output, error, started_at, ended_at "
                "FROM steps WHERE run_id=? ORDER BY seq",
                (run_id,),
            ).fetchall()
            attempts = conn.execute(
                "SELECT step_id, number, started_at, ended_at, error_type, error_message, "
                "traceback FROM attempts WHERE run_id=? ORDER BY step_id, number",
                (run_id,),
            ).fetchall()
        return build_run(row, steps, attempts)

    def list_runs(
        self,
        function_id: str | None = None,
        status: str | None = None,
        limit: int = 100,
        before: str | None = None,
    ) -> list[Run]:
        where, params = [], []
        if function_id is not None:
            where.append("function_id=?")
            params.append(function_id)
        if status is not None:
            where.append("status=?")
            params.append(str(status))
        if before is not None:
            where.append("seq < coalesce((SELECT seq FROM runs WHERE id=?), -1)")
            params.append(before)
        clause = f"WHERE {' AND '.join(where)}" if where else ""
        rows = self._read(
            f"SELECT {self._RUN_COLUMNS} FROM runs {clause} ORDER BY seq DESC LIMIT ?",
            (*params, limit),
        )
        return [build_run(r, [], []) for r in rows]

    def runs_for_check(self, function_ids: Sequence[str], limit: int) -> list[str]:
        if not function_ids:
            return []
        marks = ",".join("?" * len(function_ids))
        rows = self._read(
            f"SELECT id FROM runs WHERE function_id IN ({marks}) AND status != 'skipped' "
            "AND EXISTS (SELECT 1 FROM steps WHERE run_id = runs.id) ORDER BY seq DESC LIMIT ?",
            (*function_ids, limit),
        )
        return [r[0] for r in rows]

    def prune(self, before: float, events_before: float) -> dict[str, int]:
        def op(conn: sqlite3.Connection) -> dict[str, int]:
            old = (
                "SELECT id FROM runs WHERE ended_at < ? AND status IN "
                "('completed', 'failed', 'cancelled', 'skipped')"
            )
            steps = conn.execute(f"DELETE FROM steps WHERE run_id IN ({old})", (before,)).rowcount
            conn.execute(f"DELETE FROM attempts WHERE run_id IN ({old})", (before,))
            runs = conn.execute(
                "DELETE FROM runs WHERE ended_at < ? AND status IN "
                "('completed', 'failed', 'cancelled', 'skipped')",
                (before,),
            ).rowcount
            events = conn.execute(
                "DELETE FROM events WHERE received_at < ?", (events_before,)
            ).rowcount
            return {"runs": runs, "steps": steps, "events": events}

        return self._write_op(op)

    def kv_get(self, key: str) -> str | None:
        rows = self._read("SELECT value FROM kv WHERE key=?", (key,))
        return rows[0][0] if rows else None

    def kv_set(self, key: str, value: str) -> None:
        self._write_op(
            lambda c: c.execute(
                "INSERT INTO kv (key, value) VALUES (?, ?) "
                "ON CONFLICT(key) DO UPDATE SET value=excluded.value",
                (key, value),
            )
        )

    # -- the run audit's reads --------------------------------------------------------------
    def iter_rows(self, sql: str, params: Sequence[Any] = (), batch: int = 5000) -> Iterator[Any]:
        with self._errors():
            cursor = self._reader().execute(SQLITE.q(sql), params)
            try:
                while rows := cursor.fetchmany(batch):
                    yield from rows
            finally:
                cursor.close()

    # -- dashboard reads ----------------------------------------------------------------------
    def query_runs(self, query: RunQuery) -> list[Run]:
        sql, params = runs_sql(query)
        return [build_run(r, [], []) for r in self._read(sql, params)]

    def run_stats(
        self, since: float, limit: int
    ) -> tuple[list[tuple[str, str, float | None]], dict[str, int]]:
        rows = self._read(STATS_SQL, (since, limit))
        retries = self._read(RETRIES_SQL, (since, limit))
        return [(r[0], r[1], r[2]) for r in rows], {r[0]: int(r[1]) for r in retries}

    def list_events(
        self, limit: int, before: str | None = None, name: str | None = None
    ) -> list[tuple[EventRow, float, str | None]]:
        sql, params = events_sql(limit, before, name)
        rows = self._read(sql, params)
        return [(EventRow(r[0], r[1], r[2], r[3]), r[4], r[5]) for r in rows]
