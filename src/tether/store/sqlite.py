"""The embedded SQLite store (stdlib ``sqlite3``, WAL), tether's zero-set-up default.

The statements are the shared ones (``sql.py``); this module holds the connections. One
write connection per process, shared through group commit (``committer.py``); one read
connection per thread. ``durability="process"`` commits with ``synchronous=NORMAL`` (a
commit survives any process crash; accepted events are synced to disk all the same),
``durability="power"`` with ``synchronous=FULL`` (every commit reaches the disk before
the next step starts; concurrent checkpoints share one fsync).

A store file is created only when asked (``create=True``, the default): a missing file
opened with ``create=False`` is ``StoreNotFound``. The file's folder must exist, except
a missing ``.tether`` folder (a new project's default store), which is created.
"""

from __future__ import annotations

import contextlib
import math
import os
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from typing import Any, TypeVar, Unpack
from urllib.parse import quote

from tether.errors import (
    StoreCorrupt,
    StoreError,
    StoreFull,
    StoreLocked,
    StoreNotFound,
    WouldBlock,
)
from tether.store import migrations
from tether.store.committer import GroupCommitter, Op, Statement
from tether.store.dialect import SQLITE
from tether.store.executor import Tx
from tether.store.sql import SQLStore, StoreOptions

T = TypeVar("T")
DEFAULT_FOLDER = ".tether"  # a new project's store folder: created when missing


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


def _tether_tables(conn: sqlite3.Connection, path: str) -> set[str]:
    """The file's tables; StoreCorrupt when it holds another application's tables."""
    tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    if "tether_meta" not in tables and tables - {"sqlite_sequence"}:
        raise StoreCorrupt(
            f"{path} is a SQLite database but not a tether store (it has tables "
            f"{sorted(tables)[:5]}). Point TETHER_STORE at a new file."
        )
    return tables


def check_path(path: str, create: bool) -> bool:
    """Make sure a store can be opened at ``path``; return whether the file exists.

    Creates nothing but a missing ``.tether`` folder, and that only when ``create``."""
    full = os.path.abspath(path)
    if os.path.isdir(full):
        raise StoreError(
            f"the SQLite store path {path} is a folder: name a file in it, e.g. "
            f"sqlite:///{os.path.join(path, 'tether.db')}"
        )
    if os.path.exists(full):
        return True
    folder = os.path.dirname(full)
    existing = folder
    while not os.path.exists(existing):
        existing = os.path.dirname(existing)
    if not os.path.isdir(existing):
        raise StoreError(
            f"cannot open the SQLite store {path}: {existing} is a file, not a folder. "
            "Point the store URL at a path inside a folder."
        )
    if not create:
        raise StoreNotFound(
            f"there is no tether store at {path} (no such file). Create it with "
            f"`tether migrate --store sqlite:///{path}` or by starting the app once, or "
            "check the path (and TETHER_STORE)."
        )
    if not os.path.isdir(folder):
        if os.path.basename(folder) == DEFAULT_FOLDER and os.path.isdir(os.path.dirname(folder)):
            os.mkdir(folder)
        else:
            raise StoreError(
                f"cannot create the SQLite store {path}: its folder {folder} does not exist. "
                f"Create the folder first (mkdir -p {folder}) or point the store URL at a "
                "file in an existing folder."
            )
    return False


def _optimize(table: str) -> str:
    """The statement that merges an FTS5 table's segments (dropping deleted entries)."""
    quoted = '"' + table.replace('"', '""') + '"'
    return f"INSERT INTO {quoted} ({quoted}) VALUES ('optimize')"


def _ln(x: float | None) -> float | None:
    """SQLite's ln() where the build has no math functions (NULL outside its domain)."""
    return math.log(x) if x is not None and x > 0 else None


class SQLiteStore(SQLStore):
    """A store in one SQLite file; ``timeout``: how long a write waits for the file's
    lock (seconds) before ``StoreLocked``."""

    dialect = SQLITE

    def __init__(self, path: str, timeout: float = 10.0, **options: Unpack[StoreOptions]) -> None:
        super().__init__(**options)
        self.path = path
        self.url = f"sqlite:///{path}"
        self.loop_safe = self.durability == "process"
        self._timeout = timeout
        # Only the first connection may create the file; the others open what it made.
        self._target = self._uri(path, "rw" if check_path(path, self.create) else "rwc")
        self._local = threading.local()
        self._all: list[sqlite3.Connection] = []
        self._conns_lock = threading.Lock()
        self._writer = self._connect()
        self._writer_nowait: sqlite3.Connection | None = None  # busy timeout 0, on loops
        self._target = self._uri(path, "rw")
        self._committer: GroupCommitter[sqlite3.Connection] = GroupCommitter(self._run_batch)
        self._closed = False
        self._commits = 0
        self.operations = 0  # writes committed; with ``commits``, shows group commit at work

    @staticmethod
    def _uri(path: str, mode: str) -> str:
        return f"file:{quote(os.path.abspath(path))}?mode={mode}"

    def _describe(self) -> str:
        return f"the SQLite store {self.path}"

    # -- connections --------------------------------------------------------------------
    def _connect(self, busy_timeout: float | None = None) -> sqlite3.Connection:
        try:
            conn = sqlite3.connect(
                self._target,
                timeout=self._timeout if busy_timeout is None else busy_timeout,
                isolation_level=None,
                check_same_thread=False,
                uri=True,
            )
        except sqlite3.Error as exc:
            raise _translate(exc, self.path) from None
        try:
            _tether_tables(conn, self.path)  # before WAL mode rewrites another app's file
            if self._target.endswith("mode=rwc"):  # a new file: let vacuum() shrink it later
                conn.execute("PRAGMA auto_vacuum=INCREMENTAL")
            conn.execute("PRAGMA journal_mode=WAL")
            # Freed space is zeroed, so a deleted or rewritten row leaves no copy of its
            # text in the file (``forget()``'s promise, DESIGN 4b; ``erase_deleted``).
            conn.execute("PRAGMA secure_delete=ON")
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

    def _on_reader(self, fn: Callable[[Any], T]) -> T:
        if self._closed:
            raise StoreError(f"the store {self.path} is closed")
        with self._errors():
            return fn(self._reader())

    @contextlib.contextmanager
    def nowait(self) -> Iterator[None]:
        self._local.nowait = True
        try:
            yield
        finally:
            self._local.nowait = False

    def _run_nowait(self, ops: list[Op[sqlite3.Connection]]) -> None:
        conn = self._writer_nowait
        if conn is None:
            conn = self._writer_nowait = self._connect(busy_timeout=0.0)
        try:
            self._run_batch(ops, conn)
        except StoreLocked:
            raise WouldBlock() from None

    def _run_batch(
        self, ops: list[Op[sqlite3.Connection]], conn: sqlite3.Connection | None = None
    ) -> None:
        conn = conn or self._writer
        raise_sync = self.durability != "power" and any(op.sync for op in ops)
        if len(ops) == 1 and isinstance(ops[0].fn, Statement) and not raise_sync:
            # One statement commits by itself (autocommit): no BEGIN/COMMIT calls.
            try:
                ops[0].result = ops[0].fn(conn)
            except sqlite3.Error as exc:
                raise _translate(exc, self.path) from None
            self._commits += 1
            self.operations += 1
            return
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

    def iter_rows(self, sql: str, params: Sequence[Any] = (), batch: int = 5000) -> Iterator[Any]:
        """Stream a read's rows from this thread's read connection, ``batch`` at a time."""
        with self._errors():
            cursor = self._reader().execute(self.dialect.q(sql), params)
            try:
                while rows := cursor.fetchmany(batch):
                    yield from rows
            finally:
                cursor.close()

    @property
    def commits(self) -> int:
        """Transactions committed by this process."""
        return self._commits

    def _submit(self, fn: Callable[[Any], T], sync: bool, single: bool) -> T:
        if self._closed:
            raise StoreError(f"the store {self.path} is closed")
        if not sync and getattr(self._local, "nowait", False):
            op: Callable[[Any], T] = Statement(fn) if single else fn
            return self._committer.try_submit(op, self._run_nowait)
        result: T = self._committer.submit(Statement(fn) if single else fn, sync=sync)
        return result

    def vacuum(self, pages: int = 500, pause: float = 0.02) -> dict[str, Any]:
        """Give the file's free pages back to the file system, ``pages`` at a time (each
        step a short write), then truncate the WAL. A file made before incremental vacuum
        was on (``auto_vacuum`` NONE) is rebuilt once with a full VACUUM first: that holds
        the write lock for the whole rebuild and needs free disk space of the file's size.
        Returns the file's size before and after and whether the rebuild ran."""
        before = self._file_size()
        full = False
        with self._errors():
            if self._writer.execute("PRAGMA auto_vacuum").fetchone()[0] != 2:
                with self._committer.exclusive():
                    self._writer.execute("PRAGMA auto_vacuum=INCREMENTAL")
                    self._writer.execute("VACUUM")
                full = True
            while self._writer.execute("PRAGMA freelist_count").fetchone()[0] > 0:
                with self._committer.exclusive():
                    self._writer.executescript(
                        f"BEGIN IMMEDIATE; PRAGMA incremental_vacuum({int(pages)}); COMMIT;"
                    )
                time.sleep(pause)
            with self._committer.exclusive():
                self._writer.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchall()
        return {"bytes_before": before, "bytes_after": self._file_size(), "rebuilt": full}

    def _file_size(self) -> int:
        return sum(
            os.path.getsize(self.path + suffix)
            for suffix in ("", "-wal")
            if os.path.exists(self.path + suffix)
        )

    def close(self) -> None:
        self._closed = True
        with self._conns_lock:
            conns, self._all = self._all, []
        for conn in conns:
            with contextlib.suppress(sqlite3.Error):
                conn.close()

    # -- erasure (DESIGN 4b) ----------------------------------------------------------------
    def erase_deleted(self, timeout: float = 10.0) -> str | None:
        """Leave no byte of deleted rows in the file or its WAL: merge every full-text
        index (FTS5 keeps deleted terms in old segments until a merge), then checkpoint
        the WAL into the file and truncate it (older page images live there). Freed pages
        are zeroed already (``secure_delete``). A reader in a long transaction blocks the
        truncation: it is retried until ``timeout``; returns None when done, else why not."""
        tables = [
            r[0]
            for r in self.read(
                "SELECT name FROM sqlite_master WHERE type='table' AND sql LIKE ?",
                ("CREATE VIRTUAL TABLE%USING fts5%",),
            )
        ]
        if tables:
            self.write(lambda tx: [tx.execute(_optimize(t)) for t in tables])
        deadline = time.monotonic() + timeout
        try:
            conn = sqlite3.connect(self._target, timeout=1.0, isolation_level=None, uri=True)
        except sqlite3.Error as exc:
            return f"could not open {self.path} to checkpoint its WAL: {exc}"
        try:
            conn.execute("PRAGMA secure_delete=ON")
            while True:
                try:
                    busy, _, _ = conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
                except sqlite3.OperationalError as exc:  # the write lock stayed taken
                    busy, reason = 1, str(exc)
                else:
                    reason = "a reader kept an older snapshot of the file open"
                if not busy:
                    return None
                if time.monotonic() >= deadline:
                    return (
                        f"the WAL of {self.path} could not be checkpointed and truncated within "
                        f"{timeout:g}s ({reason}): copies of deleted pages may remain in "
                        f"{self.path}-wal until the next checkpoint. Call forget() again once "
                        "long reads (backups, open tools) are done."
                    )
                time.sleep(0.05)
        finally:
            conn.close()

    # -- schema ----------------------------------------------------------------------------
    def _schema_tables(self, tx: Tx) -> set[str]:
        return _tether_tables(tx.conn, self.path)

    def _apply_migration(self, tx: Tx, text: str) -> None:
        for statement in migrations.statements(text):
            tx.conn.execute(statement)
