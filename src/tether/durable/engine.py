"""The engine: executes claimed runs, concludes them in the store, renews their leases.

One engine per harness and process. It owns a background thread with an event loop (for
``async def`` bodies, heartbeats and workers) and thread pools for plain ``def`` bodies
and sync step callables, so sync user code never blocks the event loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import threading
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

from tether.clock import Clock
from tether.codec import dumps, encode_result
from tether.durable.context import CURRENT_CONTEXT, Context, SyncContext
from tether.durable.execution import CheckStop, DeadlineExceeded, RunExecution, error_dict
from tether.durable.intake import Intake
from tether.durable.registry import Registry
from tether.durable.runs import RunFactory
from tether.durable.signals import Cancel, LeaseLost, Suspend
from tether.durable.spec import FunctionSpec
from tether.errors import (
    Fenced,
    FunctionNotFound,
    RunNotFound,
    StepOutputError,
    StoreError,
    TetherError,
    WouldBlock,
)
from tether.observe import observer_for
from tether.records import TERMINAL_STATUSES
from tether.store.base import Claim, NewRun, StepWrite, Store

if TYPE_CHECKING:
    from tether.observe.otel import Observer

log = logging.getLogger("tether.engine")
# What ``execute`` returns when it ended the run itself (its fenced end committed).
ENDED = frozenset({"completed", "failed", "cancelled"})
T = TypeVar("T")


@dataclass(slots=True)
class Outcome:
    kind: str  # completed | failed | suspended | cancelled | timeout | lost | checked
    output: Any = None
    error: BaseException | None = None


@dataclass(frozen=True, slots=True)
class EngineSettings:
    lease_ttl: float = 2.0  # seconds a claim lasts without renewal
    heartbeat: float = 0.5  # seconds between renewals
    max_output_bytes: int = 4 * 1024 * 1024
    inline_retry_max: float = 2.0  # longer backoffs suspend the run durably
    embedder: str | None = "local:all-minilm-l6-v2"  # ctx.memory()'s (None: full text only)


class Engine:
    """Executes runs of ``registry``'s functions on ``store``. ``breaker`` gives the LLM
    circuit breaker shared by the LLM steps (built on first use)."""

    def __init__(
        self,
        store: Store,
        registry: Registry,
        factory: RunFactory,
        intake: Intake,
        clock: Clock,
        settings: EngineSettings,
        breaker: Callable[[], Any],
    ) -> None:
        self.store = store
        self.registry = registry
        self.factory = factory
        self.intake = intake
        self.clock = clock
        self.breaker = breaker
        self.owner = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self.lease_ttl = settings.lease_ttl
        self.heartbeat_interval = settings.heartbeat
        self.max_output_bytes = settings.max_output_bytes
        self.inline_retry_max = settings.inline_retry_max
        self.embedder = settings.embedder
        self.active: dict[str, RunExecution] = {}
        self.stranded: dict[str, int] = {}  # leases to give back once the store works again
        self.step_pool = ThreadPoolExecutor(max_workers=32, thread_name_prefix="tether-step")
        # Store calls that may wait (PostgreSQL round trips, synced commits, locked files)
        # run here, never on the loop; see ``io``.
        self.io_pool = ThreadPoolExecutor(max_workers=8, thread_name_prefix="tether-io")
        self.body_pool = ThreadPoolExecutor(max_workers=64, thread_name_prefix="tether-fn")
        self.changed = threading.Condition()
        self.generation = 0
        self._wakers: list[asyncio.Event] = []
        self._closed = False
        self._pending: list[tuple[str, int, StepWrite, asyncio.Future[bool | Fenced]]] = []
        self._flush_scheduled = False
        self._flushing = False  # a batch is being committed on the I/O threads
        self.loop = asyncio.new_event_loop()
        ready = threading.Event()
        self._thread = threading.Thread(
            target=self._run_loop, args=(ready,), name="tether-engine", daemon=True
        )
        self._thread.start()
        ready.wait()
        self._heartbeat = asyncio.run_coroutine_threadsafe(self._heartbeat_loop(), self.loop)
        self.store.add_listener(self._on_change)
        self.observer: Observer | None = observer_for()  # None: tracing off

    # -- checkpoints from async functions, committed together ------------------------------
    def save_async(
        self, run_id: str, token: int, write: StepWrite
    ) -> asyncio.Future[bool | Fenced]:
        """Queue a checkpoint from a coroutine on the engine loop; every checkpoint queued
        in the same loop iteration is committed in one transaction (group commit without
        a thread hop). The caller awaits the future before its next step starts."""
        future: asyncio.Future[bool | Fenced] = self.loop.create_future()
        self._pending.append((run_id, token, write, future))
        if not self._flush_scheduled:
            self._flush_scheduled = True
            self.loop.call_soon(self._flush)
        return future

    def _flush(self) -> None:
        self._flush_scheduled = False
        if self._flushing:
            return  # one batch on the I/O threads at a time: the next one takes the rest
        batch, self._pending = self._pending, []
        items = [(r, t, w) for r, t, w, _ in batch]
        if self.store.loop_safe:
            try:
                with self.store.nowait():
                    results = self.store.save_steps(items)
            except WouldBlock:
                pass  # the file is locked: commit from an I/O thread, where waiting is fine
            except BaseException as exc:
                _settle(batch, exc)
                return
            else:
                _settle(batch, results)
                return
        self._flushing = True
        done = self.loop.run_in_executor(self.io_pool, self.store.save_steps, items)

        def settle(f: asyncio.Future[list[bool | Fenced]]) -> None:
            self._flushing = False
            error = asyncio.CancelledError() if f.cancelled() else f.exception()
            _settle(batch, error if error is not None else f.result())
            if self._pending and not self._flush_scheduled:
                self._flush_scheduled = True
                self.loop.call_soon(self._flush)

        done.add_done_callback(settle)

    async def io(self, fn: Callable[..., T], *args: Any) -> T:
        """Call store methods from the loop: inline when the store's writes are short
        local commits (SQLite, process durability) and its lock is free, else on the I/O
        threads. ``fn`` makes at most one write (it may run again on a thread)."""
        if self.store.loop_safe:
            try:
                with self.store.nowait():
                    return fn(*args)
            except WouldBlock:
                pass
        return await self.loop.run_in_executor(self.io_pool, fn, *args)

    def target(self, fn: Any) -> FunctionSpec:
        """The function ``ctx.step.invoke`` names: registered here, or (by id) registered
        by another process, whose workers then execute the child run."""
        try:
            return self.registry.resolve(fn)
        except FunctionNotFound:
            spec = self.intake.remote_spec(fn) if isinstance(fn, str) else None
            if spec is None:
                raise
            return spec

    # -- the loop thread ------------------------------------------------------------------
    def _run_loop(self, ready: threading.Event) -> None:
        asyncio.set_event_loop(self.loop)
        self.loop.call_soon(ready.set)
        self.loop.run_forever()

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True

        async def shutdown() -> None:
            current = asyncio.current_task()
            tasks = [t for t in asyncio.all_tasks() if t is not current]
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

        with contextlib.suppress(Exception):
            asyncio.run_coroutine_threadsafe(shutdown(), self.loop).result(timeout=5)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(timeout=5)
        if not self._thread.is_alive():
            self.loop.close()
        self.step_pool.shutdown(wait=False, cancel_futures=True)
        self.body_pool.shutdown(wait=False, cancel_futures=True)
        self.io_pool.shutdown(wait=False, cancel_futures=True)

    def _on_change(self) -> None:
        with self.changed:
            self.generation += 1
            self.changed.notify_all()
        if self._closed or not self._wakers:
            return
        if threading.get_ident() == self._thread.ident:  # on the loop: no self-pipe write
            for waker in list(self._wakers):
                waker.set()
            return
        for waker in list(self._wakers):
            with contextlib.suppress(RuntimeError):
                self.loop.call_soon_threadsafe(waker.set)

    def add_waker(self, waker: asyncio.Event) -> None:
        self._wakers.append(waker)

    def remove_waker(self, waker: asyncio.Event) -> None:
        with contextlib.suppress(ValueError):
            self._wakers.remove(waker)

    async def _heartbeat_loop(self) -> None:
        while True:
            await asyncio.sleep(self.heartbeat_interval)
            for run_id, token in list(self.stranded.items()):
                with contextlib.suppress(TetherError):
                    await self.io(self.store.release, run_id, token, self.clock.now())
                    self.stranded.pop(run_id, None)
            if not self.active:
                continue
            try:
                asked = await self.io(
                    self.store.renew,
                    self.owner,
                    list(self.active.copy()),
                    self.clock.now() + self.lease_ttl,
                )
            except TetherError as exc:
                log.warning("lease renewal failed: %s", exc)
                continue
            for run_id in asked:
                self.cancel_local(run_id)

    def cancel_local(self, run_id: str) -> bool:
        """Cancel a run executing in this process at its next step boundary."""
        ex = self.active.get(run_id)
        if ex is None:
            return False
        ex.cancel_requested = True
        task = ex.task
        if task is not None:
            self.loop.call_soon_threadsafe(task.cancel)
        return True

    # -- executing a claimed run -------------------------------------------------------------
    def _prepare(self, claim: Claim) -> RunExecution | None:
        function = self.registry.get(claim.function_id)
        if function is None:
            self._safely(lambda: self.store.release(claim.run_id, claim.token, self.clock.now()))
            return None
        now = self.clock.now()
        if claim.cancel_requested:
            self._finish(claim, "cancelled", None, _cancelled_error())
            return None
        if claim.deadline_at is not None and now >= claim.deadline_at:
            ex = RunExecution(self, claim, function, {})
            self._conclude(ex, Outcome("timeout"))
            return None
        return RunExecution(self, claim, function, self.store.load_steps(claim.run_id))

    def body_sync(self, ex: RunExecution) -> Outcome:
        ctx = SyncContext(ex)
        token = CURRENT_CONTEXT.set(ctx)
        try:
            output = ex.function.fn(ctx)
        except BaseException as exc:
            return self._classify(ex, exc)
        finally:
            CURRENT_CONTEXT.reset(token)
        return self._after_body(ex, output)

    async def body_async(self, ex: RunExecution) -> Outcome:
        ctx = Context(ex)
        token = CURRENT_CONTEXT.set(ctx)  # copied into the body's task, then reset here
        try:
            task = asyncio.ensure_future(ex.function.fn(ctx))
        finally:
            CURRENT_CONTEXT.reset(token)
        ex.task = task
        try:
            if ex.deadline is not None:
                remaining = max(0.0, ex.deadline - self.clock.now())
                output = await asyncio.wait_for(task, remaining)
            else:
                output = await task
        except TimeoutError as exc:
            if ex.deadline is not None and self.clock.now() >= ex.deadline:
                outcome = Outcome("timeout")
            else:
                outcome = self._classify(ex, exc)
        except asyncio.CancelledError as exc:
            # Cancelled on request (a cancel), or by a stopping worker (the run is given back).
            outcome = Outcome("cancelled" if ex.cancel_requested else "lost")
            del exc
        except BaseException as exc:
            outcome = self._classify(ex, exc)
        else:
            outcome = self._after_body(ex, output)
        finally:
            ex.task = None
        # Steps still in flight in sibling tasks (asyncio.gather) checkpoint first.
        await ex.settled()
        return outcome

    def _after_body(self, ex: RunExecution, output: Any) -> Outcome:
        if ex.lease_lost:
            return Outcome("lost")
        if ex.diverged is not None:
            return Outcome("failed", error=ex.diverged)
        if ex.blocked:
            return Outcome("suspended")
        return Outcome("completed", output)

    def _classify(self, ex: RunExecution, exc: BaseException) -> Outcome:
        if isinstance(exc, LeaseLost) or ex.lease_lost:
            return Outcome("lost")
        if isinstance(exc, Suspend):
            return Outcome("suspended")
        if isinstance(exc, Cancel):
            return Outcome("cancelled")
        if isinstance(exc, DeadlineExceeded):
            return Outcome("timeout")
        if isinstance(exc, CheckStop):
            return Outcome("checked")
        if isinstance(exc, StoreError):
            raise exc  # the store failed, not the run: it resumes from its last checkpoint
        if ex.diverged is not None:
            return Outcome("failed", error=ex.diverged)
        if ex.blocked and not isinstance(exc, Exception):
            return Outcome("suspended")
        if isinstance(exc, KeyboardInterrupt | SystemExit):
            raise exc
        return Outcome("failed", error=exc)

    def _conclude(self, ex: RunExecution, outcome: Outcome) -> str:
        claim = ex.claim
        kind = outcome.kind
        if kind == "completed":
            try:
                text = encode_result(
                    outcome.output,
                    what=f"function {ex.function.id!r}",
                    limit=self.max_output_bytes,
                    replayed=False,
                )
            except StepOutputError as exc:
                kind, outcome = "failed", Outcome("failed", error=exc)
            else:
                return self._finish(claim, "completed", text, None)
        if kind == "failed":
            assert outcome.error is not None
            err = error_dict(outcome.error)
            return self._finish(claim, "failed", None, err, self._follow_up(ex, err))
        if kind == "timeout":
            err = error_dict(ex.timeout_error())
            return self._finish(claim, "failed", None, err, self._follow_up(ex, err))
        if kind == "cancelled":
            return self._finish(claim, "cancelled", None, _cancelled_error())
        if kind == "suspended":
            waiting = any(s.waiting for s in ex.blocked)
            wakes = [s.wake_at for s in ex.blocked if s.wake_at is not None]
            due = min(wakes) if wakes else None
            if ex.deadline is not None:
                due = ex.deadline if due is None else min(due, ex.deadline)
            blocked = sorted({s.step_id for s in ex.blocked})
            status = "waiting" if waiting else "sleeping"
            ok = self._safely(
                lambda: self.store.suspend(
                    claim.run_id, claim.token, status, due, blocked, self.clock.now()
                )
            )
            return status if ok else "lost"
        return kind  # lost, checked

    def _finish(
        self,
        claim: Claim,
        status: str,
        output: str | None,
        error: dict[str, Any] | None,
        follow_up: NewRun | None = None,
    ) -> str:
        ok = self._safely(
            lambda: self.store.finish(
                claim.run_id,
                claim.token,
                status,
                output,
                None if error is None else dumps(error),
                self.clock.now(),
                follow_up,
            )
        )
        return status if ok else "lost"

    def _safely(self, fn: Any) -> bool:
        try:
            fn()
        except Fenced:
            return False
        return True

    def _follow_up(self, ex: RunExecution, err: dict[str, Any]) -> NewRun | None:
        handler = ex.function.on_failure
        if handler is None:
            return None
        data = {
            "run_id": ex.run_id,
            "function_id": ex.function.id,
            "error": {k: err[k] for k in ("type", "message") if k in err},
            "event": {"name": ex.event.name, "data": ex.event.data, "id": ex.event.id},
        }
        return self.factory.follow_up(handler, ex.run_id, data, ex.claim.subject)

    async def execute(self, claim: Claim) -> str:
        """Execute a claimed run until it ends or suspends (in the loop thread)."""
        ex = await self.io(self._prepare, claim)
        if ex is None:
            return "skipped"
        self.active[ex.run_id] = ex
        observer, status, outcome = self.observer, "lost", Outcome("lost")
        if observer is not None:
            observer.run_begin(ex)
        try:
            if ex.function.is_async:
                outcome = await self.body_async(ex)
            else:
                loop = asyncio.get_running_loop()
                outcome = await loop.run_in_executor(self.body_pool, self.body_sync, ex)
            status = await self.io(self._conclude, ex, outcome)
            return status
        except StoreError as exc:
            self._give_back(claim, exc)
            raise
        finally:
            self.active.pop(ex.run_id, None)
            if observer is not None:
                observer.run_end(ex, status, outcome.error)

    def execute_sync(self, claim: Claim) -> str:
        """Execute a claimed run in the calling thread (``Harness.run`` of a plain def)."""
        function = self.registry.get(claim.function_id)
        if function is not None and function.is_async:
            return asyncio.run_coroutine_threadsafe(self.execute(claim), self.loop).result()
        ex = self._prepare(claim)
        if ex is None:
            return "skipped"
        self.active[ex.run_id] = ex
        observer, status, outcome = self.observer, "lost", Outcome("lost")
        if observer is not None:
            observer.run_begin(ex)
        try:
            outcome = self.body_sync(ex)
            status = self._conclude(ex, outcome)
            return status
        except StoreError as exc:
            self._give_back(claim, exc)
            raise
        finally:
            self.active.pop(ex.run_id, None)
            if observer is not None:
                observer.run_end(ex, status, outcome.error)

    def _give_back(self, claim: Claim, exc: StoreError) -> None:
        """The store failed under a run (locked, full): release its lease so that it resumes
        from its last checkpoint, here or in another worker, once the store works again."""
        log.warning("run %s stopped by a store error; it will resume: %s", claim.run_id, exc)
        try:
            self.store.release(claim.run_id, claim.token, self.clock.now())
        except TetherError:
            self.stranded[claim.run_id] = claim.token

    # -- driving one run to its end (Harness.run) -------------------------------------------
    def drive(self, run_id: str, claim: Claim | None, timeout: float | None) -> str:
        """Execute ``run_id`` here whenever it is due, until it ends; return its status.

        Waits through sleeps and waits; another process may execute it meanwhile."""
        limit = None if timeout is None else time.monotonic() + timeout
        local: list[bool] = []
        while True:
            if claim is not None and (status := self.execute_sync(claim)) in ENDED:
                return status  # this process wrote the run's end: no need to read it
            with self.changed:
                seen = self.generation
            kind, value = self._drive_next(run_id, local, limit)
            claim = value if kind == "claim" else None
            if kind == "done":
                return str(value)
            if kind == "wait":
                with self.changed:
                    if self.generation == seen:
                        self.changed.wait(value)

    async def adrive(self, run_id: str, claim: Claim | None, timeout: float | None) -> str:
        """``drive`` as a coroutine on the engine's loop (``Harness.arun``)."""
        limit = None if timeout is None else time.monotonic() + timeout
        local: list[bool] = []
        waker = asyncio.Event()
        self.add_waker(waker)
        try:
            while True:
                if claim is not None and (status := await self.execute(claim)) in ENDED:
                    return status
                waker.clear()
                kind, value = self._drive_next(run_id, local, limit)
                claim = value if kind == "claim" else None
                if kind == "done":
                    return str(value)
                if kind == "wait":
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(waker.wait(), value)
        finally:
            self.remove_waker(waker)

    def _drive_next(self, run_id: str, local: list[bool], limit: float | None) -> tuple[str, Any]:
        """What a driver does next: ("done", status), ("claim", claim), ("again", None)
        or ("wait", seconds)."""
        state = self.store.run_status(run_id)
        if state is None:
            raise RunNotFound(run_id)
        status, due = state
        if status in TERMINAL_STATUSES:
            return "done", status
        now = self.clock.now()
        if not local:
            local.append(self.registry.get(self._function_of(run_id)) is not None)
        if local[0] and due is not None and due <= now and run_id not in self.active:
            claim = self.store.claim_run(run_id, self.owner, now, self.lease_ttl)
            if claim is not None:
                return "claim", claim
        if limit is not None and time.monotonic() >= limit:
            return "done", status
        if self.clock.auto_advance and due is not None and due > now and run_id not in self.active:
            self.clock.advance_to(due)
            return "again", None
        wait = 0.2
        if due is not None:
            wait = min(wait, max(0.001, due - now))
        if limit is not None:
            wait = min(wait, max(0.0, limit - time.monotonic()))
        return "wait", wait

    def _function_of(self, run_id: str) -> str:
        run = self.store.get_run(run_id)
        return run.function_id if run is not None else ""


def _settle(
    batch: list[tuple[str, int, StepWrite, asyncio.Future[bool | Fenced]]],
    results: list[bool | Fenced] | BaseException,
) -> None:
    """Resolve the futures of a committed (or failed) batch of checkpoints."""
    for index, (*_, future) in enumerate(batch):
        if future.done():
            continue
        if isinstance(results, BaseException):
            future.set_exception(results)
        else:
            future.set_result(results[index])


def _cancelled_error() -> dict[str, Any]:
    return {"type": "RunCancelled", "message": "cancelled by request"}


__all__ = ["Engine", "Outcome"]
