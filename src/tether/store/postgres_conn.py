"""Connections of the PostgreSQL store: the pool, the write connection, LISTEN, retries.

``PgConnections`` owns everything that talks to the server: a psycopg_pool pool for
reads, one connection for writes (group commit runs one batch at a time, so one is
enough), a LISTEN connection in a thread of its own, and the translation of psycopg
errors into tether's ``StoreError``s naming the URL (password redacted) and the fix.
A write that fails on a lost connection, a deadlock or a serialisation failure is
retried on a fresh connection: every operation is safe to run again.
"""

from __future__ import annotations

import contextlib
import re
import threading
import time
import weakref
from collections.abc import Callable, Iterator, Sequence
from typing import Any, TypeVar
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from tether.errors import ConfigurationError, StoreError, StoreFull
from tether.store import redact_url
from tether.store.committer import GroupCommitter, Op, Statement

T = TypeVar("T")


def load_psycopg() -> tuple[Any, Any]:
    try:
        import psycopg
        import psycopg_pool
    except ImportError:
        raise ConfigurationError(
            "the PostgreSQL store needs psycopg 3 and psycopg_pool, which are not installed: "
            'run pip install "tether[postgres]"'
        ) from None
    return psycopg, psycopg_pool


def connect_fix(message: str) -> str:
    low = message.lower()
    if "password" in low or "authentication" in low or "role" in low:
        return "check the user name and password in the URL (or ~/.pgpass / PGPASSWORD)"
    if "database" in low and "does not exist" in low:
        return "create the database first (createdb NAME, or CREATE DATABASE NAME)"
    if "invalid" in low and ("parameter" in low or "option" in low):
        return (
            "remove or correct the URL query parameter it names (tether reads schema, "
            "pool_size and connect_timeout; libpq the rest, e.g. sslmode)"
        )
    return (
        "check that the server is running and accepts TCP connections at this host and "
        "port (pg_isready -h HOST -p PORT), and that the URL is right"
    )


def _release(held: dict[str, Any]) -> None:
    writer = held.pop("writer", None)
    if writer is not None:
        with contextlib.suppress(Exception):
            writer.close()
    with contextlib.suppress(Exception):
        held.pop("pool").close()


class PgConnections:
    """The server side of one ``PostgresStore`` (see the module docstring)."""

    def __init__(
        self,
        url: str,
        durability: str,
        on_notify: Callable[[], None],
        pool_size: int = 8,
        connect_timeout: float = 5.0,
    ) -> None:
        self._on_notify = on_notify
        psycopg, pool_mod = load_psycopg()
        self.pg = psycopg
        self.url = redact_url(url)
        self.durability = durability
        parts = urlsplit(url)
        query = dict(parse_qsl(parts.query))
        schema = query.pop("schema", None)
        if schema is not None and not re.fullmatch(r"[a-z_][a-z0-9_]{0,62}", schema):
            raise ConfigurationError(
                f"store URL {self.url!r}: schema={schema!r} is not a plain lowercase "
                "identifier (a-z, digits, underscore; not starting with a digit)"
            )
        try:
            pool_size = int(query.pop("pool_size", pool_size))
            connect_timeout = float(query.pop("connect_timeout", connect_timeout))
        except ValueError as exc:
            raise ConfigurationError(
                f"store URL {self.url!r}: pool_size must be an integer and connect_timeout "
                f"a number of seconds ({exc})"
            ) from None
        self.schema = schema
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
        self.channel = f"tether_due_{schema}" if schema else "tether_due"
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
                f"{connect_fix(text)}."
            ) from None
        self.pool = pool_mod.ConnectionPool(
            self._conninfo,
            kwargs=self._kwargs,
            min_size=1,
            max_size=max(2, pool_size),
            open=False,
            name="tether",
            timeout=30.0,
        )
        self.pool.open(wait=True, timeout=connect_timeout)
        # What close() releases; also released when this object is collected unclosed (a
        # CLI command that never closes its harness) or at interpreter exit.
        self._open: dict[str, Any] = {"writer": None, "pool": self.pool}
        self._finalizer = weakref.finalize(self, _release, self._open)
        self._committer: GroupCommitter[Any] = GroupCommitter(self._run_batch)
        self._closed = False
        self._commits = 0
        self.operations = 0
        self._listener: threading.Thread | None = None
        self._analyze_at = 500  # see _maybe_analyze
        self._listener_lock = threading.Lock()

    # -- errors and connections --------------------------------------------------------------------
    def _translate(self, exc: Exception) -> StoreError:
        errors = self.pg.errors
        text = str(exc).strip()
        if isinstance(exc, errors.DiskFull | errors.OutOfMemory):
            return StoreFull(
                f"the PostgreSQL store {self.url} cannot grow: {text}. Nothing from this "
                "write was kept. Free space on the server (or prune old runs with "
                "`tether prune --older-than 30d`) and retry."
            )
        if isinstance(exc, self.pg.OperationalError):
            return StoreError(
                f"lost the connection to the PostgreSQL store {self.url}: {text}. Fix: "
                f"{connect_fix(text)}."
            )
        return StoreError(f"PostgreSQL store {self.url}: {text}")

    def _retryable(self, exc: BaseException) -> bool:
        errors = self.pg.errors
        return isinstance(
            exc,
            errors.DeadlockDetected
            | errors.SerializationFailure
            | errors.LockNotAvailable
            | self.pg.OperationalError,
        ) and not isinstance(exc, errors.DiskFull | errors.OutOfMemory)

    @contextlib.contextmanager
    def connection(self) -> Iterator[Any]:
        if self._closed:
            raise StoreError(f"the store {self.url} is closed")
        with self.pool.connection() as conn:
            yield conn

    def read(self, sql: str, params: Sequence[Any] | dict[str, Any] = ()) -> list[Any]:
        return self.reading(lambda conn: conn.execute(sql, params).fetchall())

    def reading(self, fn: Callable[[Any], T]) -> T:
        for attempt in range(3):
            try:
                with self.connection() as conn:
                    return fn(conn)
            except self.pg.Error as exc:
                if attempt == 2 or not self._retryable(exc):
                    raise self._translate(exc) from None
                time.sleep(0.05 * (attempt + 1))
        raise AssertionError("unreachable")

    def _writer(self) -> Any:
        """The connection group commit writes on (one batch at a time, so one suffices)."""
        conn = self._open["writer"]
        if conn is None or conn.closed or conn.broken:
            if conn is not None:
                with contextlib.suppress(Exception):
                    conn.close()
            conn = self._open["writer"] = self.pg.connect(
                self._conninfo,
                connect_timeout=max(1, round(self._connect_timeout)),
                **self._kwargs,
            )
        return conn

    def _run_batch(self, ops: list[Op[Any]]) -> None:
        sync = self.durability == "process" and any(op.sync for op in ops)
        # One statement needs no BEGIN/COMMIT round trips: it is a transaction by itself.
        alone = len(ops) == 1 and isinstance(ops[0].fn, Statement) and not sync
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
            except self.pg.Error as exc:
                if attempt == 3 or not self._retryable(exc):
                    raise self._translate(exc) from None
                time.sleep(0.02 * (attempt + 1))

    @property
    def commits(self) -> int:
        """Transactions committed by this process."""
        return self._commits

    def write(self, fn: Callable[[Any], T], sync: bool = False) -> T:
        if self._closed:
            raise StoreError(f"the store {self.url} is closed")
        result = self._committer.submit(fn, sync=sync)
        if self.operations >= self._analyze_at:
            self._maybe_analyze()
        return result

    def wake_all(self, conn: Any) -> None:
        """Tell every listening process (after this transaction commits) that runs are due."""
        conn.execute("SELECT pg_notify(%s, '')", (self.channel,))

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        listener = self._listener
        if listener is not None:
            with contextlib.suppress(Exception), self.pool.connection() as conn:
                conn.execute("SELECT pg_notify(%s, 'close')", (self.channel,))
            listener.join(timeout=2)
        idle = self._committer._write_lock.acquire(timeout=5)  # let a batch in flight end
        try:
            self._finalizer()
        finally:
            if idle:
                self._committer._write_lock.release()

    def _maybe_analyze(self) -> None:
        """Refresh the planner's statistics of a table that grew fast.

        Autovacuum analyses a new table only after a minute or so; until then the planner
        may scan a whole table instead of reading an index. Every time this process has
        doubled its writes, one background ANALYZE brings the plans back."""
        if self.operations < self._analyze_at or self._closed:
            return
        self._analyze_at = self.operations * 2

        def analyze() -> None:
            with contextlib.suppress(Exception), self.connection() as conn:
                conn.execute("ANALYZE runs")
                conn.execute("ANALYZE steps")

        threading.Thread(target=analyze, name="tether-pg-analyze", daemon=True).start()

    # -- LISTEN/NOTIFY -------------------------------------------------------------------
    def start_listener(self) -> None:
        """LISTEN (on a connection of its own) and call ``on_notify`` for each NOTIFY."""
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
                conn = self.pg.connect(
                    self._conninfo,
                    connect_timeout=max(1, round(self._connect_timeout)),
                    **self._kwargs,
                )
            except self.pg.Error:
                time.sleep(backoff)
                backoff = min(backoff * 2, 2.0)
                continue
            try:
                conn.execute(sql.SQL("LISTEN {}").format(sql.Identifier(self.channel)))
                backoff = 0.1
                self._on_notify()  # catch up on what was missed while not listening
                while not self._closed:
                    for _ in conn.notifies(timeout=1.0, stop_after=1):
                        if not self._closed:
                            self._on_notify()
            except self.pg.Error:
                time.sleep(backoff)
            finally:
                with contextlib.suppress(Exception):
                    conn.close()
