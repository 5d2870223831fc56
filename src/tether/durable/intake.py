"""Accepting events: validate them, plan the runs they trigger, then hand both to the store.

Planning happens before the store's transaction, so user callables (a ``where=`` filter,
a key callable) never run while the SQLite write lock is held, and an event whose keys
cannot be evaluated is refused before anything is written. The runs of functions that
another process registered are planned from their stored descriptions, with the same
controls a local registration would give them.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from tether.clock import Clock
from tether.codec import dumps
from tether.durable.registry import Registry
from tether.durable.runs import RunFactory, new_id
from tether.durable.spec import FunctionSpec
from tether.errors import InvalidEventError
from tether.records import Event
from tether.store.base import Accepted, EventRow, NewRun, Store

_EVENT_KEYS = frozenset({"name", "data", "id", "ts"})


class Intake:
    """Turns what callers send into stored events and the runs they start."""

    def __init__(
        self,
        registry: Registry,
        factory: RunFactory,
        store: Callable[[], Store],
        clock: Clock,
    ) -> None:
        self._registry = registry
        self._factory = factory
        self._store = store
        self._clock = clock

    # -- validation ---------------------------------------------------------------------
    def rows(self, events: Any, default_id: str | None = None) -> list[EventRow]:
        """Validate events (an Event, a dict, or a list of them) into rows to store."""
        if _is_iterable(events):
            events = list(events)
        items = events if isinstance(events, list | tuple) else [events]
        if not items:
            raise InvalidEventError("no events to send: pass an Event or a list of them")
        rows = []
        now = self._clock.now()
        for index, item in enumerate(items):
            event = coerce_event(item, index)
            try:
                data = dumps(event.data)
            except (TypeError, ValueError) as exc:
                raise InvalidEventError(
                    f"event {event.name!r}: data cannot be stored as JSON ({exc}); send JSON "
                    "values only (convert datetimes and models first)"
                ) from None
            ts = now if event.ts is None else _epoch(event.ts)
            eid = event.id or (f"{default_id}:{index}" if default_id else new_id())
            rows.append(EventRow(eid, event.name, data, ts))
        return rows

    # -- accepting ----------------------------------------------------------------------
    def accept(self, rows: list[EventRow]) -> list[Accepted]:
        """Store the events and the runs they trigger in one synced transaction."""
        store = self._store()
        remote = self._remote_specs(store, {r.name for r in rows})
        plans = {row.id: self.plan(row, remote) for row in rows}
        return store.accept(rows, lambda row: plans[row.id], self._clock.now())

    def plan(self, row: EventRow, remote: list[FunctionSpec]) -> list[NewRun]:
        """The runs an event starts: local functions first, then other processes'."""
        runs = []
        for fdef, trig in self._registry.triggered_by(row.name):
            run = self._factory.for_event(fdef, trig, row)
            if run is not None:
                runs.append(run)
        for spec in remote:
            for trig in spec.triggers:
                if trig.event != row.name:
                    continue
                spec.require_plannable(row.name)
                run = self._factory.for_event(spec, trig, row)
                if run is not None:
                    runs.append(run)
        return runs

    def _remote_specs(self, store: Store, names: set[str]) -> list[FunctionSpec]:
        """Functions registered by other processes with a trigger on one of ``names``."""
        out = []
        for row in store.registered_functions():
            if self._registry.get(row["id"]) is not None:
                continue  # this process's own registration is the current one
            events = {t.get("event") for t in row.get("triggers") or ()}
            if events & names:
                out.append(FunctionSpec.from_description(row))
        return out

    def remote_spec(self, function_id: str) -> FunctionSpec | None:
        """The stored description of a function this process does not register."""
        for row in self._store().registered_functions():
            if row["id"] == function_id:
                return FunctionSpec.from_description(row)
        return None


def coerce_event(item: Any, index: int = 0) -> Event:
    """An ``Event`` from an Event or a dict, or an ``InvalidEventError`` naming the fix."""
    if isinstance(item, Event):
        return item
    if isinstance(item, dict):
        unknown = set(item) - _EVENT_KEYS
        name = item.get("name")
        data = item.get("data", {})
        problem = None
        if unknown:
            problem = f"unknown keys {sorted(unknown)}"
        elif name is None:
            problem = "no 'name'"
        elif not isinstance(name, str) or not name:
            problem = f"'name' must be a non-empty string, got {name!r}"
        elif not isinstance(data, dict):
            problem = f"'data' is a {type(data).__name__}, not a dict"
        if problem:
            raise InvalidEventError(
                f"event #{index} {str(item)[:120]} is not an event ({problem}): expected "
                "{'name': str, 'data': dict, 'id': optional str, 'ts': optional datetime}"
            )
        try:
            return Event(str(name), data, item.get("id"), item.get("ts"))
        except InvalidEventError as exc:
            raise InvalidEventError(f"event #{index} is not valid: {exc}") from None
    raise InvalidEventError(
        f"event #{index} is a {type(item).__name__}, not an event: send "
        "tether.Event(name, data) or {'name': ..., 'data': {...}}"
    )


def _epoch(ts: datetime) -> float:
    if ts.tzinfo is None:
        ts = ts.replace(tzinfo=UTC)
    return ts.timestamp()


def _is_iterable(value: Any) -> bool:
    return isinstance(value, list | tuple | set) or inspect.isgenerator(value)
