"""RunHandle: a reference to a run that callers can poll or wait on."""

from __future__ import annotations

import asyncio
import time
from typing import TYPE_CHECKING, Any, Protocol

from tether.codec import loads
from tether.errors import RunCancelled, RunFailed, RunNotFound, RunTimeout
from tether.records import TERMINAL_STATUSES, RunStatus
from tether.store.base import Store

if TYPE_CHECKING:
    from tether.durable.engine import Engine


class RunSource(Protocol):
    """What a handle reads a run through (a ``Harness``)."""

    @property
    def store(self) -> Store: ...

    @property
    def engine(self) -> Engine: ...


class RunHandle:
    """``run_id``, ``status()`` and ``result(timeout=None)`` of a run:
    ``tether.RunHandle(th, run_id)``."""

    def __init__(self, harness: RunSource, run_id: str) -> None:
        self._harness = harness
        self.run_id = run_id

    def __repr__(self) -> str:
        return f"RunHandle({self.run_id!r})"

    def status(self) -> RunStatus:
        state = self._harness.store.run_status(self.run_id)
        if state is None:
            raise RunNotFound(self.run_id)
        return RunStatus(state[0])

    def result(self, timeout: float | None = None) -> Any:
        """Wait for the run to end and return its output.

        Raises ``RunFailed`` or ``RunCancelled`` for runs that ended so, and ``RunTimeout``
        when ``timeout`` seconds pass first (the run itself goes on)."""
        harness = self._harness
        limit = None if timeout is None else time.monotonic() + timeout
        while True:
            engine = harness.engine
            with engine.changed:
                seen = engine.generation
            outcome = self._outcome()
            if outcome is not None:
                return outcome()
            if limit is not None and time.monotonic() >= limit:
                raise RunTimeout(
                    f"run {self.run_id} did not finish within {timeout}s (it goes on; "
                    "call result() again to keep waiting)"
                )
            wait = 0.1 if limit is None else min(0.1, max(0.0, limit - time.monotonic()))
            with engine.changed:
                if engine.generation == seen:
                    engine.changed.wait(wait)

    async def aresult(self, timeout: float | None = None) -> Any:
        """Async version of ``result``."""
        return await asyncio.to_thread(self.result, timeout)

    def _outcome(self) -> Any:
        row = self._harness.store.run_result(self.run_id)
        if row is None:
            raise RunNotFound(self.run_id)
        status, output, error = row
        if status not in TERMINAL_STATUSES:
            return None
        if status == "completed":
            return lambda: None if output is None else loads(output)
        if status == "cancelled":

            def cancelled() -> Any:
                raise RunCancelled(self.run_id)

            return cancelled

        def failed() -> Any:
            if error:
                info = loads(error)
            else:  # a trigger that flow control declined: say why
                run = self._harness.store.get_run(self.run_id)
                reason = run.reason if run is not None else None
                info = {"type": "Skipped", "message": reason or status}
            raise RunFailed(self.run_id, info)

        return failed
