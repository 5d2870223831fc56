"""The run audit's accumulators: figures of the whole store, of a function and of a step.

Each accumulator adds up seconds and counts as the rows stream by and keeps bounded state:
a ``LogSketch`` per latency, at most ``MAX_FAILURES`` error groups (the rest are counted in
an ``(other errors)`` entry) and, per function, at most ``MAX_STEPS`` step ids (the rest
fold into ``(other steps)``).
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from tether.audit.sketch import LogSketch

CAUSES = ("failed_attempts", "backoff", "recovery", "provider_waits")
MAX_FAILURES = 200
MAX_STEPS = 200
SHOWN_FAILURES = 20
OTHER_ERRORS = "(other errors)"
OTHER_STEPS = "(other steps)"

# Parts of error messages that differ between occurrences of one error: decimals, long
# numbers, long hex ids. ``HTTP 503`` and ``3 attempt(s)`` stay as written.
_VARYING = re.compile(r"\b\d+\.\d+|\b\d{4,}\b|\b[0-9a-f]{8,}\b", re.I)


def message_key(message: str) -> str:
    return _VARYING.sub("#", message)


def share(part: float, whole: float) -> float:
    """``part / whole`` as a share in 0..1 (0 for an empty whole), rounded to 4 places."""
    if whole <= 0:
        return 0.0
    return round(min(1.0, max(0.0, part / whole)), 4)


def rate(part: int, whole: int) -> float | None:
    return None if whole == 0 else round(part / whole, 4)


@dataclass
class Failure:
    error_type: str
    message: str
    count: int = 0
    example_run: str | None = None
    absorbed: int = 0  # of ``count``, failures a later attempt of the same step made good
    source: str = "step"  # step (an attempt of a step), llm (an LLM attempt), run (the run's own)

    def as_json(self) -> dict[str, Any]:
        return {
            "error_type": self.error_type,
            "message": self.message,
            "count": self.count,
            "example_run": self.example_run,
            "absorbed": self.absorbed,
            "source": self.source,
        }


class Failures:
    """Error groups keyed by type and message (varying parts masked), bounded in size."""

    def __init__(self) -> None:
        self.groups: dict[tuple[str, str], Failure] = {}

    def add(
        self,
        error_type: str | None,
        message: str | None,
        count: int,
        example_run: str | None,
        absorbed: int = 0,
        source: str = "step",
    ) -> None:
        etype = error_type or "Error"
        text = (message or "")[:300]
        key = (etype, message_key(text))
        group = self.groups.get(key)
        if group is None:
            if len(self.groups) >= MAX_FAILURES:
                key = (OTHER_ERRORS, "")
                group = self.groups.get(key)
                if group is None:
                    group = self.groups[key] = Failure(OTHER_ERRORS, "", source="mixed")
            else:
                group = self.groups[key] = Failure(etype, text, source=source)
        group.count += count
        group.absorbed += absorbed
        if group.example_run is None or (
            example_run is not None and example_run < group.example_run
        ):
            group.example_run = example_run

    def merge(self, other: Failures) -> None:
        for f in other.groups.values():
            self.add(f.error_type, f.message, f.count, f.example_run, f.absorbed, f.source)

    def top(self, n: int = SHOWN_FAILURES) -> list[dict[str, Any]]:
        ranked = sorted(self.groups.values(), key=lambda f: (-f.count, f.error_type, f.message))
        return [f.as_json() for f in ranked[:n]]


@dataclass
class Figures:
    """What the audit adds up over a set of runs (the store, or one function)."""

    runs: int = 0
    statuses: Counter[str] = field(default_factory=Counter)
    active_s: float = 0.0
    wall_s: float = 0.0
    intent_s: float = 0.0
    queue_s: float = 0.0
    timed_runs: int = 0  # ended runs that started: the ones with an active time
    tax_s: dict[str, float] = field(default_factory=lambda: dict.fromkeys(CAUSES, 0.0))
    step_attempts: int = 0
    failed_attempts: int = 0
    retries_absorbed: int = 0
    takeovers: int = 0
    failures: Failures = field(default_factory=Failures)
    latency: LogSketch = field(default_factory=LogSketch)
    queue: LogSketch = field(default_factory=LogSketch)
    cost_usd: float = 0.0
    failed_cost_usd: float = 0.0
    llm_calls: int = 0
    llm_attempts: int = 0

    def add_run(self, status: str, wall: float | None, intent: float, queue: float | None) -> None:
        self.runs += 1
        self.statuses[status] += 1
        if queue is not None:
            self.queue_s += queue
            self.queue.add(queue)
        if wall is None:
            return
        active = max(0.0, wall - intent)
        self.timed_runs += 1
        self.wall_s += wall
        self.intent_s += min(wall, intent)
        self.active_s += active
        self.latency.add(active)

    @property
    def success_rate(self) -> float | None:
        done = self.statuses["completed"] + self.statuses["failed"]
        return rate(self.statuses["completed"], done)

    @property
    def tax_total(self) -> float:
        return sum(self.tax_s.values())

    @property
    def reliability_tax(self) -> float:
        return share(self.tax_total, self.active_s)

    def tax_by_cause(self) -> dict[str, float]:
        """Each cause as a share of active time; they add up to ``reliability_tax`` (when
        parallel branches overlap, scaled so that the tax never passes the active time)."""
        total = self.tax_total
        scale = 1.0 if total <= self.active_s or total == 0 else self.active_s / total
        return {c: share(self.tax_s[c] * scale, self.active_s) for c in CAUSES}

    def dominant_cause(self) -> str | None:
        if self.tax_total <= 0:
            return None
        return max(CAUSES, key=lambda c: self.tax_s[c])

    def as_json(self) -> dict[str, Any]:
        queue = self.queue.summary()
        return {
            "runs": self.runs,
            "success_rate": self.success_rate,
            "retries_absorbed": self.retries_absorbed,
            "failures": self.failures.top(),
            "reliability_tax": self.reliability_tax,
            "tax_by_cause": self.tax_by_cause(),
            "dominant_cause": self.dominant_cause(),
            "statuses": dict(sorted(self.statuses.items())),
            "tax_seconds": {c: round(v, 6) for c, v in self.tax_s.items()},
            "active_s": round(self.active_s, 6),
            "wall_s": round(self.wall_s, 6),
            "intent_s": round(self.intent_s, 6),
            "queue_s": {"total": round(self.queue_s, 6), **queue},
            "latency_s": _quantiles(self.latency),
            "attempts": self.step_attempts,
            "failed_attempts": self.failed_attempts,
            "takeovers": self.takeovers,
            "cost_usd": round(self.cost_usd, 8),
            "failed_cost_usd": round(self.failed_cost_usd, 8),
            "llm_calls": self.llm_calls,
            "llm_attempts": self.llm_attempts,
        }


@dataclass
class StepFigures:
    """One step id of one function (a step in a loop counts each of its executions)."""

    runs: int = 0
    completed: int = 0
    failed: int = 0
    time_s: float = 0.0  # from each execution's first attempt to its end
    span_s: float = 0.0  # attempts before the last one: failed attempts and backoff
    failed_s: float = 0.0
    tax_s: dict[str, float] = field(default_factory=lambda: dict.fromkeys(CAUSES, 0.0))
    failed_attempts: int = 0
    retries_absorbed: int = 0
    failures: Failures = field(default_factory=Failures)
    latency: LogSketch = field(default_factory=LogSketch)
    llm_calls: int = 0
    cost_usd: float = 0.0

    @property
    def attempts(self) -> int:
        return self.failed_attempts + self.completed

    def as_json(self) -> dict[str, Any]:
        total = sum(self.tax_s.values())
        scale = 1.0 if total <= self.time_s or total == 0 else self.time_s / total
        return {
            "runs": self.runs,
            "success_rate": rate(self.completed, self.completed + self.failed),
            "retries_absorbed": self.retries_absorbed,
            "failures": self.failures.top(),
            "reliability_tax": share(total, self.time_s),
            "tax_by_cause": {c: share(self.tax_s[c] * scale, self.time_s) for c in CAUSES},
            "tax_seconds": {c: round(v, 6) for c, v in self.tax_s.items()},
            "time_s": round(self.time_s, 6),
            "attempts": self.attempts,
            "failed_attempts": self.failed_attempts,
            "latency_s": _quantiles(self.latency),
            "llm_calls": self.llm_calls,
            "cost_usd": round(self.cost_usd, 8),
        }


def _quantiles(sketch: LogSketch) -> dict[str, float | None]:
    return sketch.summary()
