"""The PostgreSQL store (psycopg 3 + psycopg_pool): many workers on many machines, one database.

The statements are the shared ones (``sql.py``), made safe for concurrent writers under
READ COMMITTED by what this backend adds (docs/scaling.md tells the whole story):

- Claims lock candidates with ``FOR UPDATE SKIP LOCKED``; keyed claims count a key's
  running runs only after taking the key's advisory lock (``claims.py``).
  Creation-time decisions (idempotency, rate limit, singleton, debounce, batch,
  throttle, cron ticks) lock their key the same way (``lock_keys`` below).
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

from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any, TypeVar, Unpack

from tether.errors import StoreCorrupt
from tether.store.committer import Statement
from tether.store.dialect import POSTGRES
from tether.store.executor import Tx
from tether.store.postgres_conn import PgConnections
from tether.store.sql import SQLStore, StoreOptions

T = TypeVar("T")
TABLES = {"functions", "events", "runs", "steps", "attempts", "kv", "cancel_waits"}
VACUUMED = (
    "runs",
    "steps",
    "attempts",
    "events",
    "kv",
    "cancel_waits",
    "takeovers",
    "langgraph_checkpoints",
    "langgraph_writes",
)


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


class PostgresStore(SQLStore):
    """A store in a PostgreSQL database (a schema of it with ``?schema=name``); the
    connections, LISTEN and retries are ``PgConnections``'."""

    dialect = POSTGRES

    def __init__(
        self,
        url: str,
        *,
        pool_size: int = 8,
        connect_timeout: float = 5.0,
        **options: Unpack[StoreOptions],
    ) -> None:
        super().__init__(**options)
        self._db = PgConnections(url, self.durability, self.notify, pool_size, connect_timeout)
        self.url = self._db.url

    def _describe(self) -> str:
        where = f" (schema {self._db.schema})" if self._db.schema else ""
        return f"the PostgreSQL store {self.url}{where}"

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

    # -- what the shared store asks of its backend -------------------------------------------
    def _submit(self, fn: Callable[[Any], T], sync: bool, single: bool) -> T:
        result: T = self._db.write(Statement(fn) if single else fn, sync=sync)
        return result

    def _on_reader(self, fn: Callable[[Any], T]) -> T:
        return self._db.reading(fn)

    def iter_rows(self, sql: str, params: Sequence[Any] = (), batch: int = 5000) -> Iterator[Any]:
        """Stream a read's rows through a server-side cursor in a read-only transaction."""
        try:
            with self._db.connection() as conn, conn.transaction():
                conn.execute("SET TRANSACTION READ ONLY")
                with conn.cursor(name="tether_iter_rows") as cursor:
                    cursor.execute(self.dialect.q(sql), params)
                    while rows := cursor.fetchmany(batch):
                        yield from rows
        except self._db.pg.Error as exc:
            raise self._db._translate(exc) from None

    def vacuum(self, tables: Sequence[str] = VACUUMED) -> dict[str, Any]:
        """``VACUUM (ANALYZE)`` the tables retention prunes: their dead rows become space
        the tables reuse (the files shrink only where their tail was freed; ``VACUUM FULL``,
        which rewrites a table under an exclusive lock, is left to the operator). Returns
        the tables' total size before and after."""
        size = (
            "SELECT COALESCE(SUM(pg_total_relation_size(c.oid)), 0) FROM pg_class c "
            "JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = current_schema() "
            "AND c.relname = ANY(%s)"
        )
        try:
            with self._db.connection() as conn:
                before = int(conn.execute(size, (list(tables),)).fetchone()[0])
                for table in tables:
                    conn.execute(f"VACUUM (ANALYZE) {table}")
                after = int(conn.execute(size, (list(tables),)).fetchone()[0])
        except self._db.pg.Error as exc:
            raise self._db._translate(exc) from None
        return {"bytes_before": before, "bytes_after": after, "rebuilt": False}

    def _lock_keys(self, conn: Any, keys: Iterable[str]) -> None:
        lock_keys(conn, keys)

    def _wake(self, conn: Any) -> None:
        self._db.wake_all(conn)

    def _schema_tables(self, tx: Tx) -> set[str]:
        schema = self._db.schema
        tx.conn.execute(
            "SELECT pg_advisory_xact_lock(hashtextextended(%s, 0))",
            (f"tether:migrate:{schema or ''}",),
        )
        if schema is not None and self.create:
            from psycopg import sql

            tx.conn.execute(
                sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(sql.Identifier(schema))
            )
        tables = {
            r[0]
            for r in tx.conn.execute(
                "SELECT table_name FROM information_schema.tables "
                "WHERE table_schema = current_schema()"
            ).fetchall()
        }
        if "tether_meta" not in tables and tables & TABLES:
            where = f"schema {schema}" if schema else "the database"
            raise StoreCorrupt(
                f"{where} of {self.url} already has tables {sorted(tables & TABLES)} that "
                "are not tether's. Give tether a schema of its own: add ?schema=tether "
                "to the URL."
            )
        return tables

    def _apply_migration(self, tx: Tx, text: str) -> None:
        tx.conn.execute(text)  # no parameters: several statements in one round trip
