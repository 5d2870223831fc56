"""Time sources: the wall clock, and a virtual clock for tests that skips waits forward."""

from __future__ import annotations

import asyncio
import threading
import time


class Clock:
    """The wall clock. Every durable time (sleeps, leases, timeouts) is read through it."""

    virtual = False
    auto_advance = False

    def now(self) -> float:
        return time.time()

    def sleep(self, seconds: float) -> None:
        if seconds > 0:
            time.sleep(seconds)

    async def asleep(self, seconds: float) -> None:
        if seconds > 0:
            await asyncio.sleep(seconds)

    def advance_to(self, when: float) -> None:
        """Move time forward to ``when``. The wall clock cannot: it waits instead."""


class VirtualClock(Clock):
    """A clock for tests: sleeps, backoffs and durable timers elapse at once.

    Time starts at the wall clock and only ever moves forward: ``sleep`` and the idle
    worker jump it to the next due time instead of waiting. With ``auto_advance=False``
    only ``advance()`` moves it (to test schedules tick by tick).
    """

    virtual = True

    def __init__(self, start: float | None = None, *, auto_advance: bool = True) -> None:
        self._offset = 0.0 if start is None else start - time.time()
        self._lock = threading.Lock()
        self.auto_advance = auto_advance

    def now(self) -> float:
        return time.time() + self._offset

    def advance(self, seconds: float) -> None:
        with self._lock:
            self._offset += max(0.0, seconds)

    def advance_to(self, when: float) -> None:
        with self._lock:
            gap = when - (time.time() + self._offset)
            if gap > 0:
                self._offset += gap

    def sleep(self, seconds: float) -> None:
        self.advance(seconds)

    async def asleep(self, seconds: float) -> None:
        self.advance(seconds)
        await asyncio.sleep(0)
