"""Accepting events: validate them, plan the runs they trigger, then hand both to the store.

Planning happens before the store's transaction, so user callables (a ``where=`` filter,
a key callable) never run while the SQLite write lock is held, and an event whose keys
cannot be evaluated is refused before anything is written. The runs of functions that
another process registered are planned from their stored descriptions, with the same
controls a local registration would give them.
"""

from __future__ import annotations

import inspect
import itertools
import reprlib
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
DEFAULT_MAX_EVENT_BYTES = 1024 * 1024  # an event's data as JSON
DEFAULT_MAX_EVENTS_PER_SEND = 1000
MAX_NAME_CHARS = 1024  # an event's name and id (they are matched in SQL, kept in clear)


class Intake:
    """Turns what callers send into stored events and the runs they start."""

    def __init__(
        self,
        registry: Registry,
        factory: RunFactory,
        store: Callable[[], Store],
        clock: Clock,
        *,
        max_event_bytes: int = DEFAULT_MAX_EVENT_BYTES,
        max_events_per_send: int = DEFAULT_MAX_EVENTS_PER_SEND,
    ) -> None:
        self.max_event_bytes = max_event_bytes
        self.max_events_per_send = max_events_per_send
        self._registry = registry
        self._factory = factory
        self._store = store
        self._clock = clock

    # -- validation ---------------------------------------------------------------------
    def rows(self, events: Any, default_id: str | None = None) -> list[EventRow]:
        """Validate events (an Event, a dict, or a list of them) into rows to store.

        Nothing is stored unless every event is valid and within the limits."""
        limit = self.max_events_per_send
        if _is_iterable(events):
            events = list(itertools.islice(events, limit + 1))
        items = events if isinstance(events, list | tuple) else [events]
        if not items:
            raise InvalidEventError("no events to send: pass an Event or a list of them")
        if len(items) > limit:
            raise InvalidEventError(
                f"more than {limit} events in one send: send them in batches of at most "
                f"{limit}, or raise the limit with Harness(max_events_per_send=...)"
            )
        rows = []
        now = self._clock.now()
        for index, item in enumerate(items):
            event = coerce_event(item, index)
            try:
                data = dumps(event.data)
            except (TypeError, ValueError) as exc:
                raise InvalidEventError(
                    f"event {event.name[:100]!r}: data cannot be stored as JSON ({exc}); send "
                    "JSON values only (convert datetimes and models first)"
                ) from None
            except RecursionError:
                raise InvalidEventError(
                    f"event {event.name[:100]!r}: data is nested too deeply to store as JSON"
                ) from None
            size = _utf8_size(data)
            if size is None:
                raise InvalidEventError(
                    f"event {event.name[:100]!r}: data holds text that is not valid Unicode (a "
                    "lone surrogate such as '\\ud800'): send well-formed strings"
                )
            if size > self.max_event_bytes:
                raise InvalidEventError(
                    f"event {event.name[:100]!r}: data is {size} bytes as JSON, over the "
                    f"limit of {self.max_event_bytes}: store large content elsewhere and send "
                    "a reference, or raise Harness(max_event_bytes=...)"
                )
            for what, value in (("name", event.name), ("id", event.id)):
                if value is None:
                    continue
                problem = None
                if what == "name" and not value:
                    problem = "is empty"
                elif len(value) > MAX_NAME_CHARS:
                    problem = f"is {len(value)} characters, over {MAX_NAME_CHARS}"
                elif "\x00" in value or _utf8_size(value) is None:
                    problem = "holds a NUL character or a lone surrogate"
                if problem:
                    raise InvalidEventError(
                        f"event #{index}: its {what} {problem}: event names and ids are short "
                        "labels of well-formed text"
                    )
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
            problem = f"unknown keys {sorted(unknown, key=repr)}"
        elif name is None:
            problem = "no 'name'"
        elif not isinstance(name, str) or not name:
            problem = f"'name' must be a non-empty string, got {name!r}"
        elif not isinstance(data, dict):
            problem = f"'data' is a {type(data).__name__}, not a dict"
        if problem:
            raise InvalidEventError(
                f"event #{index} {reprlib.repr(item)} is not an event ({problem}): expected "
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


def _utf8_size(text: str) -> int | None:
    """The UTF-8 size of ``text``, or None when it cannot be encoded (lone surrogates)."""
    try:
        return len(text.encode())
    except UnicodeEncodeError:
        return None


def _epoch(ts: datetime) -> float:
    if ts.tzinfo is None:
        ts = ts.replace(tzinfo=UTC)
    return ts.timestamp()


def _is_iterable(value: Any) -> bool:
    return isinstance(value, list | tuple | set) or inspect.isgenerator(value)
