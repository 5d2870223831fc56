"""Public records: events, runs, steps and attempts, as users read them back."""

from __future__ import annotations

import enum
from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from tether.errors import InvalidEventError


class RunStatus(str, enum.Enum):
    """Where a run stands. ``skipped`` is a trigger that flow control declined."""

    QUEUED = "queued"
    RUNNING = "running"
    SLEEPING = "sleeping"
    WAITING = "waiting"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"
    SKIPPED = "skipped"

    @property
    def is_terminal(self) -> bool:
        return self in _TERMINAL

    def __str__(self) -> str:
        return self.value


_TERMINAL = frozenset(
    {RunStatus.COMPLETED, RunStatus.FAILED, RunStatus.CANCELLED, RunStatus.SKIPPED}
)
TERMINAL_STATUSES = frozenset(s.value for s in _TERMINAL)


class Event(BaseModel):
    """Something that happened: a name, a JSON object of data, an optional id and time.

    An event whose ``id`` was accepted in the last 24 hours is ignored (deduplication).
    A ``ts`` in the future delays the runs it triggers until then.
    """

    model_config = ConfigDict(frozen=True)

    name: str
    data: dict[str, Any] = Field(default_factory=dict)
    id: str | None = None
    ts: datetime | None = None

    def __init__(
        self,
        name: str,
        data: dict[str, Any] | None = None,
        id: str | None = None,
        ts: datetime | None = None,
        **kw: Any,
    ) -> None:
        try:
            super().__init__(name=name, data=data if data is not None else {}, id=id, ts=ts, **kw)
        except ValidationError as exc:
            problems = "; ".join(
                f"{'.'.join(str(p) for p in e['loc']) or 'event'}: {e['msg']}" for e in exc.errors()
            )
            raise InvalidEventError(
                f"Event({name!r}, ...) is not valid ({problems}): write "
                "tether.Event(name: str, data: dict = {}, id: str | None = None, "
                "ts: datetime | None = None)"
            ) from None


class Attempt(BaseModel):
    """One execution of a step."""

    number: int
    started_at: datetime | None
    ended_at: datetime | None
    error_type: str | None = None
    error_message: str | None = None
    traceback: str | None = None

    @property
    def duration(self) -> float | None:
        if self.started_at is None or self.ended_at is None:
            return None
        return (self.ended_at - self.started_at).total_seconds()


class Step(BaseModel):
    """A step of a run, with every attempt. ``error`` is set when the step failed for good."""

    id: str
    kind: str
    status: str
    output: Any = None
    error: dict[str, Any] | None = None
    started_at: datetime | None = None
    ended_at: datetime | None = None
    attempts: list[Attempt] = Field(default_factory=list)


class Run(BaseModel):
    """A run of a function: its status, input, output, error and timeline of steps."""

    id: str
    function_id: str
    status: RunStatus
    input: dict[str, Any] | None = None
    event_name: str | None = None
    output: Any = None
    error: dict[str, Any] | None = None
    created_at: datetime
    started_at: datetime | None = None
    ended_at: datetime | None = None
    parent_id: str | None = None
    replay_of: str | None = None
    version: str | None = None
    reason: str | None = None
    subject: str | None = None
    steps: list[Step] = Field(default_factory=list)
