"""What differs between the SQL backends in the statements they share."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Dialect:
    """Shared statements are written with ``?`` parameters and ``{same}`` for null-safe
    equality; ``q`` adapts them to a backend."""

    param: str  # the parameter marker
    same: str  # null-safe equality

    def q(self, sql: str) -> str:
        sql = sql.replace("{same}", self.same)
        return sql if self.param == "?" else sql.replace("?", self.param)


SQLITE = Dialect("?", "IS")
POSTGRES = Dialect("%s", "IS NOT DISTINCT FROM")
