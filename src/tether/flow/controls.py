"""Flow-control settings for ``@th.function(...)``.

Periods are seconds or strings such as "30s", "5m", "1h". Keys are key expressions
(``"event.data.user_id"`` or a callable taking the event); without a key a control applies
to the function as a whole.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from tether.durations import Duration, seconds
from tether.errors import ConfigurationError
from tether.flow.keys import KeyExpr, check_expr


def _key(key: Any, what: str) -> None:
    if key is not None:
        check_expr(key, what)


def _positive(value: Any, what: str) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise ConfigurationError(f"{what} must be a whole number >= 1, got {value!r}")
    return value


@dataclass(frozen=True)
class Concurrency:
    """At most ``limit`` runs executing at once per key value. ``scope`` shares the limit
    across every function that names the same scope (a provider's quota, say).

    Runs over the limit stay queued, in order, holding no worker slot; a run that sleeps
    or waits gives its slot back, unless ``hold=True``: then a run keeps its slot from its
    first start to its end, through sleeps and waits (one conversation strictly at a time)."""

    limit: int
    key: KeyExpr | None = None
    scope: str | None = None
    hold: bool = False

    def __post_init__(self) -> None:
        _positive(self.limit, "Concurrency(limit=...)")
        _key(self.key, "Concurrency(key=...)")
        if self.scope is not None and (not isinstance(self.scope, str) or not self.scope):
            raise ConfigurationError("Concurrency(scope=...) must be a non-empty string")
        if not isinstance(self.hold, bool):
            raise ConfigurationError(
                f"Concurrency(hold=...) takes True or False, got {self.hold!r}"
            )


@dataclass(frozen=True)
class Singleton:
    """One active run per key: a new trigger is skipped (``mode="skip"``) or cancels the
    active run and starts (``mode="cancel"``: a new user message cancels the stale reply)."""

    key: KeyExpr | None = None
    mode: Literal["skip", "cancel"] = "skip"

    def __post_init__(self) -> None:
        _key(self.key, "Singleton(key=...)")
        if self.mode not in ("skip", "cancel"):
            raise ConfigurationError(f"Singleton(mode={self.mode!r}): use 'skip' or 'cancel'")


@dataclass(frozen=True)
class Throttle:
    """At most ``limit`` run starts per ``period`` per key; extra starts are delayed to
    fit, never dropped."""

    limit: int
    period: Duration
    key: KeyExpr | None = None

    def __post_init__(self) -> None:
        _positive(self.limit, "Throttle(limit=...)")
        seconds(self.period, "Throttle(period=...)")
        _key(self.key, "Throttle(key=...)")

    @property
    def period_s(self) -> float:
        return seconds(self.period)


@dataclass(frozen=True)
class RateLimit:
    """At most ``limit`` runs per ``period`` per key; triggers over the limit are recorded
    as ``skipped`` runs with the reason, never silently dropped."""

    limit: int
    period: Duration
    key: KeyExpr | None = None

    def __post_init__(self) -> None:
        _positive(self.limit, "RateLimit(limit=...)")
        seconds(self.period, "RateLimit(period=...)")
        _key(self.key, "RateLimit(key=...)")

    @property
    def period_s(self) -> float:
        return seconds(self.period)


@dataclass(frozen=True)
class Debounce:
    """A burst of triggers becomes one run, with the last event, ``period`` after the last
    trigger; ``max_wait`` bounds how long a steady stream can postpone it."""

    period: Duration
    key: KeyExpr | None = None
    max_wait: Duration | None = None

    def __post_init__(self) -> None:
        seconds(self.period, "Debounce(period=...)")
        if self.max_wait is not None:
            seconds(self.max_wait, "Debounce(max_wait=...)")
        _key(self.key, "Debounce(key=...)")


@dataclass(frozen=True)
class Priority:
    """``key`` reads a number from the event: higher runs first. The number counts as
    seconds of head start (clamped to +/-600), so lower-priority runs are delayed, never
    starved."""

    key: KeyExpr

    def __post_init__(self) -> None:
        check_expr(self.key, "Priority(key=...)")


@dataclass(frozen=True)
class Batch:
    """Up to ``max_size`` events (per key) become one run, started when the batch is full
    or ``timeout`` after its first event; the function reads them as ``ctx.events``."""

    max_size: int
    timeout: Duration
    key: KeyExpr | None = None

    def __post_init__(self) -> None:
        _positive(self.max_size, "Batch(max_size=...)")
        seconds(self.timeout, "Batch(timeout=...)")
        _key(self.key, "Batch(key=...)")


@dataclass(frozen=True)
class CancelOn:
    """Cancel a run when an event named ``event`` arrives whose ``match`` path equals the
    run's trigger at the same path (within ``timeout`` of the run's start, if given)."""

    event: str
    match: str | None = None
    timeout: Duration | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.event, str) or not self.event:
            raise ConfigurationError(f"cancel_on needs an event name, got {self.event!r}")
        if self.match is not None:
            check_expr(self.match, "cancel_on(match=...)")
        if self.timeout is not None:
            seconds(self.timeout, "cancel_on(timeout=...)")


def cancel_on(event: str, match: str | None = None, timeout: Duration | None = None) -> CancelOn:
    """``cancel_on=[tether.cancel_on("conversation.closed", match="data.conversation_id")]``."""
    return CancelOn(event, match, timeout)


def check_type(value: Any, cls: type, what: str) -> None:
    if value is not None and not isinstance(value, cls):
        raise ConfigurationError(f"{what}= takes tether.{cls.__name__}(...), got {value!r}")
