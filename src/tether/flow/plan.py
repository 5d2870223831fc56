"""Validation of the flow-control arguments of ``@th.function``."""

from __future__ import annotations

from typing import Any

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
    check_type,
)


def check_flow(flow: dict[str, Any]) -> dict[str, Any]:
    """Validate the flow-control arguments of ``@th.function``."""
    concurrency = flow.get("concurrency")
    if concurrency is None:
        limits: tuple[Concurrency, ...] = ()
    elif isinstance(concurrency, Concurrency):
        limits = (concurrency,)
    elif isinstance(concurrency, list | tuple) and all(
        isinstance(c, Concurrency) for c in concurrency
    ):
        limits = tuple(concurrency)
    else:
        raise ConfigurationError(
            f"concurrency= takes tether.Concurrency(limit, key=...) or a list of up to two, "
            f"got {concurrency!r}"
        )
    if len(limits) > 2:
        raise ConfigurationError(
            "concurrency= takes at most two limits (a function-wide one and a keyed or scoped one)"
        )
    if len({c.hold for c in limits}) > 1:
        raise ConfigurationError(
            "concurrency=: hold= must be the same on both limits (a run keeps all its slots "
            "through sleeps and waits, or none)"
        )
    for name, cls in [
        ("singleton", Singleton),
        ("throttle", Throttle),
        ("rate_limit", RateLimit),
        ("debounce", Debounce),
        ("priority", Priority),
        ("batch", Batch),
    ]:
        check_type(flow.get(name), cls, name)
    cancels = tuple(flow.get("cancel_on") or ())
    for item in cancels:
        check_type(item, CancelOn, "cancel_on")
    return {
        "concurrency": limits,
        "singleton": flow.get("singleton"),
        "throttle": flow.get("throttle"),
        "rate_limit": flow.get("rate_limit"),
        "debounce": flow.get("debounce"),
        "priority": flow.get("priority"),
        "batch": flow.get("batch"),
        "cancel_on": cancels,
    }
