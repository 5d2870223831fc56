"""Read queries of the dashboard, its API and the CLI, shared by both backends (written
in the shared spelling; the store's ``Dialect`` adapts them)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

RUN_COLUMNS = (
    "id, function_id, status, input, event_name, output, error, created_at, started_at, "
    "ended_at, parent_id, replay_of, version, reason, subject"
)


@dataclass(slots=True)
class RunQuery:
    """Filters of the runs list; pages newest first, ``before`` a run id (keyset paging)."""

    function_id: str | None = None
    status: str | None = None
    since: float | None = None  # created at or after (epoch seconds)
    until: float | None = None  # created before
    text: str | None = None  # in the run id, input, output or error
    event_id: str | None = None
    limit: int = 50
    before: str | None = None


def runs_sql(q: RunQuery, cap: int | None = 500, payloads: bool = True) -> tuple[str, list[Any]]:
    where: list[str] = []
    params: list[Any] = []
    if q.function_id:
        where.append("function_id=?")
        params.append(q.function_id)
    if q.status:
        where.append("status=?")
        params.append(q.status)
    if q.since is not None:
        where.append("created_at>=?")
        params.append(q.since)
    if q.until is not None:
        where.append("created_at<?")
        params.append(q.until)
    if q.event_id:
        where.append("event_id=?")
        params.append(q.event_id)
    if q.text:
        like = "%" + q.text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
        if payloads:
            where.append(
                "(id LIKE ? ESCAPE '\\' OR input LIKE ? ESCAPE '\\' OR "
                "coalesce(output, '') LIKE ? ESCAPE '\\' OR coalesce(error, '') LIKE ? ESCAPE '\\')"
            )
            params.extend([like] * 4)
        else:  # encrypted payloads say nothing to SQL: the text matches run ids only
            where.append("id LIKE ? ESCAPE '\\'")
            params.append(like)
    if q.before:
        where.append("seq < coalesce((SELECT seq FROM runs WHERE id=?), -1)")
        params.append(q.before)
    clause = f"WHERE {' AND '.join(where)}" if where else ""
    sql = f"SELECT {RUN_COLUMNS} FROM runs {clause} ORDER BY seq DESC LIMIT ?"
    limit = int(q.limit) if cap is None else max(1, min(int(q.limit), cap))
    return sql, [*params, limit]


RUN_STEPS_SQL = (
    "SELECT step_id, kind, status, output, error, started_at, ended_at "
    "FROM steps WHERE run_id=? ORDER BY seq"
)
RUN_ATTEMPTS_SQL = (
    "SELECT step_id, number, started_at, ended_at, error_type, error_message, traceback "
    "FROM attempts WHERE run_id=? ORDER BY step_id, number"
)


def list_sql(
    function_id: str | None, status: str | None, limit: int, before: str | None
) -> tuple[str, list[Any]]:
    """``Store.list_runs``: runs newest first, ``before`` a run id (keyset paging)."""
    query = RunQuery(
        function_id=function_id,
        status=None if status is None else str(status),
        limit=limit,
        before=before,
    )
    return runs_sql(query, cap=None)


# (function_id, status, seconds from start to end or None) of the latest runs since a time.
STATS_SQL = (
    "SELECT function_id, status, ended_at - coalesce(started_at, created_at) FROM runs "
    "WHERE created_at>=? AND status != 'skipped' ORDER BY seq DESC LIMIT ?"
)
# Failed attempts (each one led to a retry or a failure) per function, over the same runs.
RETRIES_SQL = (
    "SELECT r.function_id, count(*) FROM (SELECT id, function_id FROM runs "
    "WHERE created_at>=? AND status != 'skipped' ORDER BY seq DESC LIMIT ?) r "
    "JOIN attempts a ON a.run_id = r.id GROUP BY r.function_id"
)


def events_sql(limit: int, before: str | None, name: str | None) -> tuple[str, list[Any]]:
    """Events newest first; ``before`` is the last event id of the previous page."""
    where: list[str] = []
    params: list[Any] = []
    if before:
        where.append(
            "(received_at < (SELECT received_at FROM events WHERE id=?) OR "
            "(received_at = (SELECT received_at FROM events WHERE id=?) AND id < ?))"
        )
        params.extend([before, before, before])
    if name:
        where.append("name=?")
        params.append(name)
    clause = f"WHERE {' AND '.join(where)}" if where else ""
    sql = f"SELECT id, name, data, ts, received_at, decisions FROM events {clause} "
    return sql + "ORDER BY received_at DESC, id DESC LIMIT ?", [
        *params,
        max(1, min(int(limit), 500)),
    ]
