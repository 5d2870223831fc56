"""The functions registered in one process, and the options ``@th.function`` takes."""

from __future__ import annotations

import hashlib
import inspect
import threading
from collections.abc import Callable, Sequence
from typing import Any, TypedDict

from tether.durable.function import DurableFunction, normalise_triggers, source_hash
from tether.durable.retry import Retry
from tether.durable.spec import EventTrigger, FunctionSpec, check_key
from tether.durations import Duration, seconds
from tether.errors import ConfigurationError, FunctionNotFound
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
from tether.flow.keys import KeyExpr
from tether.flow.plan import check_flow

Trigger = EventTrigger | CronTrigger | str


class FunctionOptions(TypedDict, total=False):
    """The options of ``@th.function(...)`` (DESIGN section 1).

    id           the function's id (default: its ``__name__``)
    trigger      ``on_event(...)``, ``on_cron(...)``, a list of them, or None (invoke only)
    retries      ``tether.Retry(...)`` for its steps (default ``Retry()``: 4 attempts)
    timeout      wall-clock seconds (or "10m") from the first start, sleeps included
    concurrency  ``Concurrency(limit, key=, scope=)`` or a list of up to two
    singleton, throttle, rate_limit, debounce, priority, batch   flow-control objects
    idempotency  a key expression: one run per key value in 24 hours
    subject      a key expression naming whose data the runs are ("event.data.user_id"):
                 ``th.subject(id).forget()`` deletes them (DESIGN 4b)
    cancel_on    ``[tether.cancel_on(event, match=, timeout=)]``
    on_failure   a function run with the failed run's details
    """

    id: str | None
    trigger: Trigger | Sequence[Trigger] | None
    retries: Retry | None
    timeout: Duration | None
    concurrency: Concurrency | Sequence[Concurrency] | None
    singleton: Singleton | None
    throttle: Throttle | None
    rate_limit: RateLimit | None
    debounce: Debounce | None
    priority: Priority | None
    batch: Batch | None
    idempotency: KeyExpr | None
    subject: KeyExpr | None
    cancel_on: Sequence[CancelOn]
    on_failure: DurableFunction | Callable[..., Any] | None


_KNOWN = frozenset(FunctionOptions.__annotations__)
BUILTIN_PREFIX = "tether."


class Registry:
    """Functions by id and by the event names that trigger them; the code version."""

    def __init__(self, version: str | None = None) -> None:
        self.functions: dict[str, DurableFunction] = {}
        self._by_event: dict[str, list[tuple[DurableFunction, EventTrigger]]] = {}
        self._lock = threading.RLock()
        self._fixed_version = version
        self._code_version: str | None = None
        self._listeners: list[Callable[[DurableFunction], None]] = []

    def on_register(self, listener: Callable[[DurableFunction], None]) -> None:
        """Call ``listener`` with every function registered from now on."""
        self._listeners.append(listener)

    @property
    def version(self) -> str:
        """The code version recorded on new runs: the one given, else a hash of the
        registered functions' source."""
        if self._fixed_version is not None:
            return self._fixed_version
        if self._code_version is None:
            digest = hashlib.sha256()
            for fid in sorted(self.functions):
                if fid.startswith(BUILTIN_PREFIX):
                    continue  # tether's own functions (retention) are not the app's code
                digest.update(f"{fid}:{self.functions[fid].source_hash};".encode())
            self._code_version = digest.hexdigest()[:12]
        return self._code_version

    @property
    def keyed(self) -> bool:
        """True when some function's claims must respect concurrency or throttle keys."""
        return any(f.keyed for f in self.functions.values())

    def triggered_by(self, event_name: str) -> list[tuple[DurableFunction, EventTrigger]]:
        return self._by_event.get(event_name, [])

    def handles(self, event_name: str) -> bool:
        return event_name in self._by_event

    # -- registration -----------------------------------------------------------------
    def register(self, func: Callable[..., Any], options: FunctionOptions) -> DurableFunction:
        """Validate ``options`` and register ``func``; nothing changes on a bad option."""
        unknown = set(options) - _KNOWN
        if unknown:
            raise ConfigurationError(
                f"@th.function got unknown option(s) {sorted(unknown)}; the options are "
                f"{sorted(_KNOWN)}"
            )
        if isinstance(func, DurableFunction):
            func = func.fn
        if not callable(func):
            raise ConfigurationError(f"@th.function needs a function, got {func!r}")
        fid = options.get("id") or func.__name__
        if not isinstance(fid, str) or not fid or "/" in fid:
            raise ConfigurationError(
                f"function id {fid!r} is not valid: use a non-empty string without '/'"
            )
        triggers, crons = normalise_triggers(options.get("trigger"))
        idempotency = options.get("idempotency")
        check_key(idempotency, f"function {fid!r} idempotency")
        subject = options.get("subject")
        check_key(subject, f"function {fid!r} subject")
        controls = check_flow(dict(options))
        retries = options.get("retries")
        if retries is not None and not isinstance(retries, Retry):
            raise ConfigurationError(f"retries= takes tether.Retry(...), got {retries!r}")
        timeout = options.get("timeout")
        timeout_s = None if timeout is None else seconds(timeout, "timeout")
        with self._lock:
            self._check_new_id(fid, func)
            handler = None
            on_failure = options.get("on_failure")
            if on_failure is not None:
                handler = self._failure_handler(fid, on_failure)
            fdef = DurableFunction(
                id=fid,
                fn=func,
                is_async=inspect.iscoroutinefunction(func),
                triggers=triggers,
                crons=crons,
                retries=retries or Retry(),
                timeout=timeout_s,
                idempotency=idempotency,
                subject=subject,
                on_failure=handler,
                source_hash=source_hash(func),
                **controls,
            )
            self._add(fdef)
        return fdef

    def _add(self, fdef: DurableFunction) -> None:
        self.functions[fdef.id] = fdef
        for trig in fdef.triggers:
            self._by_event.setdefault(trig.event, []).append((fdef, trig))
        self._code_version = None
        for listener in self._listeners:
            listener(fdef)

    def _check_new_id(self, fid: str, func: Callable[..., Any]) -> None:
        if fid in self.functions:
            existing = self.functions[fid].fn
            raise ConfigurationError(
                f"a function with id {fid!r} is already registered ({_place(existing)}); "
                f"{_place(func)} cannot take it too. Give one of them another id: "
                "@th.function(id='...')"
            )

    def _failure_handler(self, fid: str, handler: Any) -> DurableFunction:
        if isinstance(handler, DurableFunction):
            if self.functions.get(handler.id) is not handler:
                raise ConfigurationError(
                    f"on_failure of {fid!r} names function {handler.id!r}, which is not "
                    "registered on this harness"
                )
            return handler
        if callable(handler):
            return self.register(handler, {"id": f"{fid}.on_failure"})
        raise ConfigurationError(f"on_failure= takes a function, got {handler!r}")

    # -- lookups ------------------------------------------------------------------------
    def get(self, function_id: str) -> DurableFunction | None:
        return self.functions.get(function_id)

    def resolve(self, fn: Any) -> DurableFunction:
        """The registered function for a decorated function, a plain function or an id."""
        if isinstance(fn, DurableFunction):
            found = self.functions.get(fn.id)
            if found is not None:
                return found
            raise FunctionNotFound(f"function {fn.id!r} is not registered on this harness")
        if isinstance(fn, str):
            found = self.functions.get(fn)
            if found is None:
                raise FunctionNotFound(
                    f"no function {fn!r} is registered; registered: {sorted(self.functions)}"
                )
            return found
        for fdef in self.functions.values():
            if fdef.fn is fn:
                return fdef
        raise FunctionNotFound(
            f"{fn!r} is not a registered function: decorate it with @th.function first"
        )

    def describe(self) -> list[dict[str, Any]]:
        """The descriptions stored with the registrations."""
        return [f.describe() for f in self.functions.values()]


def spec_of(fn: Any) -> FunctionSpec | None:
    """``fn`` itself when it is a spec (a registered function)."""
    return fn if isinstance(fn, FunctionSpec) else None


def _place(fn: Callable[..., Any]) -> str:
    return f"{getattr(fn, '__module__', '?')}.{getattr(fn, '__qualname__', repr(fn))}"
