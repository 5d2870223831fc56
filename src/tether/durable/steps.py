"""The step API: ``ctx.step.run / sleep / sleep_until / wait_for_event / invoke / send_event``.

``AsyncSteps`` serves ``async def`` functions (its methods are coroutines); ``SyncSteps``
serves plain functions running on a worker thread (its methods block). Both share the
bookkeeping of ``RunExecution``; only the waiting differs.
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
import inspect
import types
import uuid as uuid_module
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from datetime import UTC, datetime
from typing import Any

from tether.codec import dumps, encode_result, loads
from tether.durable.execution import CURRENT_STEP, RunExecution
from tether.durable.retry import NO_RETRY, Retry
from tether.durable.runs import input_json
from tether.durable.signals import Suspend
from tether.durations import Duration, seconds
from tether.errors import ConfigurationError, RunTimeout, StepFailed, WouldBlock
from tether.flow.expr import compile_expr, evaluate
from tether.flow.keys import event_dict, match_value, read_path
from tether.records import Event
from tether.store.base import StepRow, StepWrite
from tether.store.rows import event_json

_PLAIN = frozenset({int, float, str, bool, dict, list, type(None)})


def is_async_callable(fn: Any) -> bool:
    """``inspect.iscoroutinefunction`` with a fast path for plain functions."""
    if type(fn) is types.FunctionType:
        return bool(fn.__code__.co_flags & inspect.CO_COROUTINE)
    return inspect.iscoroutinefunction(fn)


def _event_from_output(text: str | None) -> Event | None:
    value = loads(text) if text else None
    if value is None:
        return None
    ts = value.get("ts")
    return Event(
        value["name"],
        value.get("data") or {},
        value.get("id"),
        datetime.fromtimestamp(ts, UTC) if ts else None,
    )


class _StepsBase:
    def __init__(
        self,
        ex: RunExecution,
        retries: Retry | None = None,
        timeout: float | None = None,
        also: Callable[[Any, str], Any] | None = None,
    ) -> None:
        self._ex = ex
        self._retries = retries
        self._timeout = timeout
        # ``also(value, step_id)``: a ``fn(tx)`` run in the transaction of the step's checkpoint
        self._also = also

    @property
    def idempotency_key(self) -> str:
        """Stable per run and step: pass it to external APIs so that a re-executed step
        does not repeat its side effect."""
        current = CURRENT_STEP.get()
        if current is None:
            raise ConfigurationError(
                "ctx.step.idempotency_key is only defined inside a step callable"
            )
        return f"{current[0]}:{current[1]}"

    def _policy(self) -> Retry:
        return self._retries or self._ex.function.retries

    # -- shared pieces of sleep / wait / invoke ---------------------------------------------
    def _sleep_until(self, step_id: str, wake: float) -> None:
        ex = self._ex
        sid = ex.next_id(step_id)
        row = ex.lookup(sid, "sleep")
        now = ex.clock.now()
        if row is not None:
            if row.status == "completed":
                return
            wake = row.wake_at or now
            seq = row.seq
            ex.boundary()
        else:
            seq = ex.begin_new(sid, "sleep")
        if wake <= now:
            ex.save(StepWrite(sid, seq, "sleep", "completed", now, now, output="null"))
            return
        if row is None:
            ex.save(StepWrite(sid, seq, "sleep", "sleeping", now, wake_at=wake))
        raise ex.suspend(sid, wake, waiting=False)

    def _wait(
        self,
        step_id: str,
        event: str,
        match: str | None,
        if_: str | None,
        timeout: Duration | None,
        lookback: Duration | None,
    ) -> Event | None:
        ex = self._ex
        sid = ex.next_id(step_id)
        row = ex.lookup(sid, "wait")
        now = ex.clock.now()
        if row is not None:
            if row.status == "completed":
                return _event_from_output(row.output)
            ex.boundary()
            if row.wake_at is not None and row.wake_at <= now:
                if ex.fenced(lambda: ex.store.resolve_wait(ex.run_id, ex.token, sid, now)):
                    row.status, row.output = "completed", "null"
                    return None
                fresh = ex.store.load_steps(ex.run_id)[sid]
                ex.memo[sid] = fresh
                return _event_from_output(fresh.output)
            raise ex.suspend(sid, row.wake_at, waiting=True)
        if if_ is not None:
            compile_expr(if_)
        seq = ex.begin_new(sid, "wait")
        value = None if match is None else dumps(match_value(match, ex.event))
        if lookback is not None:
            found = self._look_back(event, match, value, if_, now - seconds(lookback, "lookback"))
            if found is not None:
                ex.save(StepWrite(sid, seq, "wait", "completed", now, now, output=found))
                return _event_from_output(found)
        wake = None if timeout is None else now + seconds(timeout, "wait_for_event timeout")
        ex.save(
            StepWrite(
                sid,
                seq,
                "wait",
                "waiting",
                now,
                wake_at=wake,
                wait_event=event,
                wait_match=match,
                wait_value=value,
                wait_if=if_,
            )
        )
        raise ex.suspend(sid, wake, waiting=True)

    def _look_back(
        self, name: str, match: str | None, value: str | None, if_: str | None, since: float
    ) -> str | None:
        ex = self._ex
        trigger = event_dict(ex.event)
        for row in reversed(ex.store.recent_events(name, since)):
            data = loads(row.data)
            doc = {"name": row.name, "data": data, "id": row.id}
            if match is not None and dumps(read_path(match, doc)) != value:
                continue
            if if_ is not None and not evaluate(if_, event=trigger, async_=doc):
                continue
            return event_json(row.name, data, row.id, row.ts)
        return None

    def _invoke(self, step_id: str, function: Any, data: Any, timeout: Duration | None) -> Any:
        ex = self._ex
        sid = ex.next_id(step_id)
        row = ex.lookup(sid, "invoke")
        now = ex.clock.now()
        target = ex.engine.target(function)
        if row is not None:
            if row.status in ("completed", "failed"):
                return self._child_result(row)
            ex.boundary()
            if row.wake_at is not None and row.wake_at <= now:
                fresh = ex.store.load_steps(ex.run_id)[sid]
                if fresh.status in ("completed", "failed"):
                    ex.memo[sid] = fresh
                    return self._child_result(fresh)
                err = {"type": "RunTimeout", "message": f"child run {row.child_id} timed out"}
                ex.save(
                    StepWrite(
                        sid,
                        row.seq,
                        "invoke",
                        "failed",
                        now,
                        now,
                        error=dumps(err),
                        child_id=row.child_id,
                    )
                )
                raise StepFailed(sid, "RunTimeout", err["message"])
            raise ex.suspend(sid, row.wake_at, waiting=True)
        payload = input_json(data)
        seq = ex.begin_new(sid, "invoke")
        wake = None if timeout is None else now + seconds(timeout, "invoke timeout")
        child = ex.engine.factory.child(target, payload, ex.run_id, sid, ex.claim.subject)
        child_id = child.id
        write = StepWrite(sid, seq, "invoke", "waiting", now, wake_at=wake, child_id=child_id)
        ex.fenced(lambda: ex.store.start_child(ex.run_id, ex.token, write, child, now))
        ex.memo[sid] = StepRow(sid, seq, "invoke", "waiting", wake_at=wake, child_id=child_id)
        raise ex.suspend(sid, wake, waiting=True)

    def _child_result(self, row: StepRow) -> Any:
        if row.status == "failed":
            err = loads(row.error) if row.error else {}
            raise StepFailed(row.step_id, err.get("type", "RunFailed"), err.get("message", ""))
        return loads(row.output) if row.output else None

    def _send(self, step_id: str, events: Any) -> list[str]:
        ex = self._ex
        sid = ex.next_id(step_id)
        row = ex.lookup(sid, "send")
        if row is not None:
            return list(ex.replay_value(row))
        seq = ex.begin_new(sid, "send")
        now = ex.clock.now()
        rows = ex.engine.intake.rows(events, default_id=f"{ex.run_id}:{sid}")
        ex.engine.intake.accept(rows)
        ids = [r.id for r in rows]
        ex.save(StepWrite(sid, seq, "send", "completed", now, now, output=dumps(ids)))
        return ids

    def _recorded(self, kind: str, make: Callable[[], Any]) -> Any:
        ex = self._ex
        sid = ex.next_id(kind)
        row = ex.lookup(sid, kind)
        if row is not None:
            return loads(row.output) if row.output else None
        seq = ex.begin_new(sid, kind)
        value = make()
        now = ex.clock.now()
        ex.save(StepWrite(sid, seq, kind, "completed", now, now, output=dumps(value)))
        return value

    def now(self) -> datetime:
        """The current time, recorded: a replay sees the same value."""
        stamp = self._recorded("now", self._ex.clock.now)
        return datetime.fromtimestamp(stamp, UTC)

    def uuid(self) -> str:
        """A random id, recorded: a replay sees the same value."""
        return str(self._recorded("uuid", lambda: str(uuid_module.uuid4())))

    def _llm_call(self, model: Any, messages: Any, output: Any, kwargs: dict[str, Any]) -> Any:
        """The step callable of ``ctx.step.llm``: one reliable LLM call (``tether.llm``),
        annotated so that its checkpointed response is rebuilt with a typed ``.parsed``."""
        from tether.llm import LLMResponse, acomplete

        kwargs.setdefault("circuit", self._ex.engine.breaker())
        observer = self._ex.engine.observer
        if observer is not None:
            kwargs["on_attempt"] = observer.llm_hook(messages, kwargs, kwargs.get("on_attempt"))

        async def call() -> Any:
            return await acomplete(model, messages, output=output, **kwargs)

        call.__annotations__["return"] = LLMResponse[output] if output is not None else LLMResponse
        return call

    def _llm_step(
        self, model: Any, messages: Any, output: Any, context: Any, options: dict[str, Any]
    ) -> tuple[Any, Any]:
        """The steps object and callable of ``ctx.step.llm``: with ``context=``, the
        window builds the messages and the reply is appended with the checkpoint."""
        after = None
        if context is not None:
            from tether.context.windows import llm_with_context

            call, after = llm_with_context(context, self._ex, model, messages, output, options)
        else:
            call = self._llm_call(model, messages, output, options)
        return type(self)(self._ex, NO_RETRY, None, after), call

    def _encode(self, value: Any, sid: str, fn: Any) -> str:
        ex = self._ex
        return encode_result(
            value,
            what=lambda: f"step {sid!r} of function {ex.function.id!r}",
            fn=fn,
            limit=ex.engine.max_output_bytes,
        )

    def _start_run(
        self, step_id: str, fn: Any
    ) -> tuple[str, int, int, Any] | tuple[str, None, None, Any]:
        """Return (sid, seq, attempt, replayed): seq None when the value is replayed."""
        ex = self._ex
        if not ex.threaded and not ex.unvisited and not ex.check_only and type(step_id) is str:
            # The hot path: a new step at the end of the history, one thread.
            counts = ex.counts
            n = counts.get(step_id, 0)
            counts[step_id] = n + 1
            sid = f"{step_id}:{n}" if n else step_id
            if step_id and sid not in ex.memo:
                ex.boundary()
                seq = ex.next_seq
                ex.next_seq = seq + 1
                ex.visit_order.append(sid)
                return sid, seq, 0, None
            counts[step_id] = n
        sid = ex.next_id(step_id)
        row = ex.lookup(sid, "run")
        if row is not None:
            if row.status in ("completed", "failed"):
                return sid, None, None, ex.replay_value(row, fn)
            ex.boundary()
            if row.wake_at is not None and row.wake_at > ex.clock.now():
                raise ex.suspend(sid, row.wake_at, waiting=False)
            return sid, row.seq, row.failed_attempts, None
        return sid, ex.begin_new(sid, "run"), 0, None

    def _after_failure(
        self, sid: str, seq: int, attempt: int, started: float, exc: BaseException
    ) -> float:
        """Record the failure; return the delay before retrying in process, or raise."""
        ex = self._ex
        delay = ex.failure(sid, seq, attempt, started, exc, self._policy())
        if delay is None:
            raise StepFailed(sid, type(exc).__name__, str(exc)) from exc
        ex.boundary()
        if delay > ex.engine.inline_retry_max and not ex.clock.virtual:
            wake = ex.clock.now() + delay
            ex.save(StepWrite(sid, seq, "run", "sleeping", started, wake_at=wake))
            ex.memo[sid].failed_attempts = attempt + 1
            raise ex.suspend(sid, wake, waiting=False)
        return delay


class AsyncSteps(_StepsBase):
    """Step methods for ``async def`` functions."""

    def options(self, *, retries: Retry | None = None, timeout: float | None = None) -> AsyncSteps:
        """Per-step options: ``await ctx.step.options(retries=Retry(2)).run(...)``."""
        return AsyncSteps(self._ex, retries, timeout)

    async def run(self, step_id: str, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Any:
        """Run ``fn(*args, **kwargs)`` as a durable step and return its (memoized) result."""
        sid, seq, attempt, replayed = self._start_run(step_id, fn)
        if seq is None or attempt is None:
            return replayed
        ex = self._ex
        if ex.engine.observer is not None:  # tracing on: spans around each attempt
            fn = ex.engine.observer.wrap_step(ex, sid, attempt, fn, self._policy())
        loop = asyncio.get_running_loop()
        ex.step_entered()  # coroutines of one run share the engine loop's thread
        try:
            while True:
                started = ex.clock.now()
                token = CURRENT_STEP.set((ex.run_id, sid, attempt))
                try:
                    if is_async_callable(fn):
                        awaitable = fn(*args, **kwargs)
                    else:
                        call = functools.partial(
                            contextvars.copy_context().run, fn, *args, **kwargs
                        )
                        awaitable = loop.run_in_executor(ex.engine.step_pool, call)
                    if self._timeout is not None:
                        value = await asyncio.wait_for(awaitable, self._timeout)
                    else:
                        value = await awaitable
                    if type(value) not in _PLAIN and inspect.isawaitable(value):
                        value = await value
                    encoded = self._encode(value, sid, fn)
                except Exception as exc:
                    delay = self._after_failure(sid, seq, attempt, started, exc)
                    await ex.clock.asleep(delay)
                    attempt += 1
                    continue
                finally:
                    CURRENT_STEP.reset(token)
                write = StepWrite(sid, seq, "run", "completed", started, ex.clock.now(), encoded)
                engine = ex.engine
                if self._also is not None:  # its own transaction, off the loop
                    write.also = self._also(value, sid)
                    await loop.run_in_executor(engine.io_pool, ex.save, write)
                elif loop is not engine.loop:
                    ex.save(write)
                elif len(engine.active) > 1 or not engine.store.loop_safe:
                    await ex.asave(write)  # shares a commit with the other runs in flight
                else:
                    try:  # a lone run commits inline, unless the file's lock is taken
                        with engine.store.nowait():
                            ex.save(write)
                    except WouldBlock:
                        await ex.asave(write)
                return value
        finally:
            ex.step_left()

    async def llm(
        self,
        step_id: str,
        *,
        model: Any,
        messages: Any = None,
        output: Any = None,
        context: Any = None,
        **options: Any,
    ) -> Any:
        """A reliable LLM call as a durable step (``tether.llm.acomplete`` options:
        ``tools``, ``fallbacks``, ``max_tokens``, ``deadline``, ...). The response is
        checkpointed: a replay never calls the model again. The call has its own retry
        policy (the classifier and the deadline), not the function's ``Retry``.

        ``context=window`` (from ``ctx.context``) builds the messages from the window for
        each model tried and appends the reply in the transaction of the checkpoint."""
        if context is not None:
            from tether.context.windows import acompact_before_call

            await acompact_before_call(context)
        steps, call = self._llm_step(model, messages, output, context, options)
        value = await steps.run(step_id, call)
        if context is not None:
            from tether.context.windows import aextract_after_call

            await aextract_after_call(context, model)
        return value

    async def _off_loop(self, fn: Callable[..., Any], *args: Any) -> Any:
        """Run a step whose store calls may wait (a synced commit, a PostgreSQL round trip,
        a locked file) on the engine's I/O threads, never on the event loop."""
        ex = self._ex
        ex.threaded = True  # bookkeeping shared with sibling coroutines takes its locks
        return await asyncio.get_running_loop().run_in_executor(ex.engine.io_pool, fn, *args)

    async def sleep(self, step_id: str, duration: Duration) -> None:
        """Sleep durably: the run is suspended (no thread, no slot) and resumed later."""
        wake = self._ex.clock.now() + seconds(duration, "sleep")
        await self._off_loop(self._sleep_until, step_id, wake)

    async def sleep_until(self, step_id: str, when: datetime) -> None:
        """Sleep durably until ``when`` (an aware datetime; naive means UTC)."""
        await self._off_loop(self._sleep_until, step_id, _epoch(when))

    async def wait_for_event(
        self,
        step_id: str,
        *,
        event: str,
        match: str | None = None,
        if_: str | None = None,
        timeout: Duration | None = None,
        lookback: Duration | None = None,
    ) -> Event | None:
        """Wait durably for an event; return it, or None after ``timeout``."""
        result: Event | None = await self._off_loop(
            self._wait, step_id, event, match, if_, timeout, lookback
        )
        return result

    async def invoke(
        self, step_id: str, *, function: Any, data: Any = None, timeout: Duration | None = None
    ) -> Any:
        """Run another function as a child run and return its output."""
        return await self._off_loop(self._invoke, step_id, function, data, timeout)

    async def send_event(self, step_id: str, events: Any) -> list[str]:
        """Send one or more events, exactly once for this run."""
        ids: list[str] = await self._off_loop(self._send, step_id, events)
        return ids


class SyncSteps(_StepsBase):
    """Step methods for plain ``def`` functions: they block the worker thread."""

    def options(self, *, retries: Retry | None = None, timeout: float | None = None) -> SyncSteps:
        """Per-step options: ``ctx.step.options(retries=Retry(2)).run(...)``."""
        return SyncSteps(self._ex, retries, timeout)

    def run(self, step_id: str, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Any:
        """Run ``fn(*args, **kwargs)`` as a durable step and return its (memoized) result."""
        sid, seq, attempt, replayed = self._start_run(step_id, fn)
        if seq is None or attempt is None:
            return replayed
        ex = self._ex
        if ex.engine.observer is not None:  # tracing on: spans around each attempt
            fn = ex.engine.observer.wrap_step(ex, sid, attempt, fn, self._policy())
        while True:
            started = ex.clock.now()
            token = CURRENT_STEP.set((ex.run_id, sid, attempt))
            try:
                value = self._call(fn, args, kwargs)
                encoded = self._encode(value, sid, fn)
            except Exception as exc:
                delay = self._after_failure(sid, seq, attempt, started, exc)
                ex.clock.sleep(delay)
                attempt += 1
                continue
            finally:
                CURRENT_STEP.reset(token)
            write = StepWrite(sid, seq, "run", "completed", started, ex.clock.now(), encoded)
            if self._also is not None:
                write.also = self._also(value, sid)
            ex.save(write)
            return value

    def _call(self, fn: Callable[..., Any], args: Any, kwargs: Any) -> Any:
        loop = self._ex.engine.loop
        if is_async_callable(fn):
            future = asyncio.run_coroutine_threadsafe(
                _with_timeout(fn(*args, **kwargs), self._timeout), loop
            )
            return future.result()
        if self._timeout is None:
            return fn(*args, **kwargs)
        call = functools.partial(contextvars.copy_context().run, fn, *args, **kwargs)
        try:
            return self._ex.engine.step_pool.submit(call).result(self._timeout)
        except FutureTimeout:
            raise TimeoutError(f"step callable ran over its timeout of {self._timeout}s") from None

    def llm(
        self,
        step_id: str,
        *,
        model: Any,
        messages: Any = None,
        output: Any = None,
        context: Any = None,
        **options: Any,
    ) -> Any:
        """A reliable LLM call as a durable step; see ``Context.step.llm``."""
        if context is not None:
            from tether.context.windows import compact_before_call

            compact_before_call(context)
        steps, call = self._llm_step(model, messages, output, context, options)
        value = steps.run(step_id, call)
        if context is not None:
            from tether.context.windows import extract_after_call

            extract_after_call(context, model)
        return value

    def sleep(self, step_id: str, duration: Duration) -> None:
        """Sleep durably: the run is suspended (no thread, no slot) and resumed later."""
        self._sleep_until(step_id, self._ex.clock.now() + seconds(duration, "sleep"))

    def sleep_until(self, step_id: str, when: datetime) -> None:
        """Sleep durably until ``when`` (an aware datetime; naive means UTC)."""
        self._sleep_until(step_id, _epoch(when))

    def wait_for_event(
        self,
        step_id: str,
        *,
        event: str,
        match: str | None = None,
        if_: str | None = None,
        timeout: Duration | None = None,
        lookback: Duration | None = None,
    ) -> Event | None:
        """Wait durably for an event; return it, or None after ``timeout``."""
        return self._wait(step_id, event, match, if_, timeout, lookback)

    def invoke(
        self, step_id: str, *, function: Any, data: Any = None, timeout: Duration | None = None
    ) -> Any:
        """Run another function as a child run and return its output."""
        return self._invoke(step_id, function, data, timeout)

    def send_event(self, step_id: str, events: Any) -> list[str]:
        """Send one or more events, exactly once for this run."""
        return self._send(step_id, events)

    def parallel(self, step_id: str, callables: Sequence[Callable[[], Any]]) -> list[Any]:
        """Run callables (each calling ``ctx.step.*``) concurrently; return their results.

        If some branches suspend (sleep, wait), the others still finish and checkpoint
        first; the run then suspends until every branch can go on.
        """
        if not callables:
            return []
        self._ex.threaded = True  # step bookkeeping takes its locks from now on
        with ThreadPoolExecutor(
            max_workers=min(len(callables), 16), thread_name_prefix=f"tether-{step_id}"
        ) as pool:
            futures = [pool.submit(contextvars.copy_context().run, c) for c in callables]
            outcomes: list[tuple[bool, Any]] = []
            for future in futures:
                try:
                    outcomes.append((True, future.result()))
                except BaseException as exc:
                    outcomes.append((False, exc))
        signals = [v for ok, v in outcomes if not ok and not isinstance(v, Exception)]
        suspends = [s for s in signals if isinstance(s, Suspend)]
        others = [s for s in signals if not isinstance(s, Suspend)]
        if others:
            raise others[0]
        if suspends:
            raise suspends[0]
        for ok, value in outcomes:
            if not ok:
                raise value
        return [value for _, value in outcomes]


async def _with_timeout(coro: Any, timeout: float | None) -> Any:
    if timeout is None:
        return await coro
    return await asyncio.wait_for(coro, timeout)


def _epoch(when: datetime) -> float:
    if not isinstance(when, datetime):
        raise ConfigurationError(f"sleep_until needs a datetime, got {type(when).__name__}")
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return when.timestamp()


__all__ = ["AsyncSteps", "RunTimeout", "SyncSteps"]
