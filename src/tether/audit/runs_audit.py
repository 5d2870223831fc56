"""``tether.audit.runs(th)``: where the recorded runs' time went (see docs/audit.md).

A run's **active time** runs from its first start to its end, minus its durable sleeps,
its waits for events and for child runs (the application's intent). The **reliability
tax** is the share of it spent on

- ``failed_attempts``: attempts that failed (a step's, or an LLM call's inside its step);
- ``backoff``: the delay between a failed attempt and the next one (in process or durable);
- ``recovery``: from a lost worker's last checkpoint (or its claim, if later) to the moment
  another worker took the run over (the lost work and the lease's expiry);
- ``provider_waits``: an LLM call waiting out a server's delay, a shared rate-limit hold or
  an open circuit.

Figures are time-weighted: a function's tax is its runs' tax seconds over their active
seconds. Only runs that have ended count towards times, failures and the tax; the others
appear in ``runs`` and ``statuses``. The store is read in a few streaming statements
(``queries.py``); memory stays bounded whatever the number of runs.
"""

from __future__ import annotations

import json
import time
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from tether.audit import queries as q
from tether.audit.runs_llm import Models
from tether.audit.runs_model import (
    CAUSES,
    MAX_STEPS,
    OTHER_STEPS,
    Figures,
    StepFigures,
)
from tether.durations import seconds
from tether.errors import ConfigurationError
from tether.store.base import Store

if TYPE_CHECKING:
    from tether.harness import Harness

BUCKETS = 48  # time buckets of the errors-over-time series
NO_WINDOWS = "no windows recorded"


def parse_since(since: Any, now: float) -> float | None:
    """``since`` as epoch seconds: None (every run), a duration back from now ("7d", 3600,
    a timedelta) or a datetime (naive means UTC)."""
    if since is None:
        return None
    if isinstance(since, datetime):
        if since.tzinfo is None:
            from datetime import UTC

            since = since.replace(tzinfo=UTC)
        return float(since.timestamp())
    if isinstance(since, str | int | float | timedelta):
        return now - seconds(since, "since")
    raise ConfigurationError(
        f"since={since!r}: give a duration back from now ('7d', '12h', 3600, a timedelta) "
        "or a datetime"
    )


@dataclass
class RunAudit:
    """The report: ``to_dict()`` is the JSON of ``tether audit runs --json``."""

    since: float | None
    until: float
    function: str | None
    total: Figures
    functions: dict[str, Figures]
    steps: dict[str, dict[str, StepFigures]]
    models: Models
    windows: dict[str, Any]
    series: dict[str, dict[int, int]]  # function -> time bucket -> failed attempts
    origin: float
    width: float
    advice: list[dict[str, str]] = field(default_factory=list)

    # The top-level figures, as attributes.
    @property
    def runs(self) -> int:
        return self.total.runs

    @property
    def success_rate(self) -> float | None:
        return self.total.success_rate

    @property
    def retries_absorbed(self) -> int:
        return self.total.retries_absorbed

    @property
    def failures(self) -> list[dict[str, Any]]:
        return self.total.failures.top()

    @property
    def reliability_tax(self) -> float:
        return self.total.reliability_tax

    @property
    def tax_by_cause(self) -> dict[str, float]:
        return self.total.tax_by_cause()

    @property
    def dominant_cause(self) -> str | None:
        return self.total.dominant_cause()

    def errors_over_time(self) -> list[dict[str, Any]]:
        """``[{"at": epoch (bucket centre), "failed_attempts": {function: n}}]``."""
        keys = sorted({k for series in self.series.values() for k in series})
        return [
            {
                "at": round(self.origin + k * self.width, 3),
                "failed_attempts": {f: s[k] for f, s in sorted(self.series.items()) if s.get(k)},
            }
            for k in keys
        ]

    def to_dict(self) -> dict[str, Any]:
        doc = self.total.as_json()
        doc["functions"] = {
            fid: {
                **fig.as_json(),
                "steps": {sid: st.as_json() for sid, st in sorted(self.steps.get(fid, {}).items())},
            }
            for fid, fig in sorted(self.functions.items())
        }
        doc["llm"] = {"calls": self.total.llm_calls, **self.models.as_json()}
        doc["context"] = self.windows
        doc["errors_over_time"] = self.errors_over_time()
        doc["advice"] = self.advice
        doc["scope"] = {
            "since": self.since,
            "until": self.until,
            "function": self.function,
        }
        return doc

    def to_json(self, indent: int | None = 2) -> str:
        return json.dumps(self.to_dict(), indent=indent)


class _Audit:
    """One pass over the store: the accumulators and the order they are filled in."""

    def __init__(self, store: Store, scope: q.Scope, now: float) -> None:
        self.store = store
        self.scope = scope
        self.now = now
        self.total = Figures()
        self.functions: dict[str, Figures] = {}
        self.steps: dict[str, dict[str, StepFigures]] = {}
        self.models = Models()
        self.series: dict[str, dict[int, int]] = defaultdict(dict)
        self.factor = q.log_bucket_factor(0.01)
        self.raw_failed: dict[tuple[str, str], float] = defaultdict(float)
        # Takeovers: corrections per run (intent seconds that were recovery) and per step.
        self.intent_fix: dict[str, float] = {}
        self.backoff_fix: dict[tuple[str, str], float] = defaultdict(float)
        self.origin, self.width = now, 1.0  # the errors-over-time axis (set by span())

    def rows(self, sql_params: tuple[str, list[Any]]) -> Any:
        sql, params = sql_params
        return self.store.iter_rows(sql, params)

    def function(self, fid: str) -> Figures:
        fig = self.functions.get(fid)
        if fig is None:
            fig = self.functions[fid] = Figures()
        return fig

    def step(self, fid: str, sid: str) -> StepFigures:
        steps = self.steps.setdefault(fid, {})
        name = _base_id(sid)
        fig = steps.get(name)
        if fig is None:
            if len(steps) >= MAX_STEPS:
                name = OTHER_STEPS
                fig = steps.get(name)
            if fig is None:
                fig = steps[name] = StepFigures()
        return fig

    # -- the passes ---------------------------------------------------------------------
    def span(self) -> tuple[float, float, int]:
        lo, hi, n = next(iter(self.rows(q.span_sql(self.scope))))
        if lo is None:
            return self.now, 1.0, 0
        self.origin = float(lo)
        self.width = max((float(hi) - float(lo)) / BUCKETS, 1.0)
        return self.origin, self.width, int(n)

    def takeovers(self) -> None:
        lost: dict[str, list[tuple[float, float]]] = defaultdict(list)
        for run_id, at, claimed, step_mark, attempt_mark in self.rows(q.takeovers_sql(self.scope)):
            marks = [m for m in (claimed, step_mark, attempt_mark) if m is not None]
            start = min(max(marks), at) if marks else at
            lost[run_id].append((float(start), float(at)))
        for run_id, intervals in lost.items():
            self._recovered(run_id, intervals)

    def _recovered(self, run_id: str, intervals: list[tuple[float, float]]) -> None:
        steps = list(self.store.iter_rows(q.run_steps_sql(), [run_id]))
        if not steps:
            return
        fid = steps[0][0]
        fig = self.function(fid)
        lost = sum(b - a for a, b in intervals)
        fig.tax_s["recovery"] += lost
        fig.takeovers += len(intervals)
        self.intent_fix[run_id] = 0.0
        for _, sid, kind, status, first, last_start, end in steps:
            if kind in ("sleep", "wait", "invoke"):
                self.intent_fix[run_id] += _overlap((first, end), intervals)
            elif kind == "run" and first is not None and last_start is not None:
                tail = last_start if status == "completed" else end
                self.backoff_fix[(fid, _base_id(sid))] += _overlap((first, tail), intervals)
        for a, b in intervals:
            # The step that ran again after the takeover was the one in flight: it gets the
            # recovery (and its time grows by it).
            later = [s for s in steps if s[2] == "run" and s[5] is not None and s[5] >= b]
            if later:
                interrupted = min(later, key=lambda s: s[5])
                st = self.step(fid, interrupted[1])
                st.tax_s["recovery"] += b - a
                st.time_s += b - a

    def runs(self) -> None:
        intents = iter(self.rows(q.intent_sql(self.scope)))
        pending = next(intents, None)
        for run_id, fid, status, created, event_ts, started, ended, error in self.rows(
            q.runs_sql(self.scope)
        ):
            intent = 0.0
            if pending is not None and pending[0] == run_id:
                intent = float(pending[1] or 0.0)
                pending = next(intents, None)
            intent -= self.intent_fix.get(run_id, 0.0)
            wall = None if started is None or ended is None else max(0.0, ended - started)
            queue = None
            if started is not None:
                queue = max(0.0, started - max(created, event_ts or created))
            for fig in (self.total, self.function(fid)):
                fig.add_run(status, wall, max(0.0, intent), queue)
            if error is not None:
                self._run_error(fid, run_id, error, ended)

    def _run_error(self, fid: str, run_id: str, error: str, ended: float | None) -> None:
        try:
            doc = json.loads(error)
        except ValueError:
            doc = {"type": "Error", "message": error}
        etype = str(doc.get("type") or "Error")
        if etype == "StepFailed":
            return  # the failed attempts behind it are counted already
        self.function(fid).failures.add(
            etype, str(doc.get("message") or ""), 1, run_id, source="run"
        )
        if ended is not None:
            self._count_error(fid, ended)

    def step_groups(self) -> None:
        for fid, sid, status, bucket, n, secs, span in self.rows(
            q.steps_sql(self.scope, self.factor)
        ):
            st = self.step(fid, sid)
            st.runs += n
            if status == "completed":
                st.completed += n
            else:
                st.failed += n
            st.time_s += float(secs or 0.0)
            st.span_s += float(span or 0.0)
            st.latency.add_bucket(None if bucket is None else int(bucket), n, float(secs or 0.0))
            self.function(fid).step_attempts += n if status == "completed" else 0

    def attempt_groups(self, origin: float, width: float) -> None:
        for fid, sid, etype, message, absorbed, bucket, n, secs, example in self.rows(
            q.failures_sql(self.scope, origin, width)
        ):
            st = self.step(fid, sid)
            fig = self.function(fid)
            st.failed_attempts += n
            st.failed_s += float(secs or 0.0)
            self.raw_failed[(fid, _base_id(sid))] += float(secs or 0.0)
            st.failures.add(etype, message, n, example, n if absorbed else 0)
            fig.failures.add(etype, message, n, example, n if absorbed else 0)
            fig.failed_attempts += n
            fig.step_attempts += n
            if absorbed:
                st.retries_absorbed += n
                fig.retries_absorbed += n
            if bucket is not None:
                key = int(bucket)
                self.series[fid][key] = self.series[fid].get(key, 0) + n

    def llm_calls(self, origin: float, width: float) -> None:
        for fid, sid, status, run_id, text in self.rows(q.llm_sql(self.scope, self.store.url)):
            try:
                attempts = json.loads(text) if text else None
            except ValueError:
                attempts = None
            if not isinstance(attempts, list) or not attempts:
                continue
            ok = status == "completed"
            call = self.models.read([a for a in attempts if isinstance(a, dict)], ok)
            st = self.step(fid, sid)
            fig = self.function(fid)
            st.llm_calls += 1
            st.cost_usd += call.cost_usd
            fig.llm_calls += 1
            fig.llm_attempts += call.attempts
            fig.cost_usd += call.cost_usd
            fig.failed_cost_usd += call.failed_cost_usd
            waits = call.backoff_s + call.provider_s
            if ok:
                st.tax_s["failed_attempts"] += call.failed_s
                st.retries_absorbed += call.failed_attempts
                fig.retries_absorbed += call.failed_attempts
            else:
                # The step's one failed attempt covered the whole call, waits included.
                st.tax_s["failed_attempts"] -= waits
            st.tax_s["backoff"] += call.backoff_s
            st.tax_s["provider_waits"] += call.provider_s
            for kind, message, at in call.errors:
                st.failures.add(kind, message, 1, run_id, 1 if ok else 0, source="llm")
                fig.failures.add(kind, message, 1, run_id, 1 if ok else 0, source="llm")
                if at:
                    self._count_error(fid, at, origin, width)

    def _count_error(
        self, fid: str, at: float, origin: float | None = None, width: float | None = None
    ) -> None:
        origin = self.origin if origin is None else origin
        width = self.width if width is None else width
        key = round((at - origin) / width)
        self.series[fid][key] = self.series[fid].get(key, 0) + 1

    def finish(self) -> None:
        """Step seconds into causes, then steps into functions, functions into the total."""
        for fid, steps in self.steps.items():
            fig = self.function(fid)
            for name, st in steps.items():
                raw = self.raw_failed.get((fid, name), 0.0)
                st.tax_s["failed_attempts"] += raw
                backoff = st.span_s - raw - self.backoff_fix.get((fid, name), 0.0)
                st.tax_s["backoff"] += max(0.0, backoff)
                st.tax_s["failed_attempts"] = max(0.0, st.tax_s["failed_attempts"])
                for cause in ("failed_attempts", "backoff", "provider_waits"):
                    fig.tax_s[cause] += st.tax_s[cause]
        for fig in self.functions.values():
            t = self.total
            for cause in CAUSES:
                t.tax_s[cause] += fig.tax_s[cause]
            t.step_attempts += fig.step_attempts
            t.failed_attempts += fig.failed_attempts
            t.retries_absorbed += fig.retries_absorbed
            t.takeovers += fig.takeovers
            t.failures.merge(fig.failures)
            t.cost_usd += fig.cost_usd
            t.failed_cost_usd += fig.failed_cost_usd
            t.llm_calls += fig.llm_calls
            t.llm_attempts += fig.llm_attempts

    def windows(self) -> dict[str, Any]:
        tables = {str(r[0]) for r in self.store.iter_rows(q.tables_sql(self.store.url))}
        models = self.models.as_json()
        out: dict[str, Any] = {
            "context_overflows": models["context_overflows"],
            "compactions": models["compactions"],
            "window_compactions": 0,
            "windows": NO_WINDOWS,
        }
        table = q.window_items_table(tables)
        if table is not None and next(iter(self.rows(q.window_items_sql(table))))[0]:
            (count,) = next(iter(self.rows(q.compactions_sql(self.scope.since, table))))
            out["window_compactions"] = int(count or 0)
            out["compactions"] += int(count or 0)
            out["windows"] = f"read from {table}"
        return out


def runs(
    th: Harness | Store,
    since: Any = None,
    function: str | None = None,
) -> RunAudit:
    """Audit the recorded runs of ``th``'s store (a ``Harness`` or a ``Store``): success,
    failures, retries absorbed, the reliability tax by cause, LLM providers and models,
    cost and latency, for the whole store, per function and per step.

    ``since``: only runs created since then ("7d", seconds, a timedelta, a datetime);
    ``function``: only that function's runs."""
    store = th if isinstance(th, Store) else th.store
    now = time.time()
    scope = q.Scope(parse_since(since, now), function)
    a = _Audit(store, scope, now)
    origin, width, count = a.span()
    if count == 0 and function is not None:
        known = sorted(f["id"] for f in store.registered_functions())
        if function not in known:
            raise ConfigurationError(
                f"function {function!r} has no runs in this store and is not registered; "
                f"its functions are {known}"
            )
    a.takeovers()
    a.runs()
    a.step_groups()
    a.attempt_groups(origin, width)
    a.llm_calls(origin, width)
    a.finish()
    report = RunAudit(
        since=scope.since,
        until=now,
        function=function,
        total=a.total,
        functions=a.functions,
        steps=a.steps,
        models=a.models,
        windows=a.windows(),
        series=dict(a.series),
        origin=origin,
        width=width,
    )
    from tether.audit.runs_advice import advise

    report.advice = advise(report)
    return report


def _base_id(step_id: str) -> str:
    """``fetch:3`` (the fourth ``fetch`` of a loop) -> ``fetch``."""
    head, sep, tail = step_id.rpartition(":")
    return head if sep and tail.isdigit() and head else step_id


def _overlap(
    span: tuple[float | None, float | None], intervals: list[tuple[float, float]]
) -> float:
    a, b = span
    if a is None or b is None:
        return 0.0
    return sum(max(0.0, min(b, y) - max(a, x)) for x, y in intervals)


__all__ = ["NO_WINDOWS", "RunAudit", "parse_since", "runs"]
