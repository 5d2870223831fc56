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
from collections.abc import Callable, Generator
from typing import TypeVar, cast

T = TypeVar("T")


def _describe(fn: Callable[[], object], message: str | None) -> str:
    if message:
        return message
    name = getattr(fn, "__qualname__", None) or repr(fn)
    return f"the condition {name}"


def _waits(
    fn: Callable[[], T], timeout: float, interval: float, message: str | None
) -> Generator[float, None, T]:
    """Yields how long to wait before the next call of ``fn``; returns its truthy value."""
    deadline = time.monotonic() + timeout
    while True:
        value = fn()
        if value:
            return value
        left = deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError(
                f"{_describe(fn, message)} did not hold within {timeout:g}s (last value: {value!r})"
            )
        yield min(interval, left)


def poll(
    fn: Callable[[], T],
    *,
    timeout: float = 10.0,
    interval: float = 0.02,
    message: str | None = None,
) -> T:
    """Call ``fn`` every ``interval`` seconds until it returns a truthy value (returned), or
    raise ``TimeoutError`` after ``timeout`` seconds. ``fn`` runs at least once."""
    waits = _waits(fn, timeout, interval, message)
    try:
        while True:
            time.sleep(next(waits))
    except StopIteration as done:
        return cast(T, done.value)


async def apoll(
    fn: Callable[[], T],
    *,
    timeout: float = 10.0,
    interval: float = 0.02,
    message: str | None = None,
) -> T:
    """``poll`` for async code: waits with ``asyncio.sleep``, never blocking the loop
    (``fn`` itself must be quick)."""
    waits = _waits(fn, timeout, interval, message)
    try:
        while True:
            await asyncio.sleep(next(waits))
    except StopIteration as done:
        return cast(T, done.value)


__all__ = ["apoll", "poll"]
