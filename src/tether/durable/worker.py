"""The worker: claims due runs from the store and executes them, ``concurrency`` at a time.

A sleeping or waiting run is not held by any worker: it sits in the store until it is due
(or an event wakes it), then any worker claims it. A claim is a lease that the engine
renews; when a worker dies its leases expire and live workers take its runs over.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import threading
from concurrent.futures import Future
from types import TracebackType
from typing import TYPE_CHECKING

from tether.errors import ConfigurationError, StoreError

if TYPE_CHECKING:
    from tether.durable.engine import Engine
    from tether.store.base import Claim

log = logging.getLogger("tether.worker")
# A live worker schedules a cron tick within a poll interval of it; a tick first seen this
# late was missed (no worker ran), which ``on_cron(..., skip_missed=True)`` skips.
MISSED_AFTER = 30.0


class Worker:
    """Executes runs of the engine's functions. ``start``/``stop``, ``run``, or ``with``."""

    def __init__(self, engine: Engine, concurrency: int = 10, poll_interval: float = 0.2) -> None:
        if concurrency < 1:
            raise ConfigurationError(f"worker concurrency must be >= 1, got {concurrency}")
        self.engine = engine
        self.concurrency = concurrency
        self.poll_interval = poll_interval
        self._stopping = False
        self._future: Future[None] | None = None
        self._tasks: dict[asyncio.Task[str], tuple[str, int]] = {}
        self.completed = 0

    @property
    def running(self) -> bool:
        return self._future is not None and not self._future.done()

    def start(self) -> Worker:
        """Start claiming runs in the background and return at once."""
        if self.running:
            return self
        engine = self.engine
        self._stopping = False
        self._future = asyncio.run_coroutine_threadsafe(self._loop(), engine.loop)
        return self

    def stop(self, timeout: float = 30.0) -> None:
        """Stop claiming, let runs in flight finish (up to ``timeout``), then return.

        Runs still executing after the timeout are given back to the store at once, so
        another worker continues them from their last checkpoint."""
        if self._future is None:
            return
        self._drain_timeout = timeout
        self._stopping = True
        engine = self.engine
        engine.loop.call_soon_threadsafe(self._wake_now)
        try:
            self._future.result(timeout + 5)
        finally:
            self._future = None

    def run(self) -> None:
        """Run in the foreground until SIGINT or SIGTERM, then drain and return."""
        done = threading.Event()

        def handle(signum: int, frame: object) -> None:
            done.set()

        previous = {sig: signal.signal(sig, handle) for sig in (signal.SIGINT, signal.SIGTERM)}
        try:
            self.start()
            while not done.wait(0.5):
                if not self.running:
                    break
        finally:
            for sig, old in previous.items():
                signal.signal(sig, old)
            self.stop()

    def __enter__(self) -> Worker:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # -- the claim loop (runs on the engine's event loop) ----------------------------------
    _waker: asyncio.Event | None = None
    _drain_timeout: float = 30.0

    def _wake_now(self) -> None:
        if self._waker is not None:
            self._waker.set()

    async def _loop(self) -> None:
        engine = self.engine
        registry = engine.registry
        store = engine.store
        clock = engine.clock
        self._waker = waker = asyncio.Event()
        engine.add_waker(waker)
        try:
            while not self._stopping:
                function_ids = list(registry.functions)
                keyed = registry.keyed
                free = self.concurrency - len(self._tasks)
                claims: list[Claim] = []
                try:  # a locked or full store fails this round only, not the worker
                    if any(f.crons for f in registry.functions.values()):
                        await engine.io(self._schedule_crons)
                    if free > 0 and function_ids:
                        claims = await engine.io(
                            store.claim,
                            engine.owner,
                            free,
                            function_ids,
                            clock.now(),
                            engine.lease_ttl,
                            keyed,
                            list(engine.active.copy()),
                        )
                except StoreError as exc:
                    log.warning("worker could not claim runs: %s", exc)
                claimed = len(claims)
                for claim in claims:
                    task = asyncio.ensure_future(engine.execute(claim))
                    self._tasks[task] = (claim.run_id, claim.token)
                    task.add_done_callback(self._done)
                if claimed and claimed == free:
                    await asyncio.sleep(0)
                    continue
                timeout = self.poll_interval
                due = None
                if free - claimed > 0:
                    with contextlib.suppress(StoreError):
                        due = await engine.io(store.next_due, function_ids)
                    now = clock.now()
                    if due is not None:
                        if clock.auto_advance and not self._tasks and due > now:
                            clock.advance_to(due)
                            continue
                        timeout = min(timeout, max(0.005, due - now))
                waker.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(waker.wait(), timeout)
            await self._drain()
        finally:
            engine.remove_waker(waker)
            self._waker = None

    _cron_next: dict[str, float] | None = None

    def _schedule_crons(self) -> None:
        """Create the run of every due cron tick (exactly once across workers)."""
        engine = self.engine
        now = engine.clock.now()
        if self._cron_next is None:
            self._cron_next = {}
        for fdef in list(engine.registry.functions.values()):
            for index, cron in enumerate(fdef.crons):
                name = f"{fdef.id}#{index}"
                if self._cron_next.get(name, 0.0) > now:
                    continue
                _, cursor = engine.store.schedule_cron(
                    name,
                    lambda last, c=cron: c.ticks(last, now),  # type: ignore[misc]
                    lambda tick, f=fdef, c=cron, n=name: engine.factory.cron(f, c, n, tick),  # type: ignore[misc]
                    now,
                    MISSED_AFTER if cron.skip_missed else None,
                )
                self._cron_next[name] = cursor

    def _done(self, task: asyncio.Task[str]) -> None:
        self._tasks.pop(task, None)
        if not task.cancelled() and task.exception() is None:
            self.completed += 1
        if self._waker is not None:
            self._waker.set()

    async def _drain(self) -> None:
        if not self._tasks:
            return
        _, pending = await asyncio.wait(set(self._tasks), timeout=self._drain_timeout)
        engine = self.engine
        for task in pending:
            run_id, token = self._tasks.get(task, ("", 0))
            task.cancel()
            if run_id:
                engine.store.release(run_id, token, engine.clock.now())
