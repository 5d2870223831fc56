"""The one place a new run is described: for an event, an enqueue, an invoke, a cron
tick, a replay or an ``on_failure`` follow-up. Every run gets its function's timeout, its
flow-control plan and its idempotency key the same way, whichever process creates it."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from pydantic import BaseModel

from tether.clock import Clock
from tether.codec import dumps, loads
from tether.durable.function import FAILED_EVENT, INVOKED_EVENT
from tether.durable.planning import flow_plan
from tether.durable.spec import EventTrigger, FunctionSpec
from tether.durable.subjects import subject_of
from tether.errors import InvalidEventError
from tether.flow.cron import CRON_EVENT, CronTrigger
from tether.flow.expr import evaluate
from tether.flow.keys import evaluate_key, event_dict
from tether.records import Event
from tether.store.base import EventRow, NewRun


def new_id() -> str:
    """A run or event id: time-ordered prefix, random suffix."""
    return f"{int(time.time() * 1000):012x}{uuid.uuid4().hex[:20]}"


class RunFactory:
    """Builds ``NewRun`` rows; ``version`` gives the code version recorded on each."""

    def __init__(self, clock: Clock, version: Callable[[], str]) -> None:
        self.clock = clock
        self._version = version

    def _new(
        self,
        spec: FunctionSpec,
        event: Event,
        payload: str,
        *,
        run_id: str | None = None,
        event_ts: float | None = None,
        due_at: float | None = None,
        controls: bool = True,
        subject: str | None = None,
        own_subject: bool = True,
        **links: Any,
    ) -> NewRun:
        now = self.clock.now()
        if subject is None and own_subject:
            subject = subject_of(spec.subject, event, spec.id)
        run = NewRun(
            id=run_id or new_id(),
            function_id=spec.id,
            event_name=event.name,
            input=payload,
            event_id=event.id,
            event_ts=now if event_ts is None else event_ts,
            due_at=now if due_at is None else due_at,
            version=self._version(),
            timeout_s=spec.timeout,
            subject=subject,
            **links,
        )
        if not controls:
            return run
        if spec.idempotency is not None:
            run.idempotency_key = dumps(
                evaluate_key(spec.idempotency, event, function_id=spec.id, what="idempotency")
            )
        run.flow = flow_plan(spec, event)
        return run

    # -- the ways a run starts ------------------------------------------------------------
    def for_event(self, spec: FunctionSpec, trigger: EventTrigger, row: EventRow) -> NewRun | None:
        """The run an accepted event starts, or None when the trigger's filter declines."""
        event = Event(row.name, loads(row.data), row.id)
        if trigger.where is not None and not _passes(trigger.where, event):
            return None
        return self._new(
            spec, event, row.data, event_ts=row.ts, due_at=max(row.ts, self.clock.now())
        )

    def invoked(self, spec: FunctionSpec, payload: str, run_id: str | None = None) -> NewRun:
        """A run started by ``Harness.run`` / ``enqueue``."""
        return self._new(spec, Event(INVOKED_EVENT, loads(payload)), payload, run_id=run_id)

    def child(
        self,
        spec: FunctionSpec,
        payload: str,
        parent_id: str,
        parent_step: str,
        subject: str | None = None,
    ) -> NewRun:
        """The child run of ``ctx.step.invoke``: its id is derived from the parent step,
        so a re-executed step finds the same child. It belongs to the parent's subject
        (``subject``), else to the one its own ``subject=`` key names."""
        child_id = uuid.uuid5(uuid.NAMESPACE_URL, f"{parent_id}/{parent_step}").hex
        return self._new(
            spec,
            Event(INVOKED_EVENT, loads(payload)),
            payload,
            run_id=child_id,
            parent_id=parent_id,
            parent_step=parent_step,
            subject=subject,
            controls=False,  # the parent waits for this run: nothing may skip or fold it
        )

    def cron(self, spec: FunctionSpec, cron: CronTrigger, name: str, tick: float) -> NewRun:
        """The run of one cron tick: its id is derived from the tick, so it exists once."""
        data = {"cron": cron.expression, "tz": cron.tz, "tick": _iso(tick)}
        return self._new(
            spec,
            Event(CRON_EVENT, data),
            dumps(data),
            run_id=f"cron:{name}:{int(tick)}",
            event_ts=tick,
            due_at=tick,
            own_subject=False,  # a tick is nobody's data
        )

    def replay(
        self,
        spec: FunctionSpec | None,
        function_id: str,
        event_name: str,
        payload: str,
        replay_of: str,
        subject: str | None = None,
    ) -> NewRun:
        """A fork of run ``replay_of`` (``Harness.replay``): same function, input and
        subject, no flow control (the original already passed it)."""
        now = self.clock.now()
        return NewRun(
            id=new_id(),
            function_id=function_id,
            event_name=event_name or INVOKED_EVENT,
            input=payload,
            event_id=None,
            event_ts=now,
            due_at=now,
            version=self._version(),
            replay_of=replay_of,
            timeout_s=None if spec is None else spec.timeout,
            subject=subject,
        )

    def follow_up(
        self,
        handler: FunctionSpec,
        failed_run: str,
        data: dict[str, Any],
        subject: str | None = None,
    ) -> NewRun:
        """The ``on_failure`` run of a failed run (one per failed run), of the failed
        run's subject: its input holds the failed run's event."""
        payload = dumps(data)
        return self._new(
            handler,
            Event(FAILED_EVENT, data),
            payload,
            run_id=uuid.uuid5(uuid.NAMESPACE_URL, f"{failed_run}/on_failure").hex,
            subject=subject,
        )


def input_json(data: Any) -> str:
    """The JSON object a run receives as ``ctx.event.data``."""
    if data is None:
        return "{}"
    if isinstance(data, BaseModel):
        data = data.model_dump(mode="json")
    if not isinstance(data, dict):
        raise InvalidEventError(
            f"run data must be a JSON object (dict) or a pydantic model, got "
            f"{type(data).__name__}: wrap it, e.g. {{'value': ...}}"
        )
    try:
        return dumps(data)
    except (TypeError, ValueError) as exc:
        raise InvalidEventError(
            f"run data cannot be stored as JSON: {exc}; pass JSON values only (convert "
            "datetimes, sets and objects first) or a pydantic model"
        ) from None


def _passes(where: Any, event: Event) -> bool:
    if isinstance(where, str):
        return evaluate(where, event=event_dict(event))
    try:
        return bool(where(event))
    except Exception as exc:
        raise InvalidEventError(
            f"the where= filter failed on event {event.name!r}: {type(exc).__name__}: {exc}"
        ) from exc


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).isoformat()


__all__ = ["RunFactory", "input_json", "new_id"]
