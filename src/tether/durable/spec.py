"""What the store records of a registered function, so that any process can plan its runs.

A process that only sends events (a web process) registers no functions, yet the runs it
creates must carry their function's controls: concurrency keys and limits, singleton,
throttle, rate limit, debounce, batch, priority, ``cancel_on``, idempotency, timeout. So
every registration stores a description with all of them as data; ``FunctionSpec`` reads
it back. A key or filter given as a callable cannot travel to another process: the
description names it under ``callables``, and a process without that callable refuses to
plan such a run (``FunctionSpec.require_plannable``) instead of planning it without its
controls.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from tether.durations import seconds
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


@dataclass(slots=True, kw_only=True)
class FunctionSpec:
    """A function's id, triggers and controls: everything needed to plan its runs."""

    id: str
    triggers: tuple[EventTrigger, ...] = ()
    crons: tuple[CronTrigger, ...] = ()
    timeout: float | None = None
    idempotency: KeyExpr | None = None
    concurrency: tuple[Concurrency, ...] = ()
    singleton: Singleton | None = None
    throttle: Throttle | None = None
    rate_limit: RateLimit | None = None
    debounce: Debounce | None = None
    priority: Priority | None = None
    batch: Batch | None = None
    cancel_on: tuple[CancelOn, ...] = ()
    subject: KeyExpr | None = None  # whose data its runs are (DESIGN 4b)
    source_hash: str = ""
    # Settings given as callables by the registering process (unknown to any other one):
    # (what, event name of the trigger it filters, or None when it applies to every run).
    opaque: tuple[tuple[str, str | None], ...] = ()

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

    @property
    def keyed(self) -> bool:
        """True when claims of this function must respect concurrency or throttle keys."""
        return bool(self.concurrency or self.throttle)

    def require_plannable(self, event: str | None = None) -> None:
        """Raise unless every setting needed to plan a run (for a trigger on ``event``,
        or an invoked run when None) is known in this process."""
        missing = [what for what, on in self.opaque if on is None or on == event]
        if missing:
            raise ConfigurationError(
                f"function {self.id!r} is registered by another process, and this process "
                f"cannot know {'; '.join(missing)}, so it cannot plan that function's runs "
                "with their controls. Write keys and filters as expression strings (a path "
                "such as 'event.data.user_id', a filter such as \"event.data.plan == 'pro'\"), "
                "or send from a process that registers the function."
            )

    # -- the stored description -------------------------------------------------------
    def describe(self) -> dict[str, Any]:
        """The JSON description stored with the registration (``from_description`` reads it)."""
        opaque: list[tuple[str, str | None]] = list(self.opaque)

        def key(value: Any, what: str) -> str | None:
            if value is None or isinstance(value, str):
                return value
            opaque.append((f"{what} (a Python callable)", None))
            return None

        for trig in self.triggers:
            if trig.where is not None and not isinstance(trig.where, str):
                opaque.append(
                    (
                        f"the where= filter of its {trig.event!r} trigger (a Python callable)",
                        trig.event,
                    )
                )
        flow: dict[str, Any] = {}
        if self.concurrency:
            flow["concurrency"] = [
                {
                    "limit": c.limit,
                    "key": key(c.key, "its concurrency key"),
                    "scope": c.scope,
                    "hold": c.hold,
                }
                for c in self.concurrency
            ]
        if self.singleton is not None:
            s = self.singleton
            flow["singleton"] = {"key": key(s.key, "its singleton key"), "mode": s.mode}
        for name in ("throttle", "rate_limit"):
            control: Throttle | RateLimit | None = getattr(self, name)
            if control is not None:
                flow[name] = {
                    "limit": control.limit,
                    "period": control.period_s,
                    "key": key(control.key, f"its {name} key"),
                }
        if self.debounce is not None:
            d = self.debounce
            flow["debounce"] = {
                "period": seconds(d.period),
                "key": key(d.key, "its debounce key"),
                "max_wait": None if d.max_wait is None else seconds(d.max_wait),
            }
        if self.priority is not None:
            flow["priority"] = {"key": key(self.priority.key, "its priority key")}
        if self.batch is not None:
            b = self.batch
            flow["batch"] = {
                "max_size": b.max_size,
                "timeout": seconds(b.timeout),
                "key": key(b.key, "its batch key"),
            }
        if self.cancel_on:
            flow["cancel_on"] = [
                {
                    "event": c.event,
                    "match": c.match,
                    "timeout": None if c.timeout is None else seconds(c.timeout),
                }
                for c in self.cancel_on
            ]
        return {
            "id": self.id,
            "version": self.source_hash,
            # Event triggers and cron triggers, as earlier versions stored them.
            "triggers": [t.describe() for t in self.triggers] + [c.describe() for c in self.crons],
            "idempotency": key(self.idempotency, "its idempotency key"),
            "subject": key(self.subject, "its subject key"),
            "timeout": self.timeout,
            "flow": flow,
            "callables": [{"what": what, "event": event} for what, event in opaque],
        }

    @classmethod
    def from_description(cls, row: dict[str, Any]) -> FunctionSpec:
        """Rebuild a spec from a stored description (any version tether wrote)."""
        triggers: list[EventTrigger] = []
        crons: list[CronTrigger] = []
        for item in row.get("triggers") or ():
            if "event" in item:
                triggers.append(EventTrigger(item["event"], item.get("where")))
            elif "cron" in item:
                crons.append(
                    CronTrigger(
                        item["cron"], item.get("tz", "UTC"), bool(item.get("skip_missed", False))
                    )
                )
        flow = row.get("flow") or {}

        def opt(name: str, make: Callable[[dict[str, Any]], Any]) -> Any:
            value = flow.get(name)
            return None if value is None else make(value)

        # A description written before flow settings were stored knows none of them.
        callables = tuple((c["what"], c.get("event")) for c in row.get("callables") or ())
        if "flow" not in row:
            callables += (
                (
                    "its flow controls (an older tether registered it: start a worker of this "
                    "version to register it again)",
                    None,
                ),
            )
        return cls(
            id=row["id"],
            triggers=tuple(triggers),
            crons=tuple(crons),
            timeout=row.get("timeout"),
            idempotency=row.get("idempotency"),
            subject=row.get("subject"),
            concurrency=tuple(
                Concurrency(c["limit"], c.get("key"), c.get("scope"), bool(c.get("hold")))
                for c in flow.get("concurrency") or ()
            ),
            singleton=opt("singleton", lambda s: Singleton(s.get("key"), s.get("mode", "skip"))),
            throttle=opt("throttle", lambda t: Throttle(t["limit"], t["period"], t.get("key"))),
            rate_limit=opt(
                "rate_limit", lambda r: RateLimit(r["limit"], r["period"], r.get("key"))
            ),
            debounce=opt(
                "debounce", lambda d: Debounce(d["period"], d.get("key"), d.get("max_wait"))
            ),
            priority=opt("priority", lambda p: Priority(p["key"]) if p.get("key") else None),
            batch=opt("batch", lambda b: Batch(b["max_size"], b["timeout"], b.get("key"))),
            cancel_on=tuple(
                CancelOn(c["event"], c.get("match"), c.get("timeout"))
                for c in flow.get("cancel_on") or ()
            ),
            source_hash=row.get("version") or "",
            opaque=callables,
        )


def check_key(expr: Any, what: str) -> None:
    """Validate a key expression given at registration (a path or a callable)."""
    if expr is not None:
        check_expr(expr, what)
