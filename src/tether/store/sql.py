"""One SQL store for both backends: every statement is written here once.

``SQLStore`` implements the whole ``Store`` interface over three primitives its backend
supplies (``sqlite.py``, ``postgres.py``): run an operation in a group-committed
transaction, run one on a read connection, and the few things that truly differ
(advisory key locks, wake-ups of other processes, schema set-up). Statements are
written in SQLite's spelling with the marks ``dialect.py`` lists (``?``/``:name``
parameters, ``::type`` casts, ``{share}``, ``{lock}``, ``{skip_locked}``...); each
backend's ``Dialect`` adapts them. Payload columns go through ``store.codec``.

The transactions themselves live in small modules, each a set of functions taking a
``Tx``: ``creation`` (run rows and flow decisions), ``claims``, ``checkpoints`` (fenced
writes of a running run), ``waits`` (resolving blocked steps), ``endings`` (finish,
cancel, prune), ``flow_decisions`` and ``queries`` (read statements).

Adding a feature's tables and queries (memory, context windows, evals, audit)
---------------------------------------------------------------------------
1. A migration, once for both backends: ``store/migrations/0004_notes.sql``, with
   ``{float}``/``{bigint}``/``{seq}``/``{rowid}``/``{json}`` for the types that differ
   (or ``0004_notes.sqlite.sql`` + ``0004_notes.postgres.sql`` when the statements do,
   e.g. an FTS5 table against a tsvector column).
2. A module of functions over the store's executor, statements in the shared spelling,
   payloads through ``codec``::

       from tether.store.executor import Tx
       from tether.store.sql import SQLStore

       def add_note(store: SQLStore, subject: str, text: str, now: float) -> None:
           def op(tx: Tx) -> None:
               tx.execute(
                   "INSERT INTO notes (subject, body, created_at) VALUES (?, ?, ?)",
                   (subject, tx.codec.encode(text), now),
               )
           store.write(op)  # one transaction, group-committed with concurrent writers

       def notes(store: SQLStore, subject: str) -> list[str]:
           rows = store.read("SELECT body FROM notes WHERE subject=? ORDER BY seq", (subject,))
           return [store.codec.decode(body) for (body,) in rows]

   ``store.write(fn)`` runs ``fn(tx)`` in a transaction and returns its result; the
   function may run again if the transaction is retried (a lost connection, a deadlock),
   so it must not keep state of its own between calls. ``store.read(sql, params)``
   returns the rows of one statement, ``store.reading(fn)`` runs several reads on one
   connection. ``Tx`` has ``execute``, ``one``, ``all``, ``changed`` (rows written),
   ``many`` (executemany), ``in_`` (a list parameter), ``lock(keys)`` (serialise
   concurrent writers deciding on the same keys), ``lock_run`` and ``wake``.
3. Where a backend must differ (FTS5 ``MATCH`` against ``@@ to_tsquery``), branch on
   ``tx.d.name`` inside the one function, or add a mark to ``Dialect.tokens``.
"""

from __future__ import annotations

import abc
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from typing import TYPE_CHECKING, Any, TypedDict, TypeVar

from tether.codec import dumps, loads
from tether.errors import ConfigurationError, SchemaVersionError, StoreNotFound
from tether.records import Run
from tether.store import checkpoints as cp
from tether.store import claims, endings, migrations, subject_runs, waits
from tether.store import flow_decisions as flow
from tether.store import memories as mem
from tether.store import windows as win
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
from tether.store.creation import DAY, insert_run, new_claim
from tether.store.dialect import Dialect
from tether.store.executor import Params, Tx
from tether.store.memories import MemoryRow, NewMemory
from tether.store.payloads import IDENTITY, PayloadCodec
from tether.store.queries import (
    RETRIES_SQL,
    RUN_ATTEMPTS_SQL,
    RUN_COLUMNS,
    RUN_STEPS_SQL,
    STATS_SQL,
    RunQuery,
    events_sql,
    list_sql,
    runs_sql,
)
from tether.store.rows import build_run

if TYPE_CHECKING:
    from tether.context.records import ContextItem

T = TypeVar("T")


class StoreOptions(TypedDict, total=False):
    """The options every SQL backend takes (``open_store`` passes them on)."""

    durability: str  # "process" (the default) or "power"
    create: bool  # False: refuse to create a store that is not there (reading commands)
    codec: PayloadCodec | None  # how payload columns are kept (identity by default)


class SQLStore(Store):
    """The shared SQL store (see the module docstring); subclassed per backend."""

    dialect: Dialect
    codec: PayloadCodec

    def __init__(
        self, *, durability: str = "process", create: bool = True, codec: PayloadCodec | None = None
    ) -> None:
        if durability not in ("process", "power"):
            raise ConfigurationError(
                f"durability={durability!r} is not a mode: use 'process' (the default) or 'power'"
            )
        self.durability = durability
        self.codec = codec or IDENTITY
        self.create = create  # False: migrate() refuses to create a store that is not there
        self._fresh: set[str] = set()  # runs this process created already claimed
        self._pgvector: bool | None = None  # memory searches through pgvector (None: untried)
        self._active = threading.local()  # active_tx()

    # -- what each backend supplies -------------------------------------------------------
    @abc.abstractmethod
    def _submit(self, fn: Callable[[Any], T], sync: bool, single: bool) -> T:
        """Run ``fn(connection)`` in a group-committed transaction; ``sync``: this commit
        must reach the disk; ``single``: each statement of ``fn`` may commit alone."""

    @abc.abstractmethod
    def _on_reader(self, fn: Callable[[Any], T]) -> T:
        """Run ``fn(connection)`` on a read connection."""

    @abc.abstractmethod
    def _schema_tables(self, tx: Tx) -> set[str]:
        """Prepare for a migration (locks, a schema) and list the store's tables; raise
        StoreCorrupt when they belong to another application."""

    @abc.abstractmethod
    def _apply_migration(self, tx: Tx, text: str) -> None: ...

    def _lock_keys(self, conn: Any, keys: Iterable[str]) -> None:
        """Transaction-scoped locks on names (none needed where writers are serialised)."""

    def _wake(self, conn: Any) -> None:
        """Wake workers of other processes after this transaction commits."""

    # The store named in messages: "the SQLite store /path", "the PostgreSQL store URL".
    def _describe(self) -> str:
        return f"the store {self.url}"

    # -- the executor ------------------------------------------------------------------
    def read(self, sql: str, params: Params = ()) -> list[Any]:
        """The rows of one statement (shared spelling), on a read connection."""
        q = self.dialect.q(sql)
        return self._on_reader(lambda conn: conn.execute(q, params).fetchall())

    def reading(self, fn: Callable[[Tx], T]) -> T:
        """Run ``fn(tx)`` on one read connection (several reads, one connection)."""
        return self._on_reader(self._bound(fn))

    def write(self, fn: Callable[[Tx], T], *, sync: bool = False, single: bool = False) -> T:
        """Run ``fn(tx)`` in one transaction, group-committed with concurrent writers.

        ``sync``: the commit reaches the disk even in ``durability="process"``.
        ``single``: ``fn`` stays right if each of its statements commits on its own (one
        statement, or fenced ones), so alone in its batch it may skip BEGIN/COMMIT."""
        return self._submit(self._bound(fn), sync, single)

    def _bound(self, fn: Callable[[Tx], T]) -> Callable[[Any], T]:
        """``fn`` on a ``Tx`` of the connection, known to this thread as the transaction
        under way (``active_tx``) while it runs."""

        def run(conn: Any) -> T:
            tx, prev = Tx(conn, self), self.active_tx()
            self._active.tx = tx
            try:
                return fn(tx)
            finally:
                self._active.tx = prev

        return run

    def active_tx(self) -> Tx | None:
        """The transaction this thread is running an operation of this store in, if any: a
        codec that needs the store (a subject's data key) works inside it instead of
        waiting for a transaction of its own behind it."""
        return getattr(self._active, "tx", None)

    def run_sql(self, fn: Callable[[Any, Dialect], T], *, write: bool) -> T:
        """Run ``fn(connection, dialect)`` for modules of shared statements that take a raw
        connection (``store/langgraph_sql.py``): in a group-committed write transaction when
        ``write``, else on a read connection."""
        if write:
            return self.write(lambda tx: fn(tx.conn, tx.d))
        return self.reading(lambda tx: fn(tx.conn, tx.d))

    # -- schema ------------------------------------------------------------------------
    def migrate(self) -> int:
        scripts = migrations.scripts(self.dialect)
        latest = scripts[-1][0]

        def op(tx: Tx) -> int:
            version = 0
            if "tether_meta" in self._schema_tables(tx):
                row = tx.one("SELECT value FROM tether_meta WHERE key='schema_version'")
                version = int(row[0]) if row else 0
            if version == 0 and not self.create:
                raise StoreNotFound(
                    f"{self._describe()} does not exist (no tether tables there). Create it "
                    f"with `tether migrate --store {self.url}` or by starting the app once, "
                    "or check the URL (and TETHER_STORE)."
                )
            if version > latest:
                raise SchemaVersionError(
                    f"{self._describe()} has schema version {version}, newer than this "
                    f"tether understands ({latest}). Upgrade tether (pip install -U tether) "
                    "on this machine; never point an older tether at a newer store."
                )
            for number, text in scripts:
                if number > version:
                    self._apply_migration(tx, text)
            self.codec.attach(self, tx)  # refuses a wrong or missing encryption key
            tx.execute(
                "INSERT INTO tether_meta (key, value) VALUES ('schema_version', ?) "
                "ON CONFLICT (key) DO UPDATE SET value=excluded.value",
                (str(max(version, latest)),),
            )
            return max(version, latest)

        return self.write(op, sync=True)

    # -- functions ---------------------------------------------------------------------
    def register_functions(self, rows: Sequence[dict[str, Any]], now: float) -> None:
        """Store each function's description (the row dict, every key of it, as JSON)."""
        params = []
        for r in sorted(rows, key=lambda r: str(r["id"])):  # one lock order for all writers
            try:
                spec = dumps(r)
            except (TypeError, ValueError) as exc:
                raise ConfigurationError(
                    f"the description of function {r['id']!r} cannot be stored as JSON "
                    f"({exc}): give plain JSON values (str, int, float, bool, None, lists, "
                    "dicts with string keys)"
                ) from None
            triggers = dumps(r.get("triggers", []))
            params.append((r["id"], triggers, r.get("idempotency"), r.get("version"), spec, now))
        if not params:
            return
        self.write(
            lambda tx: tx.many(
                "INSERT INTO functions (id, triggers, idempotency, version, spec, updated_at) "
                "VALUES (?,?,?,?,?::jsonb,?) ON CONFLICT (id) DO UPDATE SET "
                "triggers=excluded.triggers, idempotency=excluded.idempotency, "
                "version=excluded.version, spec=excluded.spec, updated_at=excluded.updated_at",
                params,
            )
        )

    def registered_functions(self) -> list[dict[str, Any]]:
        """Each function's description as ``register_functions`` stored it (rows written
        before descriptions were kept whole: id, triggers, idempotency and version)."""
        rows = self.read(
            "SELECT id, triggers, idempotency, version, spec::text FROM functions ORDER BY id"
        )
        return [
            loads(spec)
            if spec is not None
            else {"id": fid, "triggers": loads(triggers), "idempotency": idem, "version": version}
            for fid, triggers, idem, version, spec in rows
        ]

    # -- events and run creation ------------------------------------------------------
    def accept(self, events: Sequence[EventRow], plan: Planner, now: float) -> list[Accepted]:
        names = sorted({ev.name for ev in events})

        def op(tx: Tx) -> list[Accepted]:
            # Which of these events anything waits for, or cancels on: two queries per
            # batch instead of two per event.
            where, params = tx.in_("wait_event", names)
            waited = {
                r[0]
                for r in tx.all(
                    f"SELECT DISTINCT wait_event FROM steps WHERE status='waiting' AND {where}",
                    params,
                )
            }
            where, params = tx.in_("event_name", names)
            cancels = {
                r[0]
                for r in tx.all(
                    f"SELECT DISTINCT event_name FROM cancel_waits WHERE {where}", params
                )
            }
            out: list[Accepted] = []
            for ev in events:
                planned = plan(ev)
                # The event belongs to the subject of a run it starts (DESIGN 4b).
                subject = next((n.subject for n in planned if n.subject is not None), None)
                if not tx.changed(
                    "INSERT INTO events (id, name, data, ts, received_at, subject) "
                    "VALUES (?,?,?,?,?,?) "
                    "ON CONFLICT (id) DO UPDATE SET name=excluded.name, data=excluded.data, "
                    "ts=excluded.ts, received_at=excluded.received_at, subject=excluded.subject "
                    "WHERE events.received_at < ?",
                    (ev.id, ev.name, tx.codec.encode(ev.data), ev.ts, now, subject, now - DAY),
                ):
                    out.append(Accepted(ev.id, True))
                    continue
                run_ids = []
                decisions = []
                for new in planned:
                    rid, created, decision, _ = insert_run(tx, new, now)
                    if created:
                        run_ids.append(rid)
                        if new.flow is not None:
                            cancels.update(w[0] for w in new.flow.cancel_waits)
                    if decision is not None:
                        decisions.append(
                            {"function": new.function_id, "run_id": rid, "decision": decision}
                        )
                if ev.name in waited:
                    waits.wake_waiters(tx, ev, now)
                if ev.name in cancels:
                    doc = {"name": ev.name, "data": loads(ev.data), "id": ev.id}
                    for rid in flow.cancel_by_event(tx, ev.name, doc, ev.id, now):
                        decisions.append({"run_id": rid, "decision": "cancelled this run"})
                if decisions:
                    tx.execute(
                        "UPDATE events SET decisions=? WHERE id=?", (dumps(decisions), ev.id)
                    )
                out.append(Accepted(ev.id, False, run_ids))
            if any(not a.duplicate for a in out):
                tx.wake()
            return out

        result = self.write(op, sync=True)
        self.notify()
        return result

    def create_run(
        self, run: NewRun, now: float, owner: str | None = None, ttl: float = 0.0
    ) -> tuple[str, bool, Claim | None]:
        # Without flow control or an idempotency key, creating a run is one INSERT (an
        # existing id makes it a no-op), plus a wake-up when the run waits for a worker.
        simple = run.flow is None and run.idempotency_key is None

        def op(tx: Tx) -> tuple[str, bool, Claim | None]:
            if not simple and tx.one("SELECT id FROM runs WHERE id=?", (run.id,)):
                return run.id, False, None
            owner_now = None if run.flow is not None and run.flow.delays_start else owner
            rid, created, _, token = insert_run(tx, run, now, owner_now, ttl)
            if not (created and owner_now is not None):
                if created:
                    tx.wake()
                return rid, created, None
            return rid, True, new_claim(run, token, now)

        result = self.write(op, single=simple)
        if result[2] is not None:
            if len(self._fresh) > 10_000:  # claims whose run never started here
                self._fresh.clear()
            self._fresh.add(result[0])
        elif result[1]:
            self.notify()
        return result

    def fork(self, run_id: str, from_step: str | None, new: NewRun, now: float) -> str:
        def op(tx: Tx) -> str:
            limit = None
            if from_step is not None:
                row = tx.one(
                    "SELECT seq FROM steps WHERE run_id=? AND step_id=?", (run_id, from_step)
                )
                if row is None:
                    known = [
                        r[0]
                        for r in tx.all(
                            "SELECT step_id FROM steps WHERE run_id=? ORDER BY seq", (run_id,)
                        )
                    ]
                    raise ConfigurationError(
                        f"run {run_id} has no step {from_step!r}; its steps are {known}"
                    )
                limit = row[0]
            insert_run(tx, new, now)
            if limit is not None:
                tx.execute(
                    "INSERT INTO steps (run_id, step_id, seq, kind, status, output, error, "
                    "started_at, ended_at, wake_at, child_id) SELECT ?::text, step_id, seq, "
                    "kind, status, output, error, started_at, ended_at, wake_at, child_id "
                    "FROM steps WHERE run_id=? AND seq<? AND status IN ('completed', 'failed')",
                    (new.id, run_id, limit),
                )
            tx.wake()
            return new.id

        rid = self.write(op)
        self.notify()
        return rid

    def schedule_cron(
        self,
        function_id: str,
        ticks: Callable[[float], list[float]],
        make: Callable[[float], NewRun],
        now: float,
        skip_late: float | None = None,
    ) -> tuple[list[str], float]:
        key = f"cron:{function_id}"

        def op(tx: Tx) -> tuple[list[str], float]:
            tx.lock([key])
            row = tx.one("SELECT value FROM kv WHERE key=?", (key,))
            last = float(row[0]) if row else now
            if row is not None and last > now:
                return [], last  # the next tick is already scheduled
            if row is not None and skip_late is not None and now - last > skip_late:
                tx.execute(
                    "UPDATE runs SET status='skipped', reason=?, ended_at=?, due_at=NULL "
                    "WHERE id=? AND status='queued' AND started_at IS NULL",
                    (
                        f"missed: no worker ran at its tick ({now - last:.0f}s ago) and the "
                        "trigger says skip_missed=True",
                        now,
                        make(last).id,
                    ),
                )
            created = []
            due = ticks(last)
            for tick in due:
                rid, ok, _, _ = insert_run(tx, make(tick), now)
                if ok:
                    created.append(rid)
            if due:
                self._kv_set(tx, key, repr(due[-1]))
            if created:
                tx.wake()
            return created, due[-1] if due else last

        created, cursor = self.write(op)
        if created:
            self.notify()
        return created, cursor

    # -- claiming and leases ------------------------------------------------------------
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
        fids, busy = list(function_ids), list(exclude)
        if keyed:
            got = self.write(
                lambda tx: claims.from_rows(
                    tx, claims.keyed(tx, owner, limit, fids, now, ttl, busy)
                )
            )
        else:
            got = self.write(
                lambda tx: claims.from_rows(
                    tx, claims.plain(tx, owner, limit, fids, now, ttl, busy)
                ),
                single=True,
            )
        return self._not_fresh(got)

    def claim_run(self, run_id: str, owner: str, now: float, ttl: float) -> Claim | None:
        got = self.write(lambda tx: claims.from_rows(tx, claims.one(tx, run_id, owner, now, ttl)))
        return self._not_fresh(got)[0] if got else None

    def _not_fresh(self, got: list[Claim]) -> list[Claim]:
        """A run claimed again may have steps by now: its next load reads them."""
        if self._fresh:
            for claim in got:
                self._fresh.discard(claim.run_id)
        return got

    def next_due(self, function_ids: Sequence[str]) -> float | None:
        if not function_ids:
            return None
        where, params = self.dialect.in_(self.dialect.unindexed("function_id"), function_ids)
        rows = self.read(
            f"SELECT due_at FROM runs WHERE due_at IS NOT NULL AND {where} ORDER BY due_at LIMIT 1",
            params,
        )
        return float(rows[0][0]) if rows else None

    def renew(self, owner: str, run_ids: Sequence[str], until: float) -> list[str]:
        if not run_ids:
            return []
        where, params = self.dialect.in_("id", sorted(run_ids))  # one lock order
        rows = self.write(
            lambda tx: tx.all(
                f"UPDATE runs SET due_at=? WHERE {where} AND lease_owner=? "
                "AND status='running' RETURNING id, cancel_requested",
                (until, *params, owner),
            ),
            single=True,
        )
        return [r[0] for r in rows if r[1]]

    def release(self, run_id: str, token: int, now: float) -> None:
        def op(tx: Tx) -> None:
            if tx.changed(
                "UPDATE runs SET due_at=?, lease_owner=NULL WHERE id=? AND lease_token=? "
                "AND status='running'",
                (now, run_id, token),
            ):
                tx.wake()

        self.write(op, single=True)
        self.notify()

    # -- execution (all fenced: checkpoints.py) -------------------------------------------
    def load_steps(self, run_id: str) -> dict[str, StepRow]:
        if run_id in self._fresh:  # created and claimed by this process: no steps yet
            self._fresh.discard(run_id)
            return {}
        return self.reading(lambda tx: cp.load_steps(tx, run_id))

    def save_step(self, run_id: str, token: int, step: StepWrite) -> bool:
        also = step.also

        def op(tx: Tx) -> bool:
            cancel = cp.checkpoint(tx, run_id, cp.step_params(tx, run_id, token, step))
            if also is not None:  # in the same transaction (a context window's reply)
                also(tx)
            return cancel

        return self.write(op, single=also is None)

    def save_steps(self, items: Sequence[tuple[str, int, StepWrite]]) -> list[bool | Fenced]:
        def op(tx: Tx) -> list[bool | Fenced]:
            batch = [(r, cp.step_params(tx, r, token, s)) for r, token, s in items]
            return cp.checkpoints(tx, batch)

        # Each checkpoint is fenced on its own, so they may commit one by one. Where that
        # is cheap (PostgreSQL without a flush per commit) a batch skips BEGIN/COMMIT: its
        # statements go in one pipeline, one round trip. SQLite shares one commit instead.
        single = len(items) == 1 or (not self.dialect.serialised and self.durability == "process")
        return self.write(op, single=single)

    def resolve_wait(self, run_id: str, token: int, step_id: str, now: float) -> bool:
        return self.write(lambda tx: cp.resolve_wait(tx, run_id, token, step_id, now))

    def save_attempt(self, run_id: str, token: int, attempt: AttemptWrite) -> None:
        self.write(lambda tx: cp.save_attempt(tx, run_id, token, attempt))

    def start_child(
        self, run_id: str, token: int, step: StepWrite, child: NewRun, now: float
    ) -> str:
        def op(tx: Tx) -> str:
            if tx.changed(cp.STEP_ANY, cp.step_params(tx, run_id, token, step)) != 1:
                raise Fenced(run_id)
            insert_run(tx, child, now)
            tx.wake()
            return child.id

        rid = self.write(op)
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
            self.write(
                lambda tx: cp.suspend_sleeping(tx, run_id, token, due_at, blocked, now),
                single=True,
            )
        else:
            self.write(
                lambda tx: cp.suspend_waiting(tx, run_id, token, status, due_at, blocked, now)
            )
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
        stored = self.codec.encode_opt(output), self.codec.encode_opt(error)
        if follow_up is None and token is not None:
            # Most runs have no parent to wake: then one fenced UPDATE ends the run.
            # Otherwise, or when it matched nothing (a parent, another token, ended
            # already), the transaction below decides.
            params = (status, *stored, now, run_id, token)
            if self.write(lambda tx: tx.changed(endings.FINISH_ALONE, params), single=True):
                self.notify()
                return True
        done = self.write(
            lambda tx: endings.finish(tx, run_id, token, status, *stored, now, follow_up)
        )
        self.notify()
        return done

    # -- operations -------------------------------------------------------------------
    def request_cancel(self, run_id: str, now: float) -> str | None:
        status = self.write(lambda tx: endings.request_cancel(tx, run_id, now))
        if status == "cancelled":
            self.notify()
        return status

    def run_status(self, run_id: str) -> tuple[str, float | None] | None:
        rows = self.read("SELECT status, due_at FROM runs WHERE id=?", (run_id,))
        return (rows[0][0], rows[0][1]) if rows else None

    def run_result(self, run_id: str) -> tuple[str, str | None, str | None] | None:
        rows = self.read("SELECT status, output, error FROM runs WHERE id=?", (run_id,))
        if not rows:
            return None
        status, output, error = rows[0]
        return status, self.codec.decode_opt(output), self.codec.decode_opt(error)

    def get_run(self, run_id: str) -> Run | None:
        def read(tx: Tx) -> Run | None:
            row = tx.one(f"SELECT {RUN_COLUMNS} FROM runs WHERE id=?", (run_id,))
            if row is None:
                return None
            steps = tx.all(RUN_STEPS_SQL, (run_id,))
            attempts = tx.all(RUN_ATTEMPTS_SQL, (run_id,))
            return build_run(row, steps, attempts, self.codec)

        return self.reading(read)

    def list_runs(
        self,
        function_id: str | None = None,
        status: str | None = None,
        limit: int = 100,
        before: str | None = None,
    ) -> list[Run]:
        sql, params = list_sql(function_id, status, limit, before)
        return [build_run(r, [], [], self.codec) for r in self.read(sql, params)]

    def runs_for_check(self, function_ids: Sequence[str], limit: int) -> list[str]:
        if not function_ids:
            return []
        where, params = self.dialect.in_("function_id", function_ids)
        rows = self.read(
            f"SELECT id FROM runs WHERE {where} AND status != 'skipped' "
            "AND EXISTS (SELECT 1 FROM steps WHERE run_id = runs.id) ORDER BY seq DESC LIMIT ?",
            (*params, limit),
        )
        return [r[0] for r in rows]

    def prune(self, before: float, events_before: float) -> dict[str, int]:
        return self.write(lambda tx: endings.prune(tx, before, events_before))

    def recent_events(self, name: str, since: float) -> list[EventRow]:
        rows = self.read(
            "SELECT id, name, data, ts FROM events WHERE name=? AND received_at>=? "
            "ORDER BY received_at",
            (name, since),
        )
        return [EventRow(r[0], r[1], self.codec.decode(r[2]), r[3]) for r in rows]

    def kv_get(self, key: str) -> str | None:
        rows = self.read("SELECT value FROM kv WHERE key=?", (key,))
        return rows[0][0] if rows else None

    def kv_set(self, key: str, value: str) -> None:
        self.write(lambda tx: self._kv_set(tx, key, value), single=True)

    @staticmethod
    def _kv_set(tx: Tx, key: str, value: str) -> None:
        tx.execute(
            "INSERT INTO kv (key, value) VALUES (?, ?) "
            "ON CONFLICT (key) DO UPDATE SET value=excluded.value",
            (key, value),
        )

    # -- encryption at rest (encryption.py) ---------------------------------------------------
    def destroy_subject_key(self, subject: str) -> bool:
        """Delete ``subject``'s data key: its data still on disk (or in backups) can no
        longer be decrypted. Whether there was a key (none without encryption)."""
        from tether.store.encryption import destroy_subject_key

        return self.write(lambda tx: destroy_subject_key(tx, subject), sync=True)

    # -- dashboard reads (queries.py) ----------------------------------------------------------
    def query_runs(self, query: RunQuery) -> list[Run]:
        sql, params = runs_sql(query, payloads=self.codec.searchable)
        return [build_run(r, [], [], self.codec) for r in self.read(sql, params)]

    def run_stats(
        self, since: float, limit: int
    ) -> tuple[list[tuple[str, str, float | None]], dict[str, int]]:
        rows = self.read(STATS_SQL, (since, limit))
        retries = self.read(RETRIES_SQL, (since, limit))
        return [(r[0], r[1], r[2]) for r in rows], {r[0]: int(r[1]) for r in retries}

    def list_events(
        self, limit: int, before: str | None = None, name: str | None = None
    ) -> list[tuple[EventRow, float, str | None]]:
        sql, params = events_sql(limit, before, name)
        rows = self.read(sql, params)
        return [(EventRow(r[0], r[1], self.codec.decode(r[2]), r[3]), r[4], r[5]) for r in rows]

    # -- long-term memory and subjects (memories.py) -------------------------------------------
    def memory_add(self, new: NewMemory) -> tuple[MemoryRow, bool]:
        """Write a memory item; (the item, created): an exact duplicate of a current text or
        an already applied write key returns the existing item."""
        return self.write(lambda tx: mem.add(tx, new))

    def memory_add_many(self, news: Sequence[NewMemory]) -> list[MemoryRow]:
        """``memory_add`` for many items, in one transaction."""
        return self.write(lambda tx: mem.add_many(tx, news))

    def memory_clear(self, subject: str, write_key: str | None, now: float) -> int:
        """Delete every memory of the subject (``Memory.clear``); how many rows went."""
        return self.write(lambda tx: mem.clear(tx, subject, write_key, now))

    def memory_update(self, old_id: str, new: NewMemory) -> MemoryRow:
        """Supersede a current item (MemoryNotFound when it is not the subject's)."""
        return self.write(lambda tx: mem.update(tx, old_id, new))

    def memory_delete(self, subject: str, item: str, write_key: str | None, now: float) -> int:
        """Delete a current item and its older versions (MemoryNotFound when not there)."""
        return self.write(lambda tx: mem.delete(tx, subject, item, write_key, now))

    def memory_get(self, subject: str, item: str) -> MemoryRow:
        return self.reading(lambda tx: mem.get(tx, subject, item))

    def memory_get_many(self, subject: str, ids: Sequence[str]) -> dict[str, MemoryRow]:
        return self.reading(lambda tx: mem.get_many(tx, subject, ids))

    def memory_list(self, subject: str) -> list[MemoryRow]:
        """The subject's current items, oldest first."""
        return self.reading(lambda tx: mem.current(tx, subject))

    def memory_search_sources(
        self,
        subject: str,
        terms: Sequence[str],
        limit: int,
        model: str | None,
        *,
        scan: bool = True,
    ) -> tuple[
        tuple[str, int] | None,
        dict[str, list[str]],
        list[tuple[str, float, str]],
        list[tuple[str, float, str, bytes]],
    ]:
        """What a search fuses, read on one connection: the index's (model, dimension), the
        items matching each term (at most ``limit`` + 1 ids a term), every current item
        (id, created_at, tags JSON) and the vectors of ``model``."""

        def read(tx: Tx) -> Any:
            index = None if model is None else mem.index_info(tx)
            ranked = mem.text_matches(tx, subject, terms, limit)
            vectors = [] if model is None or not scan else mem.subject_vectors(tx, subject, model)
            return index, ranked, mem.candidates(tx, subject), vectors

        result: Any = self.reading(read)
        return result  # type: ignore[no-any-return]

    def memory_pgvector(self, dimension: int) -> bool:
        """Whether searches use pgvector's HNSW index (set up on first call where ``CREATE
        EXTENSION vector`` succeeds; the exact scan of the subject's vectors otherwise)."""
        if self._pgvector is None:
            self._pgvector = self.write(lambda tx: mem.enable_pgvector(tx, dimension))
        return self._pgvector

    def memory_nearest(
        self, subject: str, model: str, query: bytes, limit: int
    ) -> list[tuple[str, float]]:
        """(id, cosine) of the subject's nearest items through pgvector (see above)."""
        return self.reading(lambda tx: mem.pgvector_nearest(tx, subject, model, query, limit))

    def memory_index(self) -> tuple[str, int] | None:
        """(model, dimension) of the store's memory vectors, or None before the first."""
        return self.reading(mem.index_info)

    def memory_set_index(self, model: str, dimension: int, now: float) -> None:
        self.write(lambda tx: mem.set_index(tx, model, dimension, now))

    def memory_to_reindex(self, model: str, after: int, limit: int) -> list[tuple[int, str, str]]:
        return self.reading(lambda tx: mem.to_reindex(tx, model, after, limit))

    def memory_put_vectors(
        self, rows: Sequence[tuple[int, str, bytes]], model: str, dimension: int
    ) -> None:
        """Store (seq, subject, vector) rows made with ``model``."""

        def op(tx: Tx) -> None:
            for seq, subject, vector in rows:
                mem.put_vector(tx, seq, subject, model, dimension, vector)

        self.write(op)

    def memory_drop_vectors(self, keep_model: str) -> int:
        """Delete the vectors of every model but ``keep_model`` (after a reindex)."""
        return self.write(
            lambda tx: tx.changed("DELETE FROM memory_vectors WHERE model<>?", (keep_model,))
        )

    def export_memories(self, subject: str) -> list[dict[str, Any]]:
        """Every version of the subject's memories (superseded ones too), oldest first."""
        return self.reading(lambda tx: mem.export(tx, subject))

    def delete_subject_memories(self, subject: str) -> int:
        """Delete all the subject's memories, their full-text entries, vectors and write
        keys (the FTS index merged on SQLite); how many memory rows went."""
        return self.write(lambda tx: mem.delete_subject(tx, subject))

    def ensure_subject(self, subject: str, now: float | None = None) -> None:
        """Create the subject's row (no preferences) unless it exists."""
        at = time.time() if now is None else now
        self.write(lambda tx: mem.ensure_subject(tx, subject, at), single=True)

    def subject_preferences(self, subject: str) -> dict[str, Any] | None:
        """The subject's preferences ({} when unset), or None when it has no row."""
        return self.reading(lambda tx: mem.preferences(tx, subject))

    def set_subject_preferences(self, subject: str, prefs: dict[str, Any]) -> None:
        """Persist the subject's preferences (a JSON object), creating its row."""
        now = time.time()
        self.write(lambda tx: mem.set_preferences(tx, subject, prefs, now), single=True)

    def list_subjects(self) -> list[str]:
        """Every subject the store keeps anything for (a subject row or memories)."""
        return [r[0] for r in self.read(mem.LIST_SUBJECTS)]

    def delete_subject_row(self, subject: str) -> int:
        """Delete the subject's row (its preferences); 1 when there was one."""
        return self.write(
            lambda tx: tx.changed("DELETE FROM subjects WHERE id=?", (subject,)), single=True
        )

    # -- the runs and events of a subject (subject_runs.py, DESIGN 4b) ---------------------------
    def run_subjects(self) -> list[str]:
        """The subjects that own runs, events or context windows."""
        return self.reading(subject_runs.subjects)

    def subject_has_runs(self, subject: str) -> bool:
        return self.reading(lambda tx: subject_runs.has_runs(tx, subject))

    def stop_subject_runs(self, subject: str, now: float) -> list[str]:
        """Cancel the subject's runs that are not executing, flag the executing ones (they
        stop at their next step boundary); return the ids of the executing ones."""
        return self.write(lambda tx: subject_runs.stop(tx, subject, now))

    def executing_subject_runs(self, subject: str) -> list[str]:
        return self.reading(lambda tx: subject_runs.executing(tx, subject))

    def export_subject_runs(self, subject: str) -> dict[str, list[dict[str, Any]]]:
        """``{"runs": [...], "events": [...]}``: the subject's runs with their steps and
        attempts, and the events that triggered them, as JSON values."""
        return self.reading(lambda tx: subject_runs.export(tx, subject))

    def delete_subject_runs(self, subject: str, now: float) -> dict[str, int]:
        """Delete the subject's runs (steps, attempts and all) and events; the counts. A
        parent outside the subject waiting on one of them sees its step fail."""
        counts = self.write(lambda tx: subject_runs.delete(tx, subject, now))
        self.notify()
        return counts

    def erase_deleted(self, timeout: float = 10.0) -> str | None:
        """Make what was deleted unreadable in the store's own files; None when done, else
        why it could not finish. A database server keeps deleted rows until VACUUM and
        recycles its WAL itself, so there is nothing to do here (see the SQLite store)."""
        return None

    # -- context windows (windows.py) -----------------------------------------------------
    def window_append(
        self,
        key: str,
        items: Sequence[ContextItem],
        now: float,
        *,
        subject: str | None = None,
        model: str | None = None,
        origins: Sequence[tuple[str, int] | None] | None = None,
    ) -> list[ContextItem]:
        """Append to window ``key`` atomically (``windows.append``)."""
        return self.write(
            lambda tx: win.append(
                tx, key, items, now, subject=subject, model=model, origins=origins
            )
        )

    def window_read(self, key: str, after: int = 0) -> tuple[int, list[ContextItem]]:
        """(generation, items with ``seq > after``): the generation changes on ``clear``."""

        def read(tx: Tx) -> tuple[int, list[ContextItem]]:
            row = win.window(tx, key)
            if row is None:
                return 0, []
            return row.generation, win.items_after(tx, row, after)

        return self.reading(read)

    def window_pins(self, key: str) -> dict[str, ContextItem]:
        return self.reading(lambda tx: _on_window(tx, key, win.current_pins, {}))

    def window_summary(self, key: str) -> ContextItem | None:
        def read(tx: Tx) -> ContextItem | None:
            row = win.window(tx, key)
            if row is None or row.summary_seq is None:
                return None
            return win.item_at(tx, row, row.summary_seq)

        return self.reading(read)

    def window_artifact(self, key: str, handle: str) -> ContextItem | None:
        return self.reading(
            lambda tx: _on_window(tx, key, lambda t, r: win.artifact(t, r, handle), None)
        )

    def window_origins(self, key: str, run_id: str) -> dict[int, int]:
        """seq -> write number of the items run ``run_id`` wrote to window ``key``."""
        return self.reading(lambda tx: win.origins(tx, key, run_id))

    def clear_window(self, key: str, now: float | None = None) -> int:
        """Delete every item of window ``key`` for good; returns how many."""
        stamp = time.time() if now is None else now
        return self.write(lambda tx: win.clear(tx, key, stamp))

    def window_keys(self, subject: str) -> list[str]:
        """The keys of the windows opened with ``subject``."""
        return self.reading(lambda tx: win.keys_of(tx, subject))

    def export_window(self, key: str) -> dict[str, Any]:
        """Window ``key`` with every item, as JSON-serialisable data ({} when unknown)."""
        return self.reading(lambda tx: win.export(tx, key)) or {}

    def delete_subject_windows(self, subject: str) -> dict[str, int]:
        """Delete the windows of ``subject`` and their items: {"windows": n, "items": m}."""
        return self.write(lambda tx: win.delete_subject(tx, subject))

    def window_reports(self, run_id: str) -> dict[str, dict[str, Any]]:
        """The context report of each ``ctx.step.llm(context=...)`` step of a run, by step."""
        return self.reading(lambda tx: win.run_reports(tx, run_id))

    def list_windows(self, limit: int = 100) -> list[dict[str, Any]]:
        """The most recently updated windows (key, subject, model, times, item count)."""
        return self.reading(lambda tx: win.listing(tx, limit))


def _on_window(tx: Tx, key: str, fn: Callable[[Tx, win.WindowRow], T], default: T) -> T:
    row = win.window(tx, key)
    return default if row is None else fn(tx, row)
