"""``tether.testing.poll`` / ``apoll``: wait for a condition with a deadline."""

from __future__ import annotations

import asyncio
import time

import pytest

from tether.testing import apoll, poll


def test_poll_returns_the_first_truthy_value() -> None:
    calls: list[int] = []

    def third_time() -> int:
        calls.append(1)
        return len(calls) if len(calls) >= 3 else 0

    assert poll(third_time, timeout=5, interval=0.001) == 3
    assert len(calls) == 3


def test_poll_times_out_naming_what_it_waited_for_and_the_last_value() -> None:
    pending = ["r1"]
    start = time.monotonic()
    with pytest.raises(TimeoutError, match=r"the runs to finish did not hold within 0.2s"):
        poll(lambda: not pending, timeout=0.2, message="the runs to finish")
    assert 0.2 <= time.monotonic() - start < 1
    with pytest.raises(TimeoutError, match=r"last value: \[\]"):
        poll(lambda: [r for r in pending if r == "done"], timeout=0.05)


def test_poll_calls_at_least_once_even_with_no_time() -> None:
    assert poll(lambda: "ready", timeout=0) == "ready"


def test_apoll_waits_without_blocking_the_loop() -> None:
    async def main() -> float:
        flag: list[bool] = []

        async def setter() -> None:
            await asyncio.sleep(0.05)
            flag.append(True)

        task = asyncio.create_task(setter())
        start = time.monotonic()
        await apoll(lambda: flag, timeout=5, interval=0.005)
        await task
        return time.monotonic() - start

    assert 0.04 <= asyncio.run(main()) < 1


def test_apoll_times_out() -> None:
    with pytest.raises(TimeoutError, match="did not hold within 0.05s"):
        asyncio.run(apoll(lambda: None, timeout=0.05))
