"""``Tx``: one connection of a SQL store, speaking the shared statements.

A ``Tx`` is what a store operation receives: inside ``SQLStore.write`` it is the open
transaction (group-committed with other writers'), inside ``SQLStore.reading`` a read
connection. Statements are written once in SQLite's spelling and translated by the
store's ``Dialect`` (``dialect.py``); payload columns go through ``tx.codec``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Protocol

from tether.store.dialect import Dialect
from tether.store.payloads import PayloadCodec

Params = Sequence[Any] | Mapping[str, Any]


class Backend(Protocol):
    """What a ``Tx`` needs from its store."""

    dialect: Dialect
    codec: PayloadCodec

    def _lock_keys(self, conn: Any, keys: Iterable[str]) -> None: ...

    def _wake(self, conn: Any) -> None: ...


class Tx:
    """A connection with the store's dialect and codec (see the module docstring)."""

    __slots__ = ("codec", "conn", "d", "store")

    def __init__(self, conn: Any, store: Backend) -> None:
        self.conn = conn  # the driver's connection (sqlite3 or psycopg)
        self.store = store
        self.d: Dialect = store.dialect
        self.codec: PayloadCodec = store.codec

    def execute(self, sql: str, params: Params = ()) -> Any:
        """Run one statement; return the driver's cursor (``rowcount``, ``fetchone``...)."""
        return self.conn.execute(self.d.q(sql), params)

    def one(self, sql: str, params: Params = ()) -> Any:
        """The first row of a statement's result, or None."""
        return self.conn.execute(self.d.q(sql), params).fetchone()

    def all(self, sql: str, params: Params = ()) -> list[Any]:
        """Every row of a statement's result."""
        rows: list[Any] = self.conn.execute(self.d.q(sql), params).fetchall()
        return rows

    def changed(self, sql: str, params: Params = ()) -> int:
        """Run a write statement; return how many rows it inserted, updated or deleted."""
        count: int = self.conn.execute(self.d.q(sql), params).rowcount
        return count

    def many(self, sql: str, rows: Iterable[Params]) -> None:
        """Run one statement once per parameter row."""
        cur = self.conn.cursor()
        try:
            cur.executemany(self.d.q(sql), list(rows))
        finally:
            cur.close()

    def in_(self, column: str, values: Sequence[Any]) -> tuple[str, list[Any]]:
        """``column IN values`` for positional statements: (SQL, parameters)."""
        return self.d.in_(column, values)

    def lock(self, keys: Iterable[str]) -> None:
        """Hold these named locks until commit, so concurrent writers deciding on the same
        keys go one after the other (advisory locks; SQLite's writers are serialised)."""
        self.store._lock_keys(self.conn, keys)

    def lock_run(self, run_id: str) -> None:
        """Lock a run's row until commit (nothing to do where writers are serialised)."""
        if not self.d.serialised:
            self.execute("SELECT 1 FROM runs WHERE id=?{lock}", (run_id,))

    def wake(self) -> None:
        """Tell workers in every process, once this commits, that runs became due."""
        self.store._wake(self.conn)
