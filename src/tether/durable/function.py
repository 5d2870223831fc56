"""Durable function definitions and their triggers."""

from __future__ import annotations

import hashlib
import inspect
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from tether.durable.retry import Retry
from tether.errors import ConfigurationError
from tether.flow.controls import (
    Batch,
    CancelOn,
    Concurrency,
    Debounce,
    Priority,
    RateLimit,
    Singleton,
    Throttle,
)
from tether.flow.cron import CronTrigger
from tether.flow.expr import compile_expr
from tether.flow.keys import KeyExpr, check_expr

INVOKED_EVENT = "tether/function.invoked"
FAILED_EVENT = "tether/function.failed"


@dataclass(frozen=True, slots=True)
class EventTrigger:
    """Start a run for every accepted event called ``event`` (and matching ``where``)."""

    event: str
    where: str | Callable[[Any], bool] | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.event, str) or not self.event:
            raise ConfigurationError(f"on_event needs an event name, got {self.event!r}")
        if isinstance(self.where, str):
            compile_expr(self.where)
        elif self.where is not None and not callable(self.where):
            raise ConfigurationError(
                "on_event(where=...) takes an expression string such as "
                "\"event.data.priority == 'high'\" or a callable taking the event"
            )

    def describe(self) -> dict[str, Any]:
        return {"event": self.event, "where": self.where if isinstance(self.where, str) else None}


def on_event(event: str, where: str | Callable[[Any], bool] | None = None) -> EventTrigger:
    """Trigger a function on each event named ``event``; ``where`` filters them."""
    return EventTrigger(event, where)


@dataclass(slots=True)
class DurableFunction:
    """A function registered on a harness. Calling it calls the plain function."""

    id: str
    fn: Callable[..., Any]
    is_async: bool
    triggers: tuple[EventTrigger, ...]
    retries: Retry
    timeout: float | None
    idempotency: KeyExpr | None
    on_failure: DurableFunction | Callable[..., Any] | None
    source_hash: str = field(default="")
    concurrency: tuple[Concurrency, ...] = ()
    singleton: Singleton | None = None
    throttle: Throttle | None = None
    rate_limit: RateLimit | None = None
    debounce: Debounce | None = None
    priority: Priority | None = None
    batch: Batch | None = None
    cancel_on: tuple[CancelOn, ...] = ()
    crons: tuple[CronTrigger, ...] = ()

    @property
    def has_flow(self) -> bool:
        return bool(
            self.concurrency
            or self.singleton
            or self.throttle
            or self.rate_limit
            or self.debounce
            or self.priority
            or self.batch
            or self.cancel_on
        )

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self.fn(*args, **kwargs)

    def describe(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "triggers": [t.describe() for t in self.triggers] + [c.describe() for c in self.crons],
            "idempotency": self.idempotency if isinstance(self.idempotency, str) else None,
            "version": self.source_hash,
        }


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


def check_idempotency(expr: Any, function_id: str) -> None:
    if expr is not None:
        check_expr(expr, f"function {function_id!r} idempotency")
