"""What differs between the SQL backends in the statements they share.

Shared statements are written once, in SQLite's spelling with a few marks a ``Dialect``
adapts (``Dialect.q``, cached per statement text):

- ``?`` positional or ``:name`` named parameters (never both in one statement);
- ``::type`` casts, which PostgreSQL needs for parameters whose type it cannot infer
  (``SELECT ?::text ...``) and SQLite does not understand: they are dropped there;
- ``{same}``: null-safe equality (``IS`` / ``IS NOT DISTINCT FROM``);
- ``{share}`` / ``{lock}``: lock the selected row until commit (``FOR SHARE`` / ``FOR NO
  KEY UPDATE``) where writers run concurrently; nothing on SQLite, whose writers are
  serialised by the file's write lock;
- ``{skip_locked}`` / ``{skip_locked_runs}``: skip rows another claimer holds
  (``FOR UPDATE [OF runs] SKIP LOCKED``);
- ``{first_token}`` / ``{next_token}``: the lease token of a new claim (see below).

Lists are bound with ``Dialect.in_`` (``col IN (?,?)`` / ``col = ANY(?)``); a column is
kept out of an index with ``Dialect.unindexed``. Migrations use ``{float}``, ``{bigint}``,
``{seq}``, ``{rowid}`` and ``{json}`` for the column types that differ (``TYPES``).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

# A lease token is never handed out twice for a run, even when the PostgreSQL server crashes
# and loses its last asynchronous commits (durability="process"): a new token is above the
# last one and at least the server's clock in milliseconds, which has moved on since.
NEW_TOKEN = "greatest({prev} + 1, floor(extract(epoch FROM clock_timestamp()) * 1000)::bigint)"

_CAST = re.compile(r"::[a-z][a-z0-9_]*(\[\])?")
_NAMED = re.compile(r"(?<![:\w]):([a-z_][a-z0-9_]*)")


class Dialect:
    """One backend's spelling of the shared statements (see the module docstring)."""

    __slots__ = (
        "_cache",
        "_marks",
        "first_token",
        "name",
        "param",
        "same",
        "serialised",
        "tokens",
        "types",
    )

    def __init__(
        self,
        name: str,
        param: str,
        same: str,
        *,
        serialised: bool,
        first_token: int | None,
        tokens: Mapping[str, str],
        types: Mapping[str, str],
    ) -> None:
        self.name = name
        self.param = param  # the positional parameter marker
        self.same = same  # null-safe equality
        self.serialised = serialised  # one writer at a time: no row or advisory locks
        # The lease token of a run claimed as it is created, when known without reading
        # it back (None: the server computes it, ``{first_token}``).
        self.first_token = first_token
        self.tokens = {"same": same, **tokens}
        self.types = dict(types)
        self._marks = {f"{{{k}}}": v for k, v in self.tokens.items()}
        self._cache: dict[str, str] = {}

    def __repr__(self) -> str:
        return f"Dialect({self.name!r})"

    def q(self, sql: str) -> str:
        """``sql`` in this backend's spelling."""
        out = self._cache.get(sql)
        if out is None:
            out = self._translate(sql)
            if len(self._cache) > 4096:  # statements built with varying IN lists
                self._cache.clear()
            self._cache[sql] = out
        return out

    def _translate(self, sql: str) -> str:
        out = sql
        if "{" in out:
            for mark, text in self._marks.items():
                out = out.replace(mark, text)
        if self.param == "?":
            return _CAST.sub("", out) if "::" in out else out
        out = out.replace("%", "%%")
        out = _NAMED.sub(r"%(\1)s", out)
        return out.replace("?", self.param)

    def in_(self, column: str, values: Sequence[Any]) -> tuple[str, list[Any]]:
        """``column`` is one of ``values``: the SQL and its parameters."""
        if self.name == "postgres":
            return f"{column} = ANY(?)", [list(values)]
        return f"{column} IN ({','.join('?' * len(values))})", list(values)

    def unindexed(self, column: str) -> str:
        """``column`` as an expression no index serves, so the planner keeps to the due
        index instead of sorting a function's whole history (stale statistics)."""
        return f"+{column}" if self.name == "sqlite" else f"({column} || '')"

    def schema(self, text: str) -> str:
        """A migration's text with this backend's column types."""
        for key, value in self.types.items():
            text = text.replace(f"{{{key}}}", value)
        return text


SQLITE = Dialect(
    "sqlite",
    "?",
    "IS",
    serialised=True,
    first_token=1,
    tokens={
        "share": "",
        "lock": "",
        "skip_locked": "",
        "skip_locked_runs": "",
        "first_token": "1",
        "next_token": "lease_token + 1",
    },
    types={
        "float": "REAL",
        "bigint": "INTEGER",
        "seq": "INTEGER PRIMARY KEY",
        "rowid": " WITHOUT ROWID",
        "json": "TEXT",
    },
)
POSTGRES = Dialect(
    "postgres",
    "%s",
    "IS NOT DISTINCT FROM",
    serialised=False,
    first_token=None,
    tokens={
        "share": " FOR SHARE",
        "lock": " FOR NO KEY UPDATE",
        "skip_locked": " FOR UPDATE SKIP LOCKED",
        "skip_locked_runs": " FOR UPDATE OF runs SKIP LOCKED",
        "first_token": NEW_TOKEN.format(prev=0),
        "next_token": NEW_TOKEN.format(prev="lease_token"),
    },
    types={
        "float": "DOUBLE PRECISION",
        "bigint": "BIGINT",
        "seq": "BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY",
        "rowid": "",
        "json": "JSONB",
    },
)
