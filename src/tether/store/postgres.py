"""The PostgreSQL store (psycopg 3 + psycopg_pool): many workers on many machines, one database.

Same semantics as the SQLite store, made safe for concurrent writers under READ COMMITTED
(docs/scaling.md tells the whole story):

- Claims (``postgres_claims.py``) lock candidates with ``FOR UPDATE SKIP LOCKED``; keyed
  claims count a key's running runs only after taking the key's advisory lock.
  Creation-time decisions (idempotency, rate limit, singleton, debounce, batch,
  throttle, cron ticks) lock their key the same way (``postgres_flow.py``; the decisions themselves are shared: ``flow_decisions.py``).
- Fencing: every write of a running run locks the run's row with ``lease_token = <token>``
  in the same statement (``FOR SHARE`` / ``FOR NO KEY UPDATE``, or a conditional UPDATE).
  A claim that moves the lease updates that row, so the two serialise: the old worker
  either commits before the takeover (and the new owner loads its step) or re-reads the
  new token after it and commits nothing.
- A waiting run's row is locked both by whoever resolves its step (an event, a child) and
  by the worker suspending it, so one always sees the other's commit: no lost wake-up.
- Wake-ups: transactions that make runs due send ``pg_notify``; every process with
  workers LISTENs (``postgres_conn.py``) and wakes them at once; polling stays as fallback.
- Durability: ``durability="power"`` commits with ``synchronous_commit`` on. ``"process"``
  (the default) commits checkpoints with it off: a tether process crash loses nothing,
  a server crash may lose the last few hundred milliseconds of checkpoints (their steps
  run again). Accepted events always commit synchronously, and a lease token is never
  handed out twice (it is at least the server clock in ms), even across a server crash.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterator, Sequence
from importlib import resources
from typing import Any, TypeVar

from tether.codec import dumps, loads
from tether.errors import (
    ConfigurationError,
    SchemaVersionError,
    StoreCorrupt,
)
from tether.records import TERMINAL_STATUSES, Run
from tether.store import flow_decisions as flow
from tether.store import postgres_claims as claims
from tether.store import postgres_flow as flow_sql
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
from tether.store.flow_decisions import POSTGRES
from tether.store.postgres_claims import NEW_TOKEN
from tether.store.postgres_conn import PgConnections, Statement
from tether.store.queries import (
    RETRIES_SQL,
    STATS_SQL,
    RunQuery,
    events_sql,
    pg,
    runs_sql,
)
from tether.store.rows import build_run

T = TypeVar("T")
DAY = 86400.0
TABLES = {"functions", "events", "runs", "steps", "attempts", "kv", "cancel_waits"}
_TERMINAL = "('completed', 'failed', 'cancelled', 'skipped')"

_RUN_INSERT = (
    "INSERT INTO runs (id, function_id, status, event_name, event_id, event_ts, input, "
    "created_at, started_at, due_at, lease_owner, lease_token, timeout_s, deadline_at, "
    "parent_id, parent_step, replay_of, version, idempotency_key, reason, ended_at) "
    "VALUES (%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,"
    f"CASE WHEN %s::boolean THEN {NEW_TOKEN.format(prev=0)} ELSE 0 END,"
    "%s,%s,%s,%s,%s,%s,%s,%s,%s) ON CONFLICT (id) DO NOTHING RETURNING lease_token"
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


class PostgresStore(Store):
    def __init__(
        self,
        url: str,
        durability: str = "process",
        pool_size: int = 8,
        connect_timeout: float = 5.0,
    ) -> None:
        self._db = PgConnections(url, durability, self.notify, pool_size, connect_timeout)
        self.url = self._db.url
        self.durability = durability
        self._read = self._db.read
        self._reading = self._db.reading
        self._write_op = self._db.write
        self._wake_all = self._db.wake_all
        self._fresh: set[str] = set()  # runs this process created already claimed

    @property
    def commits(self) -> int:
        """Transactions committed by this process."""
        return self._db.commits

    @property
    def operations(self) -> int:
        """Writes committed by this process (with ``commits``: group commit at work)."""
        return self._db.operations

    def close(self) -> None:
        self._db.close()

    def add_listener(self, listener: Callable[[], None]) -> None:
        super().add_listener(listener)
        self._db.start_listener()

    # -- schema ----------------------------------------------------------------------------
    def migrate(self) -> int:
        folder = resources.files("tether.store.migrations") / "postgres"
        files = sorted(
            (f for f in folder.iterdir() if f.name.endswith(".sql")), key=lambda f: f.name
        )
        latest = len(files)
        where = f"schema {self._db.schema}" if self._db.schema else "the database"

        def op(conn: Any) -> int:
            lock = f"tether:migrate:{self._db.schema or ''}"
            conn.execute("SELECT pg_advisory_xact_lock(hashtextextended(%s, 0))", (lock,))
            if self._db.schema is not None:
                from psycopg import sql

                conn.execute(
                    sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(
                        sql.Identifier(self._db.schema)
                    )
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
            folded = flow.decide(conn, run, now, POSTGRES)
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
            flow.after_insert(conn, run, now, POSTGRES)
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
                    for rid in flow.cancel_by_event(conn, ev.name, doc, ev.id, now, POSTGRES):
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
        payload, found = waits.waiting_for(conn, ev, POSTGRES)
        for run_id, step_id in found:
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
        # Without flow control or an idempotency key, creating a run is one INSERT (an
        # existing id makes it a no-op), plus a NOTIFY when the run waits for a worker.
        simple = run.flow is None and run.idempotency_key is None

        def op(conn: Any) -> tuple[str, bool, Claim | None]:
            if not simple:
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
            if len(self._fresh) > 10_000:  # claims whose run never started here
                self._fresh.clear()
            self._fresh.add(rid)
            return rid, True, claim

        result: tuple[str, bool, Claim | None] = self._write_op(Statement(op) if simple else op)
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

    # -- claiming (the SQL is in postgres_claims.py) -----------------------------------
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
        fids = list(function_ids)
        busy = list(exclude)
        if keyed:
            rows = self._write_op(lambda c: claims.keyed(c, owner, limit, fids, now, ttl, busy))
        else:
            rows = self._write_op(
                Statement(lambda c: claims.plain(c, owner, limit, fids, now, ttl, busy))
            )
        return claims.from_rows(rows)

    def claim_run(self, run_id: str, owner: str, now: float, ttl: float) -> Claim | None:
        got = claims.from_rows(self._write_op(lambda c: claims.one(c, run_id, owner, now, ttl)))
        return got[0] if got else None

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

        return self._write_op(Statement(op))

    def release(self, run_id: str, token: int, now: float) -> None:
        sql = (
            "WITH u AS (UPDATE runs SET due_at=%s, lease_owner=NULL WHERE id=%s "
            "AND lease_token=%s AND status='running' RETURNING 1) "
            "SELECT pg_notify(%s, '') FROM u"
        )
        params = (now, run_id, token, self._db.channel)
        self._write_op(Statement(lambda c: c.execute(sql, params)))
        self.notify()

    # -- execution ---------------------------------------------------------------------
    def load_steps(self, run_id: str) -> dict[str, StepRow]:
        if run_id in self._fresh:  # created and claimed by this process: no steps yet
            self._fresh.discard(run_id)
            return {}
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
            Statement(lambda conn: self._upsert_step(conn, run_id, token, step))
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

            self._write_op(Statement(alone))
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
        if follow_up is None:
            # Most runs have no parent to wake: then one conditional UPDATE ends the run
            # (fenced by its token like any write). Otherwise, or when it matched nothing
            # (a parent, another token, already ended), the transaction below decides.
            ended = self._write_op(
                Statement(
                    lambda conn: conn.execute(
                        "UPDATE runs SET status=%s, output=%s, error=%s, ended_at=%s, "
                        "due_at=NULL, lease_owner=NULL WHERE id=%s AND lease_token=%s "
                        f"AND parent_id IS NULL AND status NOT IN {_TERMINAL} RETURNING 1",
                        (status, output, error, now, run_id, token),
                    ).fetchone()
                )
            )
            if ended is not None:
                self.notify()
                return True
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

    # -- the run audit's reads --------------------------------------------------------------
    def iter_rows(self, sql: str, params: Sequence[Any] = (), batch: int = 5000) -> Iterator[Any]:
        """A server-side cursor in a read-only transaction of its own."""
        try:
            with self._db.connection() as conn, conn.transaction():
                conn.execute("SET TRANSACTION READ ONLY")
                with conn.cursor(name="tether_iter_rows") as cursor:
                    cursor.execute(POSTGRES.q(sql), params)
                    while rows := cursor.fetchmany(batch):
                        yield from rows
        except self._db.pg.Error as exc:
            raise self._db._translate(exc) from None

    # -- dashboard reads ----------------------------------------------------------------------
    def query_runs(self, query: RunQuery) -> list[Run]:
        sql, params = runs_sql(query)
        return [build_run(r, [], []) for r in self._read(pg(sql), params)]

    def run_stats(
        self, since: float, limit: int
    ) -> tuple[list[tuple[str, str, float | None]], dict[str, int]]:
        rows = self._read(pg(STATS_SQL), (since, limit))
        retries = self._read(pg(RETRIES_SQL), (since, limit))
        return [(r[0], r[1], r[2]) for r in rows], {r[0]: int(r[1]) for r in retries}

    def list_events(
        self, limit: int, before: str | None = None, name: str | None = None
    ) -> list[tuple[EventRow, float, str | None]]:
        sql, params = events_sql(limit, before, name)
        rows = self._read(pg(sql), params)
        return [(EventRow(r[0], r[1], r[2], r[3]), r[4], r[5]) for r in rows]
