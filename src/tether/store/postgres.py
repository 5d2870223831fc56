"""The PostgreSQL store (psycopg 3 + psycopg_pool): many workers on many machines, one database.

Same semantics as the SQLite store, made safe for concurrent writers under READ COMMITTED:

- Claims lock their candidate rows with ``FOR UPDATE SKIP LOCKED``, so workers never wait
  on each other and never take the same run.
- Keyed claims (concurrency limits, throttle) take a transaction-scoped advisory lock per
  key (in one global order, so they cannot deadlock), then count the key's running runs
  afresh: the previous holder committed before releasing the lock, so the count sees its
  claims and no key ever goes over its limit. Creation-time decisions (idempotency, rate
  limit, singleton, debounce, batch, throttle, cron ticks) lock their key the same way.
- Fencing: every write of a running run first locks the run's row (``FOR SHARE`` /
  ``FOR NO KEY UPDATE``) with ``lease_token = <token>`` in the same statement. A claim that
  moves the lease updates that row, so the two serialise: the old worker either commits
  before the takeover (and the new owner loads its step) or re-reads the new token after
  it and commits nothing.
- Wake-ups: transactions that make runs due send ``pg_notify``; every process LISTENs on a
  connection of its own and wakes its workers at once. Polling stays as the fallback.
- Durability: commits are durable (``synchronous_commit`` on) in ``durability="power"``.
  In ``"process"`` (the default) checkpoints commit with ``synchronous_commit=off``: a
  tether process crash loses nothing (the server has the commit), a server crash may lose
  the last few hundred milliseconds of checkpoints (their steps run again). Accepted events
  and claims always commit synchronously, so an event is never lost and a lease token is
  never handed out twice.

Group commit (``committer.py``) shares one transaction between concurrent writers of a
process. Transactions that fail on a deadlock, a serialisation failure or a lost
connection are retried on a fresh connection: every operation is safe to run again.
"""

from __future__ import annotations

import contextlib
import copy
import re
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from importlib import resources
from typing import Any, TypeVar
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from tether.codec import dumps, loads
from tether.errors import (
    ConfigurationError,
    SchemaVersionError,
    StoreCorrupt,
    StoreError,
    StoreFull,
)
from tether.flow.expr import evaluate
from tether.flow.keys import read_path
from tether.records import TERMINAL_STATUSES, Run
from tether.store import postgres_flow as flow_sql
from tether.store import redact_url
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
from tether.store.rows import build_run, event_json

T = TypeVar("T")
DAY = 86400.0
TABLES = {"functions", "events", "runs", "steps", "attempts", "kv", "cancel_waits"}
_TERMINAL = "('completed', 'failed', 'cancelled', 'skipped')"

_CLAIM_COLUMNS = (
    "id, function_id, lease_token, event_name, input, event_id, event_ts, version, "
    "deadline_at, cancel_requested, created_at, started_at, batch_events"
)
# A lease token is never handed out twice for a run, even when the server crashes and
# loses the last asynchronous commits (durability="process"): a new token is above the
# last one and at least the server's clock in milliseconds, which has moved on since.
_NEW_TOKEN = "greatest({prev} + 1, floor(extract(epoch FROM clock_timestamp()) * 1000)::bigint)"
_CLAIM_SET = (
    "status='running', lease_owner=%(owner)s, "
    f"lease_token={_NEW_TOKEN.format(prev='lease_token')}, due_at=%(until)s, "
    "started_at=coalesce(started_at, %(now)s), "
    "deadline_at=coalesce(deadline_at, %(now)s + timeout_s)"
)
_RUN_INSERT = (
    "INSERT INTO runs (id, function_id, status, event_name, event_id, event_ts, input, "
    "created_at, started_at, due_at, lease_owner, lease_token, timeout_s, deadline_at, "
    "parent_id, parent_step, replay_of, version, idempotency_key, reason, ended_at) "
    "VALUES (%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,"
    f"CASE WHEN %s::boolean THEN {_NEW_TOKEN.format(prev=0)} ELSE 0 END,"
    "%s,%s,%s,%s,%s,%s,%s,%s,%s) ON CONFLICT (id) DO NOTHING RETURNING lease_token"
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
# One statement: lock the run row if this worker still holds the lease, then write.
_STEP_UPSERT = (
    "WITH r AS (SELECT cancel_requested FROM runs WHERE id=%s AND lease_token=%s FOR SHARE) "
    "INSERT INTO steps (run_id, step_id, seq, kind, status, output, error, started_at, "
    "ended_at, wake_at, wait_event, wait_match, wait_value, wait_if, child_id) "
    "SELECT %s::text, %s::text, %s::int, %s::text, %s::text, %s::text, %s::text, "
    "%s::float8, %s::float8, %s::float8, %s::text, %s::text, %s::text, %s::text, %s::text "
    "FROM r ON CONFLICT (run_id, step_id) DO UPDATE SET status=excluded.status, "
    "output=excluded.output, error=excluded.error, "
    "started_at=CASE WHEN steps.kind='sleep' THEN coalesce(steps.started_at, "
    "excluded.started_at) ELSE excluded.started_at END, "
    "ended_at=excluded.ended_at, wake_at=excluded.wake_at, wait_event=excluded.wait_event, "
    "wait_match=excluded.wait_match, wait_value=excluded.wait_value, "
    "wait_if=excluded.wait_if, child_id=excluded.child_id "
    "RETURNING (SELECT cancel_requested FROM r)"
)
_RUN_COLUMNS = (
    "id, function_id, status, input, event_name, output, error, created_at, started_at, "
    "ended_at, parent_id, replay_of, version, reason"
)


def _psycopg() -> tuple[Any, Any]:
    try:
        import psycopg
        import psycopg_pool
    except ImportError:
        raise ConfigurationError(
            "the PostgreSQL store needs psycopg 3 and psycopg_pool, which are not installed: "
            'run pip install "tether[postgres]"'
        ) from None
    return psycopg, psycopg_pool


def _connect_fix(message: str) -> str:
    low = message.lower()
    if "password" in low or "authentication" in low or "role" in low:
        return "check the user name and password in the URL (or ~/.pgpass / PGPASSWORD)"
    if "database" in low and "does not exist" in low:
        return "create the database first (createdb NAME, or CREATE DATABASE NAME)"
    return (
        "check that the server is running and accepts TCP connections at this host and "
        "port (pg_isready -h HOST -p PORT), and that the URL is right"
    )


class _Statement:
    """An operation that is a single SQL statement: alone in a batch, it runs without
    BEGIN/COMMIT (PostgreSQL makes one statement atomic by itself)."""

    __slots__ = ("fn",)

    def __init__(self, fn: Callable[[Any], Any]) -> None:
        self.fn = fn

    def __call__(self, conn: Any) -> Any:
        return self.fn(conn)


class PostgresStore(Store):
    def __init__(
        self,
        url: str,
        durability: str = "process",
        pool_size: int = 8,
        connect_timeout: float = 5.0,
    ) -> None:
        if durability not in ("process", "power"):
            raise ConfigurationError(
                f"durability={durability!r} is not a mode: use 'process' (the default) or 'power'"
            )
        psycopg, pool_mod = _psycopg()
        self._pg = psycopg
        self.url = redact_url(url)
        self.durability = durability
        parts = urlsplit(url)
        query = dict(parse_qsl(parts.query))
        schema = query.pop("schema", None)
        if schema is not None and not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]{0,62}", schema):
            raise ConfigurationError(
                f"store URL {self.url!r}: schema={schema!r} is not a plain identifier "
                "(letters, digits, underscore)"
            )
        pool_size = int(query.pop("pool_size", pool_size))
        connect_timeout = float(query.pop("connect_timeout", connect_timeout))
        self._schema = schema
        self._conninfo = urlunsplit(parts._replace(scheme="postgresql", query=urlencode(query)))
        options = []
        if schema is not None:
            options.append(f"-c search_path={schema}")
        if durability == "process":
            options.append("-c synchronous_commit=off")
        self._kwargs: dict[str, Any] = {"autocommit": True}
        if "application_name" not in query:  # how an operator spots tether in pg_stat_activity
            self._kwargs["application_name"] = f"tether/{schema}" if schema else "tether"
        if options:
            self._kwargs["options"] = " ".join(options)
        self._channel = f"tether_due_{schema}" if schema else "tether_due"
        self._connect_timeout = connect_timeout
        # Try one connection first: its error says what is wrong (the pool's only times out).
        try:
            psycopg.connect(
                self._conninfo, connect_timeout=max(1, round(connect_timeout)), **self._kwargs
            ).close()
        except psycopg.Error as exc:
            text = str(exc).strip()
            raise StoreError(
                f"cannot connect to the PostgreSQL store {self.url}: {text}. Fix: "
                f"{_connect_fix(text)}."
            ) from None
        self._pool = pool_mod.ConnectionPool(
            self._conninfo,
            kwargs=self._kwargs,
            min_size=1,
            max_size=max(2, pool_size),
            open=False,
            name="tether",
            timeout=30.0,
        )
        self._pool.open(wait=True, timeout=connect_timeout)
        self._write_conn: Any = None
        self._committer: GroupCommitter[Any] = GroupCommitter(self._run_batch)
        self._closed = False
        self._commits = 0
        self.operations = 0
        self._listener: threading.Thread | None = None
        self._analyze_at = 500  # see _maybe_analyze
        self._listener_lock = threading.Lock()

    # -- connections --------------------------------------------------------------------
    def _translate(self, exc: Exception) -> StoreError:
        errors = self._pg.errors
        text = str(exc).strip()
        if isinstance(exc, errors.DiskFull | errors.OutOfMemory):
            return StoreFull(
                f"the PostgreSQL store {self.url} cannot grow: {text}. Nothing from this "
                "write was kept. Free space on the server (or prune old runs with "
                "`tether prune --older-than 30d`) and retry."
            )
        if isinstance(exc, self._pg.OperationalError):
            return StoreError(
                f"lost the connection to the PostgreSQL store {self.url}: {text}. Fix: "
                f"{_connect_fix(text)}."
            )
        return StoreError(f"PostgreSQL store {self.url}: {text}")

    def _retryable(self, exc: BaseException) -> bool:
        errors = self._pg.errors
        return isinstance(
            exc,
            errors.DeadlockDetected
            | errors.SerializationFailure
            | errors.LockNotAvailable
            | self._pg.OperationalError,
        ) and not isinstance(exc, errors.DiskFull | errors.OutOfMemory)

    @contextlib.contextmanager
    def _conn(self) -> Iterator[Any]:
        if self._closed:
            raise StoreError(f"the store {self.url} is closed")
        with self._pool.connection() as conn:
            yield conn

    def _read(self, sql: str, params: Sequence[Any] | dict[str, Any] = ()) -> list[Any]:
        return self._reading(lambda conn: conn.execute(sql, params).fetchall())

    def _reading(self, fn: Callable[[Any], T]) -> T:
        for attempt in range(3):
            try:
                with self._conn() as conn:
                    return fn(conn)
            except self._pg.Error as exc:
                if attempt == 2 or not self._retryable(exc):
                    raise self._translate(exc) from None
                time.sleep(0.05 * (attempt + 1))
        raise AssertionError("unreachable")

    def _writer(self) -> Any:
        """The connection group commit writes on (one batch at a time, so one suffices)."""
        conn = self._write_conn
        if conn is None or conn.closed or conn.broken:
            if conn is not None:
                with contextlib.suppress(Exception):
                    conn.close()
            conn = self._write_conn = self._pg.connect(
                self._conninfo,
                connect_timeout=max(1, round(self._connect_timeout)),
                **self._kwargs,
            )
        return conn

    def _run_batch(self, ops: list[Op[Any]]) -> None:
        sync = self.durability == "process" and any(op.sync for op in ops)
        # One statement needs no BEGIN/COMMIT round trips: it is a transaction by itself.
        alone = len(ops) == 1 and isinstance(ops[0].fn, _Statement) and not sync
        for attempt in range(4):
            try:
                if self._closed:
                    raise StoreError(f"the store {self.url} is closed")
                conn = self._writer()
                if alone:
                    ops[0].result = ops[0].fn(conn)
                else:
                    with conn.transaction():
                        if sync:
                            conn.execute("SET LOCAL synchronous_commit = on")
                        for op in ops:
                            op.result = op.fn(conn)
                self._commits += 1
                self.operations += len(ops)
                return
            except self._pg.Error as exc:
                if attempt == 3 or not self._retryable(exc):
                    raise self._translate(exc) from None
                time.sleep(0.02 * (attempt + 1))

    @property
    def commits(self) -> int:
        """Transactions committed by this process."""
        return self._commits

    def _write_op(self, fn: Callable[[Any], T], sync: bool = False) -> T:
        if self._closed:
            raise StoreError(f"the store {self.url} is closed")
        result = self._committer.submit(fn, sync=sync)
        if self.operations >= self._analyze_at:
            self._maybe_analyze()
        return result

    def _wake_all(self, conn: Any) -> None:
        """Tell every listening process (after this transaction commits) that runs are due."""
        conn.execute("SELECT pg_notify(%s, '')", (self._channel,))

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        listener = self._listener
        if listener is not None:
            with contextlib.suppress(Exception), self._pool.connection() as conn:
                conn.execute("SELECT pg_notify(%s, 'close')", (self._channel,))
            listener.join(timeout=2)
        idle = self._committer._write_lock.acquire(timeout=5)  # let a batch in flight end
        try:
            if self._write_conn is not None:
                with contextlib.suppress(Exception):
                    self._write_conn.close()
        finally:
            if idle:
                self._committer._write_lock.release()
        self._pool.close()

    def _maybe_analyze(self) -> None:
        """Refresh the planner's statistics of a table that grew fast.

        Autovacuum analyses a new table only after a minute or so; until then the planner
        may scan a whole table instead of reading an index. Every time this process has
        doubled its writes, one background ANALYZE brings the plans back."""
        if self.operations < self._analyze_at or self._closed:
            return
        self._analyze_at = self.operations * 2

        def analyze() -> None:
            with contextlib.suppress(Exception), self._conn() as conn:
                conn.execute("ANALYZE runs")
                conn.execute("ANALYZE steps")

        threading.Thread(target=analyze, name="tether-pg-analyze", daemon=True).start()

    # -- LISTEN/NOTIFY -------------------------------------------------------------------
    def add_listener(self, listener: Callable[[], None]) -> None:
        super().add_listener(listener)
        with self._listener_lock:
            if self._listener is None and not self._closed:
                self._listener = threading.Thread(
                    target=self._listen_loop, name="tether-pg-listen", daemon=True
                )
                self._listener.start()

    def _listen_loop(self) -> None:
        from psycopg import sql

        backoff = 0.1
        while not self._closed:
            try:
                conn = self._pg.connect(
                    self._conninfo,
                    connect_timeout=max(1, round(self._connect_timeout)),
                    **self._kwargs,
                )
            except self._pg.Error:
                time.sleep(backoff)
                backoff = min(backoff * 2, 2.0)
                continue
            try:
                conn.execute(sql.SQL("LISTEN {}").format(sql.Identifier(self._channel)))
                backoff = 0.1
                self.notify()  # catch up on what was missed while not listening
                while not self._closed:
                    for _ in conn.notifies(timeout=1.0, stop_after=1):
                        if not self._closed:
                            self.notify()
            except self._pg.Error:
                time.sleep(backoff)
            finally:
                with contextlib.suppress(Exception):
                    conn.close()

    # -- schema ----------------------------------------------------------------------------
    def migrate(self) -> int:
        folder = resources.files("tether.store.migrations") / "postgres"
        files = sorted(
            (f for f in folder.iterdir() if f.name.endswith(".sql")), key=lambda f: f.name
        )
        latest = len(files)
        where = f"schema {self._schema}" if self._schema else "the database"

        def op(conn: Any) -> int:
            lock = f"tether:migrate:{self._schema or ''}"
            conn.execute("SELECT pg_advisory_xact_lock(hashtextextended(%s, 0))", (lock,))
            if self._schema is not None:
                from psycopg import sql

                conn.execute(
                    sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(sql.Identifier(self._schema))
                )
            tables = {
                r[0]
                for r in conn.execute(
                    "SELECT table_name FROM information_schema.tables "
                    "WHERE table_schema = current_schema()"
                ).fetchall()
            }
            if "tether_meta" in tables:
                row = conn.execute(
                    "SELECT value FROM tether_meta WHERE key='schema_version'"
                ).fetchone()
                version = int(row[0]) if row else 0
            elif tables & TABLES:
                raise StoreCorrupt(
                    f"{where} of {self.url} already has tables {sorted(tables & TABLES)} that "
                    "are not tether's. Give tether a schema of its own: add ?schema=tether "
                    "to the URL."
                )
            else:
                version = 0
            if version > latest:
                raise SchemaVersionError(
                    f"the PostgreSQL store {self.url} has schema version {version}, newer than "
                    f"this tether understands ({latest}). Upgrade tether (pip install -U "
                    "tether) on this machine; never point an older tether at a newer store."
                )
            for number, file in enumerate(files, start=1):
                if number > version:
                    conn.execute(file.read_text())
            conn.execute(
                "INSERT INTO tether_meta (key, value) VALUES ('schema_version', %s) "
                "ON CONFLICT (key) DO UPDATE SET value=excluded.value",
                (str(max(version, latest)),),
            )
            return max(version, latest)

        return self._write_op(op, sync=True)

    # -- functions ---------------------------------------------------------------------
    def register_functions(self, rows: Sequence[dict[str, Any]], now: float) -> None:
        def op(conn: Any) -> None:
            with conn.cursor() as cur:
                cur.executemany(
                    "INSERT INTO functions (id, triggers, idempotency, version, updated_at) "
                    "VALUES (%s,%s,%s,%s,%s) ON CONFLICT (id) DO UPDATE SET "
                    "triggers=excluded.triggers, idempotency=excluded.idempotency, "
                    "version=excluded.version, updated_at=excluded.updated_at",
                    [
                        (r["id"], dumps(r["triggers"]), r.get("idempotency"), r.get("version"), now)
                        for r in sorted(rows, key=lambda r: str(r["id"]))
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
        self, conn: Any, run: NewRun, now: float, owner: str | None = None, ttl: float = 0.0
    ) -> tuple[str, bool, str | None]:
        """Insert a run after its flow-control decisions (see sqlite.py)."""
        rid, created, decision, _ = self._insert_claimed(conn, run, now, owner, ttl)
        return rid, created, decision

    def _insert_claimed(
        self, conn: Any, run: NewRun, now: float, owner: str | None, ttl: float
    ) -> tuple[str, bool, str | None, int]:
        """``_insert_run``, also returning the lease token when ``owner`` claimed the run."""
        run = copy.copy(run)  # decisions adjust it; a retried transaction starts afresh
        flow_sql.lock_keys(conn, flow_sql.creation_keys(run))
        if run.idempotency_key is not None:
            row = conn.execute(
                "SELECT id FROM runs WHERE function_id=%s AND idempotency_key=%s "
                "AND created_at>%s ORDER BY seq LIMIT 1",
                (run.function_id, run.idempotency_key, now - DAY),
            ).fetchone()
            if row:
                return row[0], False, f"idempotency: run {row[0]} has this key", 0
        if run.flow is not None:
            folded = flow_sql.decide(conn, run, now)
            if folded is not None:
                return folded[0], False, folded[1], 0
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
            ),
        )
        inserted = cur.fetchone()
        if inserted is not None and run.flow is not None:
            flow_sql.after_insert(conn, run, now)
        decision = run.reason if run.status == "skipped" else None
        return run.id, inserted is not None, decision, inserted[0] if inserted else 0

    def accept(self, events: Sequence[EventRow], plan: Planner, now: float) -> list[Accepted]:
        names = sorted({ev.name for ev in events})

        def op(conn: Any) -> list[Accepted]:
            # Which of these events anything waits for, or cancels on: two queries per
            # batch instead of two per event.
            waited = {
                r[0]
                for r in conn.execute(
                    "SELECT DISTINCT wait_event FROM steps WHERE status='waiting' "
                    "AND wait_event = ANY(%s)",
                    (names,),
                ).fetchall()
            }
            cancels = {
                r[0]
                for r in conn.execute(
                    "SELECT DISTINCT event_name FROM cancel_waits WHERE event_name = ANY(%s)",
                    (names,),
                ).fetchall()
            }
            out: list[Accepted] = []
            for ev in events:
                cur = conn.execute(
                    "INSERT INTO events (id, name, data, ts, received_at) "
                    "VALUES (%s,%s,%s,%s,%s) "
                    "ON CONFLICT (id) DO UPDATE SET name=excluded.name, data=excluded.data, "
                    "ts=excluded.ts, received_at=excluded.received_at "
                    "WHERE events.received_at < %s",
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
                        if new.flow is not None:
                            cancels.update(w[0] for w in new.flow.cancel_waits)
                    if decision is not None:
                        decisions.append(
                            {"function": new.function_id, "run_id": rid, "decision": decision}
                        )
                if ev.name in waited:
                    self._wake_waiters(conn, ev, now)
                if ev.name in cancels:
                    doc = {"name": ev.name, "data": loads(ev.data), "id": ev.id}
                    for rid in flow_sql.cancel_by_event(conn, ev.name, doc, ev.id, now):
                        decisions.append({"run_id": rid, "decision": "cancelled this run"})
                if decisions:
                    conn.execute(
                        "UPDATE events SET decisions=%s WHERE id=%s", (dumps(decisions), ev.id)
                    )
                out.append(Accepted(ev.id, False, run_ids))
            if any(not a.duplicate for a in out):
                self._wake_all(conn)
            return out

        result = self._write_op(op, sync=True)
        self.notify()
        return result

    def _wake_waiters(self, conn: Any, ev: EventRow, now: float) -> None:
        paths = conn.execute(
            "SELECT DISTINCT wait_match FROM steps WHERE status='waiting' AND wait_event=%s",
            (ev.name,),
        ).fetchall()
        if not paths:
            return
        data = loads(ev.data)
        doc = {"name": ev.name, "data": data, "id": ev.id}
        payload = event_json(ev.name, data, ev.id, ev.ts)
        for (path,) in paths:
            value = None if path is None else read_path(path, doc)
            rows = conn.execute(
                "SELECT s.run_id, s.step_id, s.wait_if, r.event_name, r.input, r.event_id "
                "FROM steps s JOIN runs r ON r.id = s.run_id WHERE s.status='waiting' "
                "AND s.wait_event=%s AND s.wait_match IS NOT DISTINCT FROM %s "
                "AND s.wait_value IS NOT DISTINCT FROM %s ORDER BY s.run_id",
                (ev.name, path, None if path is None else dumps(value)),
            ).fetchall()
            for run_id, step_id, wait_if, t_name, t_input, t_id in rows:
                if wait_if and not evaluate(
                    wait_if,
                    event={"name": t_name, "data": loads(t_input), "id": t_id},
                    async_=doc,
                ):
                    continue
                self._resolve_blocked(conn, run_id, step_id, "completed", payload, None, now)

    @staticmethod
    def _resolve_blocked(
        conn: Any,
        run_id: str,
        step_id: str,
        status: str,
        output: str | None,
        error: str | None,
        now: float,
    ) -> None:
        """Resolve a run's waiting step and requeue the run if it is suspended.

        The run row is locked first: a worker suspending this run at the same moment
        either sees the resolved step (and requeues itself) or has committed its
        suspension, which this requeues. Without the lock both could miss each other."""
        conn.execute("SELECT 1 FROM runs WHERE id=%s FOR NO KEY UPDATE", (run_id,))
        conn.execute(
            "UPDATE steps SET status=%s, output=%s, error=%s, ended_at=%s "
            "WHERE run_id=%s AND step_id=%s AND status='waiting'",
            (status, output, error, now, run_id, step_id),
        )
        conn.execute(
            "UPDATE runs SET status='queued', due_at=%s "
            "WHERE id=%s AND status IN ('waiting', 'sleeping')",
            (now, run_id),
        )

    def recent_events(self, name: str, since: float) -> list[EventRow]:
        rows = self._read(
            "SELECT id, name, data, ts FROM events WHERE name=%s AND received_at>=%s "
            "ORDER BY received_at",
            (name, since),
        )
        return [EventRow(r[0], r[1], r[2], r[3]) for r in rows]

    def create_run(
        self, run: NewRun, now: float, owner: str | None = None, ttl: float = 0.0
    ) -> tuple[str, bool, Claim | None]:
        def op(conn: Any) -> tuple[str, bool, Claim | None]:
            row = conn.execute("SELECT id FROM runs WHERE id=%s", (run.id,)).fetchone()
            if row:
                return run.id, False, None
            owner_now = None if run.flow is not None and run.flow.delays_start else owner
            rid, created, _, token = self._insert_claimed(conn, run, now, owner_now, ttl)
            if not (created and owner_now is not None):
                if created:
                    self._wake_all(conn)
                return rid, created, None
            claim = Claim(
                rid,
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
            )
            return rid, True, claim

        result = self._write_op(op)
        if result[1] and result[2] is None:
            self.notify()
        return result

    def fork(self, run_id: str, from_step: str | None, new: NewRun, now: float) -> str:
        def op(conn: Any) -> str:
            limit = None
            if from_step is not None:
                row = conn.execute(
                    "SELECT seq FROM steps WHERE run_id=%s AND step_id=%s", (run_id, from_step)
                ).fetchone()
                if row is None:
                    known = [
                        r[0]
                        for r in conn.execute(
                            "SELECT step_id FROM steps WHERE run_id=%s ORDER BY seq", (run_id,)
                        ).fetchall()
                    ]
                    raise ConfigurationError(
                        f"run {run_id} has no step {from_step!r}; its steps are {known}"
                    )
                limit = row[0]
            self._insert_run(conn, new, now)
            if limit is not None:
                conn.execute(
                    "INSERT INTO steps (run_id, step_id, seq, kind, status, output, error, "
                    "started_at, ended_at, wake_at, child_id) SELECT %s::text, step_id, seq, "
                    "kind, status, output, error, started_at, ended_at, wake_at, child_id "
                    "FROM steps WHERE run_id=%s AND seq<%s AND status IN ('completed', 'failed')",
                    (new.id, run_id, limit),
                )
            self._wake_all(conn)
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

    # Due-order scans read the due index only: ``function_id || ''`` keeps the planner
    # from sorting a function's whole history when its statistics are stale.
    def claim(
        self,
        owner: str,
        limit: int,
        function_ids: Sequence[str],
        now: float,
        ttl: float,
        keyed: bool = False,
    ) -> list[Claim]:
        if not function_ids or limit <= 0:
            return []
        if keyed:
            return self._claim_keyed(owner, limit, function_ids, now, ttl)
        sql = (
            f"UPDATE runs SET {_CLAIM_SET} WHERE id IN (SELECT id FROM runs "
            "WHERE due_at<=%(now)s AND (function_id || '') = ANY(%(fids)s) "
            "AND (lease_owner IS NULL OR lease_owner != %(owner)s) "
            f"ORDER BY due_at LIMIT %(limit)s FOR UPDATE SKIP LOCKED) RETURNING {_CLAIM_COLUMNS}"
        )
        params = {
            "owner": owner,
            "until": now + ttl,
            "now": now,
            "fids": list(function_ids),
            "limit": limit,
        }
        rows = self._write_op(_Statement(lambda c: c.execute(sql, params).fetchall()))
        return self._claims(rows)

    def _claim_keyed(
        self, owner: str, limit: int, function_ids: Sequence[str], now: float, ttl: float
    ) -> list[Claim]:
        """Claim while honouring concurrency keys and throttles.

        Candidates are locked (SKIP LOCKED); then the advisory lock of every key they use
        is taken, the keys' running runs and recent starts are counted afresh (other
        workers' claims for these keys have committed) and only runs with a free slot
        are claimed."""
        select = (
            "SELECT id, status, ckey1, climit1, ckey2, climit2, throttle_key, throttle_limit, "
            "throttle_period FROM runs WHERE due_at<=%(now)s AND (function_id || '') = ANY(%(fids)s) "
            f"AND (lease_owner IS NULL OR lease_owner != %(owner)s) AND {_KEYS_FREE} "
            "ORDER BY due_at LIMIT %(limit)s FOR UPDATE OF runs SKIP LOCKED"
        )
        params = {
            "owner": owner,
            "until": now + ttl,
            "now": now,
            "fids": list(function_ids),
            "limit": limit + 8,
        }

        def op(conn: Any) -> list[Any]:
            rows = conn.execute(select, params).fetchall()
            if not rows:
                return []
            used = self._lock_and_count(conn, rows, now)
            picked: list[str] = []
            for run_id, status, k1, l1, k2, l2, tk, tl, _ in rows:
                if status != "running":  # a takeover is already counted as running
                    slots = [
                        (slot, lim)
                        for slot, lim in ((("c1", k1), l1), (("c2", k2), l2), (("t", tk), tl))
                        if slot[1] is not None
                    ]
                    if any(used.get(slot, 0) >= lim for slot, lim in slots):
                        continue
                    for slot, _ in slots:
                        used[slot] = used.get(slot, 0) + 1
                picked.append(run_id)
                if len(picked) >= limit:
                    break
            if not picked:
                return []
            claimed: list[Any] = conn.execute(
                f"UPDATE runs SET {_CLAIM_SET} WHERE id = ANY(%(ids)s) RETURNING {_CLAIM_COLUMNS}",
                {**params, "ids": picked},
            ).fetchall()
            return claimed

        return self._claims(self._write_op(op))

    @staticmethod
    def _lock_and_count(conn: Any, rows: list[Any], now: float) -> dict[tuple[str, str], int]:
        """Lock the keys of the runs about to start; return their current usage."""
        pending = [r for r in rows if r[1] != "running"]
        keys1 = sorted({r[2] for r in pending if r[2] is not None})
        keys2 = sorted({r[4] for r in pending if r[4] is not None})
        throttles = {r[6]: r[8] for r in pending if r[6] is not None}
        flow_sql.lock_keys(
            conn,
            [f"concurrency:{k}" for k in (*keys1, *keys2)]
            + [f"throttle-start:{k}" for k in throttles],
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

    def claim_run(self, run_id: str, owner: str, now: float, ttl: float) -> Claim | None:
        params = {"owner": owner, "until": now + ttl, "now": now, "id": run_id}

        def op(conn: Any) -> list[Any]:
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
                used = self._lock_and_count(conn, [row], now)
                slots = ((("c1", k1), l1), (("c2", k2), l2), (("t", tk), tl))
                if any(s[1] is not None and used.get(s, 0) >= lim for s, lim in slots):
                    return []
            return conn.execute(  # type: ignore[no-any-return]
                f"UPDATE runs SET {_CLAIM_SET} WHERE id=%(id)s RETURNING {_CLAIM_COLUMNS}",
                params,
            ).fetchall()

        claims = self._claims(self._write_op(op))
        return claims[0] if claims else None

    def schedule_cron(
        self,
        function_id: str,
        ticks: Callable[[float], list[float]],
        make: Callable[[float], NewRun],
        now: float,
    ) -> tuple[list[str], float]:
        key = f"cron:{function_id}"

        def op(conn: Any) -> tuple[list[str], float]:
            flow_sql.lock_keys(conn, [key])
            row = conn.execute("SELECT value FROM kv WHERE key=%s", (key,)).fetchone()
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
                    "INSERT INTO kv (key, value) VALUES (%s, %s) "
                    "ON CONFLICT (key) DO UPDATE SET value=excluded.value",
                    (key, repr(due[-1])),
                )
            if created:
                self._wake_all(conn)
            return created, due[-1] if due else last

        created, cursor = self._write_op(op)
        if created:
            self.notify()
        return created, cursor

    def next_due(self, function_ids: Sequence[str]) -> float | None:
        if not function_ids:
            return None
        rows = self._read(
            "SELECT due_at FROM runs WHERE due_at IS NOT NULL AND (function_id || '') = ANY(%s) "
            "ORDER BY due_at LIMIT 1",
            (list(function_ids),),
        )
        return float(rows[0][0]) if rows else None

    def renew(self, owner: str, run_ids: Sequence[str], until: float) -> list[str]:
        if not run_ids:
            return []

        def op(conn: Any) -> list[str]:
            rows = conn.execute(
                "UPDATE runs SET due_at=%s WHERE id = ANY(%s) AND lease_owner=%s "
                "AND status='running' RETURNING id, cancel_requested",
                (until, sorted(run_ids), owner),
            ).fetchall()
            return [r[0] for r in rows if r[1]]

        return self._write_op(_Statement(op))

    def release(self, run_id: str, token: int, now: float) -> None:
        sql = (
            "WITH u AS (UPDATE runs SET due_at=%s, lease_owner=NULL WHERE id=%s "
            "AND lease_token=%s AND status='running' RETURNING 1) "
            "SELECT pg_notify(%s, '') FROM u"
        )
        params = (now, run_id, token, self._channel)
        self._write_op(_Statement(lambda c: c.execute(sql, params)))
        self.notify()

    # -- execution ---------------------------------------------------------------------
    def load_steps(self, run_id: str) -> dict[str, StepRow]:
        rows = self._read(
            "SELECT step_id, seq, kind, status, output, error, wake_at, "
            "(SELECT count(*) FROM attempts a WHERE a.run_id=s.run_id AND a.step_id=s.step_id), "
            "child_id FROM steps s WHERE run_id=%s",
            (run_id,),
        )
        return {r[0]: StepRow(*r) for r in rows}

    @staticmethod
    def _step_params(run_id: str, token: int, s: StepWrite) -> tuple[Any, ...]:
        return (
            run_id,
            token,
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
        )

    @staticmethod
    def _fence(conn: Any, run_id: str, token: int, update: bool = False) -> bool:
        """Lock the run row while this lease holds; raise Fenced when the lease moved.
        Returns whether cancellation was asked."""
        mode = "NO KEY UPDATE" if update else "SHARE"
        row = conn.execute(
            f"SELECT cancel_requested FROM runs WHERE id=%s AND lease_token=%s FOR {mode}",
            (run_id, token),
        ).fetchone()
        if row is None:
            raise Fenced(run_id)
        return bool(row[0])

    def _upsert_step(self, conn: Any, run_id: str, token: int, step: StepWrite) -> bool:
        row = conn.execute(_STEP_UPSERT, self._step_params(run_id, token, step)).fetchone()
        if row is None:
            raise Fenced(run_id)
        return bool(row[0])

    def save_step(self, run_id: str, token: int, step: StepWrite) -> bool:
        cancel: bool = self._write_op(
            _Statement(lambda conn: self._upsert_step(conn, run_id, token, step))
        )
        return cancel

    def resolve_wait(self, run_id: str, token: int, step_id: str, now: float) -> bool:
        def op(conn: Any) -> bool:
            self._fence(conn, run_id, token)
            cur = conn.execute(
                "UPDATE steps SET status='completed', output='null', ended_at=%s "
                "WHERE run_id=%s AND step_id=%s AND status='waiting'",
                (now, run_id, step_id),
            )
            return bool(cur.rowcount == 1)

        return self._write_op(op)

    def save_attempt(self, run_id: str, token: int, attempt: AttemptWrite) -> None:
        def op(conn: Any) -> None:
            self._fence(conn, run_id, token)
            conn.execute(
                "INSERT INTO attempts (run_id, step_id, number, started_at, ended_at, "
                "error_type, error_message, traceback) VALUES (%s,%s,%s,%s,%s,%s,%s,%s) "
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
                    attempt.error_message,
                    attempt.traceback,
                ),
            )

        self._write_op(op)

    def start_child(
        self, run_id: str, token: int, step: StepWrite, child: NewRun, now: float
    ) -> str:
        def op(conn: Any) -> str:
            self._upsert_step(conn, run_id, token, step)
            self._insert_run(conn, child, now)
            self._wake_all(conn)
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
        if status == "sleeping":
            # Nothing outside this run resolves a sleep, so one conditional UPDATE does:
            # it waits for a claim in flight and re-checks the token on the row that claim
            # committed (fencing), and requeues at once if a blocked step is already done.
            def alone(conn: Any) -> None:
                row = conn.execute(
                    "UPDATE runs SET status=CASE WHEN r.done THEN 'queued' ELSE %s END, "
                    "due_at=CASE WHEN r.done THEN %s ELSE %s END, lease_owner=NULL "
                    "FROM (SELECT EXISTS (SELECT 1 FROM steps WHERE run_id=%s "
                    "AND step_id = ANY(%s) AND status IN ('completed', 'failed')) AS done) r "
                    "WHERE id=%s AND lease_token=%s RETURNING r.done",
                    (status, now, due_at, run_id, list(blocked), run_id, token),
                ).fetchone()
                if row is None:
                    raise Fenced(run_id)
                if row[0]:
                    self._wake_all(conn)

            self._write_op(_Statement(alone))
            self.notify()
            return

        def op(conn: Any) -> None:
            # The run row is locked before the blocked steps are read: an event or a child
            # resolving one of them at this moment either committed already (and is seen
            # here) or waits for this suspension and then requeues the run.
            self._fence(conn, run_id, token, update=True)
            new_status, due = status, due_at
            if blocked:
                resolved = conn.execute(
                    "SELECT 1 FROM steps WHERE run_id=%s AND step_id = ANY(%s) "
                    "AND status IN ('completed', 'failed') LIMIT 1",
                    (run_id, list(blocked)),
                ).fetchone()
                if resolved:
                    new_status, due = "queued", now
            conn.execute(
                "UPDATE runs SET status=%s, due_at=%s, lease_owner=NULL "
                "WHERE id=%s AND lease_token=%s",
                (new_status, due, run_id, token),
            )
            if new_status == "queued":
                self._wake_all(conn)

        self._write_op(op)
        self.notify()

    def _finish_in(
        self,
        conn: Any,
        run_id: str,
        token: int | None,
        status: str,
        output: str | None,
        error: str | None,
        now: float,
        follow_up: NewRun | None,
    ) -> bool:
        row = conn.execute(
            "UPDATE runs SET status=%s, output=%s, error=%s, ended_at=%s, due_at=NULL, "
            "lease_owner=NULL WHERE id=%s AND (%s::bigint IS NULL OR lease_token=%s) "
            f"AND status NOT IN {_TERMINAL} RETURNING parent_id, parent_step",
            (status, output, error, now, run_id, token, token),
        ).fetchone()
        if row is None:
            if token is not None:
                raise Fenced(run_id)
            return False
        parent_id, parent_step = row
        if parent_id is not None:
            ok = status == "completed"
            self._resolve_blocked(
                conn,
                parent_id,
                parent_step,
                "completed" if ok else "failed",
                output if ok else None,
                None if ok else error,
                now,
            )
        if follow_up is not None:
            self._insert_run(conn, follow_up, now)
        if parent_id is not None or follow_up is not None:
            self._wake_all(conn)
        return True

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
        done = self._write_op(
            lambda conn: self._finish_in(conn, run_id, token, status, output, error, now, follow_up)
        )
        self.notify()
        return done

    # -- operations -------------------------------------------------------------------
    def request_cancel(self, run_id: str, now: float) -> str | None:
        error = dumps({"type": "RunCancelled", "message": "cancelled by request"})

        def op(conn: Any) -> str | None:
            row = conn.execute(
                "SELECT status FROM runs WHERE id=%s FOR NO KEY UPDATE", (run_id,)
            ).fetchone()
            if row is None:
                return None
            status: str = row[0]
            if status == "running":
                conn.execute("UPDATE runs SET cancel_requested=1 WHERE id=%s", (run_id,))
            elif status in ("queued", "sleeping", "waiting"):
                self._finish_in(conn, run_id, None, "cancelled", None, error, now, None)
                return "cancelled"
            return status

        status = self._write_op(op)
        if status == "cancelled":
            self.notify()
        return status

    def run_status(self, run_id: str) -> tuple[str, float | None] | None:
        rows = self._read("SELECT status, due_at FROM runs WHERE id=%s", (run_id,))
        return (rows[0][0], rows[0][1]) if rows else None

    def run_result(self, run_id: str) -> tuple[str, str | None, str | None] | None:
        rows = self._read("SELECT status, output, error FROM runs WHERE id=%s", (run_id,))
        return (rows[0][0], rows[0][1], rows[0][2]) if rows else None

    def get_run(self, run_id: str) -> Run | None:
        def read(conn: Any) -> Run | None:
            row = conn.execute(f"SELECT {_RUN_COLUMNS} FROM runs WHERE id=%s", (run_id,)).fetchone()
            if row is None:
                return None
            steps = conn.execute(
                "SELECT step_id, kind, status, output, error, started_at, ended_at "
                "FROM steps WHERE run_id=%s ORDER BY seq",
                (run_id,),
            ).fetchall()
            attempts = conn.execute(
                "SELECT step_id, number, started_at, ended_at, error_type, error_message, "
                "traceback FROM attempts WHERE run_id=%s ORDER BY step_id, number",
                (run_id,),
            ).fetchall()
            return build_run(row, steps, attempts)

        return self._reading(read)

    def list_runs(
        self,
        function_id: str | None = None,
        status: str | None = None,
        limit: int = 100,
        before: str | None = None,
    ) -> list[Run]:
        where: list[str] = []
        params: list[Any] = []
        if function_id is not None:
            where.append("function_id=%s")
            params.append(function_id)
        if status is not None:
            where.append("status=%s")
            params.append(str(status))
        if before is not None:
            where.append("seq < coalesce((SELECT seq FROM runs WHERE id=%s), -1)")
            params.append(before)
        clause = f"WHERE {' AND '.join(where)}" if where else ""
        rows = self._read(
            f"SELECT {_RUN_COLUMNS} FROM runs {clause} ORDER BY seq DESC LIMIT %s",
            (*params, limit),
        )
        return [build_run(r, [], []) for r in rows]

    def runs_for_check(self, function_ids: Sequence[str], limit: int) -> list[str]:
        if not function_ids:
            return []
        rows = self._read(
            "SELECT id FROM runs WHERE function_id = ANY(%s) AND status != 'skipped' "
            "AND EXISTS (SELECT 1 FROM steps WHERE run_id = runs.id) ORDER BY seq DESC LIMIT %s",
            (list(function_ids), limit),
        )
        return [r[0] for r in rows]

    def prune(self, before: float, events_before: float) -> dict[str, int]:
        def op(conn: Any) -> dict[str, int]:
            old = f"SELECT id FROM runs WHERE ended_at < %s AND status IN {_TERMINAL}"
            steps = conn.execute(f"DELETE FROM steps WHERE run_id IN ({old})", (before,)).rowcount
            conn.execute(f"DELETE FROM attempts WHERE run_id IN ({old})", (before,))
            conn.execute(f"DELETE FROM cancel_waits WHERE run_id IN ({old})", (before,))
            runs = conn.execute(
                f"DELETE FROM runs WHERE ended_at < %s AND status IN {_TERMINAL}", (before,)
            ).rowcount
            events = conn.execute(
                "DELETE FROM events WHERE received_at < %s", (events_before,)
            ).rowcount
            return {"runs": runs, "steps": steps, "events": events}

        return self._write_op(op)

    def kv_get(self, key: str) -> str | None:
        rows = self._read("SELECT value FROM kv WHERE key=%s", (key,))
        return rows[0][0] if rows else None

    def kv_set(self, key: str, value: str) -> None:
        self._write_op(
            lambda c: c.execute(
                "INSERT INTO kv (key, value) VALUES (%s, %s) "
                "ON CONFLICT (key) DO UPDATE SET value=excluded.value",
                (key, value),
            )
        )
