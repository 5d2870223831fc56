"""Durable function definitions: a ``FunctionSpec`` plus the code that runs."""

from __future__ import annotations

import hashlib
import inspect
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from tether.durable.retry import Retry
from tether.durable.spec import EventTrigger, FunctionSpec, on_event
from tether.errors import ConfigurationError
from tether.flow.cron import CronTrigger

INVOKED_EVENT = "tether/function.invoked"
FAILED_EVENT = "tether/function.failed"


@dataclass(slots=True, kw_only=True)
class DurableFunction(FunctionSpec):
    """A function registered on a harness. Calling it calls the plain function."""

    fn: Callable[..., Any]
    is_async: bool = False
    retries: Retry = field(default_factory=Retry)
    on_failure: DurableFunction | None = None

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self.fn(*args, **kwargs)


def source_hash(fn: Callable[..., Any]) -> str:
    try:
        text = inspect.getsource(fn)
    except (OSError, TypeError):
        text = getattr(fn, "__qualname__", repr(fn))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def normalise_triggers(trigger: Any) -> tuple[tuple[EventTrigger, ...], tuple[CronTrigger, ...]]:
    """Split ``trigger=`` into event triggers and cron triggers."""
    if trigger is None:
        return (), ()
    items: Sequence[Any] = trigger if isinstance(trigger, list | tuple) else [trigger]
    events: list[EventTrigger] = []
    crons: list[CronTrigger] = []
    for item in items:
        if isinstance(item, str):
            item = EventTrigger(item)
        if isinstance(item, EventTrigger):
            events.append(item)
        elif isinstance(item, CronTrigger):
            crons.append(item)
        else:
            raise ConfigurationError(
                f"trigger={item!r} is not a trigger: use tether.on_event('name'), "
                "tether.on_cron('*/5 * * * *'), a list of them, or None for a function "
                "that is only invoked"
            )
    return tuple(events), tuple(crons)


__all__ = [
    "FAILED_EVENT",
    "INVOKED_EVENT",
    "DurableFunction",
    "EventTrigger",
    "normalise_triggers",
    "on_event",
    "source_hash",
]
