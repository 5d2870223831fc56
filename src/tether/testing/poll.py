"""Wait for a condition with a deadline instead of sleeping for a guessed time.

    from tether.testing import poll

    run = poll(lambda: th.get_run(run_id).status == "completed" and th.get_run(run_id))
    await apoll(lambda: server.request_count() >= 3, timeout=5)

``fn`` is called until it returns something truthy, which is returned; after ``timeout``
seconds a ``TimeoutError`` names what was awaited and the last value seen.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


def _describe(fn: Callable[[], object], message: str | None) -> str:
    if message:
        return message
    name = getattr(fn, "__qualname__", None) or repr(fn)
    return f"the condition {name}"


def _timed_out(
    fn: Callable[[], object], message: str | None, timeout: float, last: object
) -> TimeoutError:
    return TimeoutError(
        f"{_describe(fn, message)} did not hold within {timeout:g}s (last value: {last!r})"
    )


def poll(
    fn: Callable[[], T],
    *,
    timeout: float = 10.0,
    interval: float = 0.02,
    message: str | None = None,
) -> T:
    """Call ``fn`` every ``interval`` seconds until it returns a truthy value (returned), or
    raise ``TimeoutError`` after ``timeout`` seconds. ``fn`` runs at least once."""
    deadline = time.monotonic() + timeout
    while True:
        value = fn()
        if value:
            return value
        left = deadline - time.monotonic()
        if left <= 0:
            raise _timed_out(fn, message, timeout, value)
        time.sleep(min(interval, left))


async def apoll(
    fn: Callable[[], T],
    *,
    timeout: float = 10.0,
    interval: float = 0.02,
    message: str | None = None,
) -> T:
    """``poll`` for async code: waits with ``asyncio.sleep``, never blocking the loop
    (``fn`` itself must be quick)."""
    deadline = time.monotonic() + timeout
    while True:
        value = fn()
        if value:
            return value
        left = deadline - time.monotonic()
        if left <= 0:
            raise _timed_out(fn, message, timeout, value)
        await asyncio.sleep(min(interval, left))


__all__ = ["apoll", "poll"]
