"""Schema migrations, one file per version for both backends.

``NNNN_name.sql`` is written once, with ``{float}``, ``{bigint}``, ``{seq}``, ``{rowid}``
and ``{json}`` where the column types differ (``Dialect.schema`` fills them in). A version
whose statements truly differ (a full-text index: FTS5 on SQLite, tsvector on PostgreSQL)
ships ``NNNN_name.sqlite.sql`` and ``NNNN_name.postgres.sql`` instead. Statements are
separated by ``;`` at the end of a line. The schema version of a store is the number of
the last file applied (kept in ``tether_meta``).
"""

from __future__ import annotations

from importlib import resources

from tether.store.dialect import Dialect


def scripts(dialect: Dialect) -> list[tuple[int, str]]:
    """(version, SQL text in this dialect) of every migration, in order."""
    chosen: dict[int, str] = {}
    for entry in resources.files(__name__).iterdir():
        name = entry.name
        if not name.endswith(".sql"):
            continue
        parts = name.split(".")
        if len(parts) == 3 and parts[1] != dialect.name:
            continue  # another backend's variant
        number = int(name.split("_", 1)[0])
        if number in chosen and len(parts) == 2:
            continue  # this backend's variant wins over a shared file of the same number
        chosen[number] = dialect.schema(entry.read_text())
    versions = sorted(chosen)
    if versions != list(range(1, len(versions) + 1)):
        raise AssertionError(f"migrations are not numbered 1..n: {versions}")
    return [(v, chosen[v]) for v in versions]


def statements(text: str) -> list[str]:
    """The statements of a migration's text."""
    return [s for s in text.split(";\n") if s.strip() and not _only_comments(s)]


def _only_comments(statement: str) -> bool:
    return all(not line.strip() or line.strip().startswith("--") for line in statement.split("\n"))
