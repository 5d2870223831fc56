"""The run audit's reads, written once for both stores.

Statements use ``?`` parameters (each store's ``iter_rows`` adapts them with its
``Dialect``) and no literal ``%`` or ``?``. The database does the aggregation it does
cheaply: steps are grouped by function, step id, status and latency bucket; failed
attempts by function, step, error and time bucket; Python sees one row per run, one row
per group and one row per LLM step (whose attempts only Python can read), never one row
per attempt. ``GROUP BY`` uses column positions, which both backends accept.

Every statement selects the same runs: created at or after ``since`` (all runs without
it), of one function or all, and never ``skipped`` ones (flow control declined them: they
never ran).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

# An LLM call's checkpointed response (``LLMResponse``) or a failed call's error
# (``error_dict``) holds its attempts as ``"attempts":[{"number":...``: only those steps'
# payloads are read.
LLM_MARK = '%"attempts":[{"number":%'

# The step kinds whose time is the application's intent, not work: durable sleeps, waits
# for events and waits for child runs (a child run is audited on its own).
INTENT_KINDS = "('sleep', 'wait', 'invoke')"


@dataclass(frozen=True, slots=True)
class Scope:
    """Which runs the audit reads."""

    since: float | None = None
    function: str | None = None

    def where(self, alias: str = "r") -> tuple[str, list[Any]]:
        clauses = [f"{alias}.status <> 'skipped'"]
        params: list[Any] = []
        if self.since is not None:
            clauses.append(f"{alias}.created_at >= ?")
            params.append(self.since)
        if self.function is not None:
            clauses.append(f"{alias}.function_id = ?")
            params.append(self.function)
        return " AND ".join(clauses), params


def log_bucket_factor(relative_error: float) -> float:
    """``1 / ln(gamma)`` of ``tether.audit.sketch.LogSketch`` (bucket = round(ln(x) * it))."""
    return 1.0 / math.log((1.0 + relative_error) ** 2)


def span_sql(scope: Scope) -> tuple[str, list[Any]]:
    """The first creation and the last end of the runs read (the charts' time axis)."""
    where, params = scope.where()
    return (
        "SELECT min(r.created_at), max(coalesce(r.ended_at, r.created_at)), count(*) "
        f"FROM runs r WHERE {where}",
        params,
    )


def runs_sql(scope: Scope) -> tuple[str, list[Any]]:
    """One row per run, ordered by id: id, function, status, created, event ts, first
    start, end, and the error JSON of failed runs."""
    where, params = scope.where()
    return (
        "SELECT r.id, r.function_id, r.status, r.created_at, r.event_ts, r.started_at, "
        "r.ended_at, CASE WHEN r.status = 'failed' THEN r.error END "
        f"FROM runs r WHERE {where} ORDER BY r.id",
        params,
    )


def intent_sql(scope: Scope) -> tuple[str, list[Any]]:
    """Seconds of intent (sleeps, waits) per run that has any, in the order of ``runs_sql``."""
    where, params = scope.where()
    return (
        "SELECT s.run_id, sum(coalesce(s.ended_at, r.ended_at) - s.started_at) "
        "FROM steps s JOIN runs r ON r.id = s.run_id "
        f"WHERE s.kind IN {INTENT_KINDS} AND s.started_at IS NOT NULL AND {where} "
        "GROUP BY s.run_id ORDER BY s.run_id",
        params,
    )


# The step's first attempt started at a0 (a failed attempt) or at its own start; its
# attempts span from there to the start of the attempt that succeeded (``completed``),
# the end of the last failed one (``failed``) or the run's end (the run ended while the
# step slept before a retry).
_FIRST = "coalesce(a0.started_at, s.started_at)"
_END = "CASE WHEN s.status = 'sleeping' THEN r.ended_at ELSE s.ended_at END"
_SPAN = (
    "CASE WHEN a0.started_at IS NULL THEN 0 WHEN s.status = 'completed' "
    "THEN s.started_at - a0.started_at WHEN s.status = 'failed' THEN s.ended_at - a0.started_at "
    "ELSE r.ended_at - a0.started_at END"
)


def steps_sql(scope: Scope, factor: float) -> tuple[str, list[Any]]:
    """``run`` steps grouped by function, step id, status and latency bucket: how many,
    their seconds (first attempt to end), and the seconds their attempts spanned before
    the last one (failed attempts and the backoff between them)."""
    where, params = scope.where()
    duration = f"({_END} - {_FIRST})"
    sql = (
        f"SELECT r.function_id, s.step_id, s.status, "
        f"CASE WHEN {duration} > 0.000000001 THEN round(ln({duration}) * ?) END, "
        f"count(*), sum({duration}), sum({_SPAN}) "
        "FROM runs r JOIN steps s ON s.run_id = r.id "
        "LEFT JOIN attempts a0 ON a0.run_id = s.run_id AND a0.step_id = s.step_id "
        "AND a0.number = 0 "
        f"WHERE s.kind = 'run' AND s.status IN ('completed', 'failed', 'sleeping') AND {where} "
        "AND r.ended_at IS NOT NULL GROUP BY 1, 2, 3, 4"
    )
    return sql, [factor, *params]


def failures_sql(
    scope: Scope, origin: float, width: float, message_chars: int = 300
) -> tuple[str, list[Any]]:
    """Failed step attempts grouped by function, step, error type and message, whether the
    step then succeeded, and time bucket (centred on ``origin + i * width``): count,
    seconds, an example run."""
    where, params = scope.where()
    sql = (
        "SELECT r.function_id, a.step_id, a.error_type, substr(a.error_message, 1, ?), "
        "CASE WHEN s.status = 'completed' THEN 1 ELSE 0 END, round((a.ended_at - ?) / ?), "
        "count(*), sum(a.ended_at - a.started_at), min(r.id) "
        "FROM runs r JOIN attempts a ON a.run_id = r.id "
        "LEFT JOIN steps s ON s.run_id = a.run_id AND s.step_id = a.step_id "
        f"WHERE {where} AND r.ended_at IS NOT NULL GROUP BY 1, 2, 3, 4, 5, 6"
    )
    return sql, [message_chars, origin, width, *params]


def llm_sql(scope: Scope, url: str) -> tuple[str, list[Any]]:
    """The attempts (a JSON array) of every LLM call: function, step id, step status, run
    id, then the array from the response of a completed step or the error of a failed one."""
    where, params = scope.where()
    if url.startswith("sqlite"):
        out, err = "json_extract(s.output, '$.attempts')", "json_extract(s.error, '$.attempts')"
    else:
        out = "(s.output::jsonb -> 'attempts')::text"
        err = "(s.error::jsonb -> 'attempts')::text"
    sql = (
        f"SELECT r.function_id, s.step_id, s.status, r.id, "
        f"CASE WHEN s.status = 'completed' THEN {out} ELSE {err} END "
        "FROM runs r JOIN steps s ON s.run_id = r.id "
        f"WHERE s.kind = 'run' AND {where} AND r.ended_at IS NOT NULL "
        "AND ((s.status = 'completed' AND s.output LIKE ?) "
        "OR (s.status = 'failed' AND s.error LIKE ?))"
    )
    return sql, [*params, LLM_MARK, LLM_MARK]


def takeovers_sql(scope: Scope) -> tuple[str, list[Any]]:
    """Each takeover of a lost lease: run id, when it was taken over, when the lost lease
    was taken, and the run's last checkpoint before the takeover."""
    where, params = scope.where()
    sql = (
        "SELECT r.id, t.at, coalesce(t.lost_claimed_at, r.started_at), "
        "(SELECT max(coalesce(s.ended_at, s.started_at)) FROM steps s "
        "WHERE s.run_id = t.run_id AND coalesce(s.ended_at, s.started_at) <= t.at), "
        "(SELECT max(a.ended_at) FROM attempts a WHERE a.run_id = t.run_id "
        "AND a.ended_at <= t.at) "
        f"FROM takeovers t JOIN runs r ON r.id = t.run_id WHERE {where} AND t.at IS NOT NULL "
        "AND r.ended_at IS NOT NULL ORDER BY r.id, t.at"
    )
    return sql, params


def run_steps_sql() -> str:
    """The steps of one run, for the runs that were taken over: function, step id, kind,
    status, first attempt's start, last attempt's start, end (the run's when unset)."""
    return (
        "SELECT r.function_id, s.step_id, s.kind, s.status, "
        f"{_FIRST}, s.started_at, coalesce(s.ended_at, r.ended_at) "
        "FROM runs r JOIN steps s ON s.run_id = r.id "
        "LEFT JOIN attempts a0 ON a0.run_id = s.run_id AND a0.step_id = s.step_id "
        "AND a0.number = 0 WHERE r.id = ? AND s.started_at IS NOT NULL"
    )


def tables_sql(url: str) -> str:
    """The names of the store's tables (the backends list them differently)."""
    if url.startswith("sqlite"):
        return "SELECT name FROM sqlite_master WHERE type = 'table'"
    return "SELECT table_name FROM information_schema.tables WHERE table_schema = current_schema()"


#: Per table that holds window items (``window_items``; ``context_items`` in older
#: stores): whether it has any row, and its summaries (one per compaction) since a time.
_WINDOW_ITEMS = {
    "window_items": (
        "SELECT count(*) FROM (SELECT 1 FROM window_items LIMIT 1) AS w",
        "SELECT count(*) FROM window_items WHERE kind = 'summary' AND created_at >= ?",
    ),
    "context_items": (
        "SELECT count(*) FROM (SELECT 1 FROM context_items LIMIT 1) AS w",
        "SELECT count(*) FROM context_items WHERE kind = 'summary' AND created_at >= ?",
    ),
}


def window_items_table(tables: set[str]) -> str | None:
    return next((t for t in _WINDOW_ITEMS if t in tables), None)


def window_items_sql(table: str) -> tuple[str, list[Any]]:
    """1 when the window item log ``table`` has any row, else 0."""
    return _WINDOW_ITEMS[table][0], []


def compactions_sql(since: float | None, table: str = "window_items") -> tuple[str, list[Any]]:
    """Summaries written into context windows (one per compaction) since ``since``."""
    return _WINDOW_ITEMS[table][1], [since if since is not None else float("-inf")]
