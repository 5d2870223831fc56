"""Harness: the one runtime object. Configuration, the function registry, and the calls
that send events, start runs and read them back."""

from __future__ import annotations

import asyncio
import hashlib
import inspect
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Sequence
from datetime import UTC, datetime
from typing import Any, TypeVar, overload

from pydantic import BaseModel

from tether.clock import Clock
from tether.codec import DEFAULT_MAX_OUTPUT_BYTES, dumps, loads
from tether.durable.engine import Engine
from tether.durable.function import (
    FAILED_EVENT,
    INVOKED_EVENT,
    DurableFunction,
    EventTrigger,
    check_idempotency,
    normalise_triggers,
    source_hash,
)
from tether.durable.handle import RunHandle
from tether.durable.retry import Retry
from tether.durable.worker import Worker
from tether.durations import Duration, seconds
from tether.errors import (
    ConfigurationError,
    FunctionNotFound,
    InvalidEventError,
    RunTimeout,
    TetherError,
)
from tether.flow.cron import CRON_EVENT, CronTrigger
from tether.flow.expr import evaluate
from tether.flow.keys import evaluate_key
from tether.flow.plan import check_flow, flow_plan
from tether.records import TERMINAL_STATUSES, Event, Run, RunStatus
from tether.store import Store, open_store
from tether.store.base import Accepted, EventRow, NewRun

F = TypeVar("F", bound=Callable[..., Any])
DAY = 86400.0

_FLOW_ARGS = ("concurrency", "singleton", "throttle", "rate_limit", "debounce", "priority", "batch")


def new_id() -> str:
    """A run or event id: time-ordered prefix, random suffix."""
    return f"{int(time.time() * 1000):012x}{uuid.uuid4().hex[:20]}"


class Harness:
    """Durable functions on a store. ``Harness()`` uses ``TETHER_STORE`` or
    ``sqlite:///.tether/tether.db``; ``Harness(store="postgresql://...")`` for many machines.

    ``durability="process"`` (default) survives any process crash; ``"power"`` also
    survives power loss, with concurrent checkpoints sharing an fsync. ``version`` names the
    code version recorded on each run (default: a hash of the registered functions).
    """

    def __init__(
        self,
        store: str | Store | None = None,
        *,
        durability: str = "process",
        version: str | None = None,
        clock: Clock | None = None,
        lease_ttl: float = 2.0,
        heartbeat: float = 0.5,
        max_output_bytes: int = DEFAULT_MAX_OUTPUT_BYTES,
    ) -> None:
        if durability not in ("process", "power"):
            raise ConfigurationError(
                f"durability={durability!r} is not a mode: use 'process' (the default) or "
                "'power' (every checkpoint on disk before the next step)"
            )
        if heartbeat >= lease_ttl:
            raise ConfigurationError(
                f"heartbeat ({heartbeat}s) must be shorter than lease_ttl ({lease_ttl}s)"
            )
        self._store_arg = store
        self.durability = durability
        self._version = version
        self.clock = clock or Clock()
        self.lease_ttl = lease_ttl
        self.heartbeat = heartbeat
        self.max_output_bytes = max_output_bytes
        self.functions: dict[str, DurableFunction] = {}
        self._by_event: dict[str, list[tuple[DurableFunction, EventTrigger]]] = {}
        self._store: Store | None = None
        self._engine: Engine | None = None
        self._lock = threading.RLock()
        self._workers: list[Worker] = []
        self._code_version: str | None = None
        self._breaker: Any = None

    def __repr__(self) -> str:
        return f"Harness(store={self.store_url!r}, functions={sorted(self.functions)})"

    # -- store and engine (opened lazily) ------------------------------------------------
    @property
    def store_url(self) -> str:
        if isinstance(self._store_arg, Store):
            return self._store_arg.url
        import os

        from tether.store import DEFAULT_URL, redact_url

        return redact_url(self._store_arg or os.environ.get("TETHER_STORE") or DEFAULT_URL)

    @property
    def store(self) -> Store:
        if self._store is None:
            with self._lock:
                if self._store is None:
                    if isinstance(self._store_arg, Store):
                        store = self._store_arg
                    else:
                        store = open_store(self._store_arg, durability=self.durability)
                    if self.functions:
                        store.register_functions(
                            [f.describe() for f in self.functions.values()], self.clock.now()
                        )
                    self._store = store
        return self._store

    @property
    def engine(self) -> Engine:
        if self._engine is None:
            with self._lock:
                if self._engine is None:
                    self._engine = Engine(self)
        return self._engine

    def close(self) -> None:
        """Stop workers, the engine and the store connections."""
        for worker in list(self._workers):
            worker.stop(timeout=5)
        if self._engine is not None:
            self._engine.close()
            self._engine = None
        if self._store is not None and not isinstance(self._store_arg, Store):
            self._store.close()
        self._store = None

    def __enter__(self) -> Harness:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def circuit_breaker(self) -> Any:
        """The LLM circuit breaker of this harness: its state lives in the store, so every
        worker on the store shares it."""
        if self._breaker is None:
            from tether.llm import CircuitBreaker, KVCircuitStore

            self._breaker = CircuitBreaker(KVCircuitStore(self.store), clock=self.clock.now)
        return self._breaker

    @property
    def version(self) -> str:
        """The code version recorded on new runs."""
        if self._version is not None:
            return self._version
        if self._code_version is None:
            digest = hashlib.sha256()
            for fid in sorted(self.functions):
                digest.update(f"{fid}:{self.functions[fid].source_hash};".encode())
            self._code_version = digest.hexdigest()[:12]
        return self._code_version

    # -- registration ----------------------------------------------------------------------
    @overload
    def function(self, fn: F, /) -> DurableFunction: ...

    @overload
    def function(
        self,
        fn: None = None,
        /,
        *,
        id: str | None = None,
        trigger: Any = None,
        retries: Retry | None = None,
        timeout: Duration | None = None,
        concurrency: Any = None,
        singleton: Any = None,
        throttle: Any = None,
        rate_limit: Any = None,
        debounce: Any = None,
        priority: Any = None,
        batch: Any = None,
        idempotency: Any = None,
        cancel_on: Sequence[Any] = (),
        on_failure: Any = None,
    ) -> Callable[[F], DurableFunction]: ...

    def function(
        self,
        fn: Callable[..., Any] | None = None,
        /,
        *,
        id: str | None = None,
        trigger: Any = None,
        retries: Retry | None = None,
        timeout: Duration | None = None,
        concurrency: Any = None,
        singleton: Any = None,
        throttle: Any = None,
        rate_limit: Any = None,
        debounce: Any = None,
        priority: Any = None,
        batch: Any = None,
        idempotency: Any = None,
        cancel_on: Sequence[Any] = (),
        on_failure: Any = None,
    ) -> Any:
        """Register a durable function: ``@th.function(trigger=tether.on_event("x"))``.

        ``async def`` functions get a ``tether.Context``; plain ``def`` functions a
        ``tether.SyncContext`` and run on a worker thread."""

        def register(func: Callable[..., Any]) -> DurableFunction:
            return self._register(
                func,
                id=id,
                trigger=trigger,
                retries=retries,
                timeout=timeout,
                idempotency=idempotency,
                on_failure=on_failure,
                flow=dict(
                    concurrency=concurrency,
                    singleton=singleton,
                    throttle=throttle,
                    rate_limit=rate_limit,
                    debounce=debounce,
                    priority=priority,
                    batch=batch,
                    cancel_on=cancel_on,
                ),
            )

        return register(fn) if fn is not None else register

    def _register(
        self,
        func: Callable[..., Any],
        *,
        id: str | None,
        trigger: Any,
        retries: Retry | None,
        timeout: Duration | None,
        idempotency: Any,
        on_failure: Any,
        flow: dict[str, Any] | None = None,
    ) -> DurableFunction:
        if isinstance(func, DurableFunction):
            func = func.fn
        if not callable(func):
            raise ConfigurationError(f"@th.function needs a function, got {func!r}")
        fid = id or func.__name__
        if not isinstance(fid, str) or not fid or "/" in fid:
            raise ConfigurationError(
                f"function id {fid!r} is not valid: use a non-empty string without '/'"
            )
        triggers, crons = normalise_triggers(trigger)
        check_idempotency(idempotency, fid)
        controls = check_flow(flow or {})
        if retries is not None and not isinstance(retries, Retry):
            raise ConfigurationError(f"retries= takes tether.Retry(...), got {retries!r}")
        timeout_s = None if timeout is None else seconds(timeout, "timeout")
        with self._lock:
            self._check_new_id(fid, func)
            handler: DurableFunction | None = None
            if on_failure is not None:
                handler = self._failure_handler(fid, on_failure)
            fdef = DurableFunction(
                id=fid,
                fn=func,
                is_async=inspect.iscoroutinefunction(func),
                triggers=triggers,
                retries=retries or Retry(),
                timeout=timeout_s,
                idempotency=idempotency,
                on_failure=handler,
                source_hash=source_hash(func),
                crons=crons,
                **controls,
            )
            self.functions[fid] = fdef
            for trig in triggers:
                self._by_event.setdefault(trig.event, []).append((fdef, trig))
            self._code_version = None
            if self._store is not None:
                self._store.register_functions([fdef.describe()], self.clock.now())
        return fdef

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
            return self._register(
                handler,
                id=f"{fid}.on_failure",
                trigger=None,
                retries=None,
                timeout=None,
                idempotency=None,
                on_failure=None,
            )
        raise ConfigurationError(f"on_failure= takes a function, got {handler!r}")

    def resolve_function(self, fn: Any) -> DurableFunction:
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

    # -- events -------------------------------------------------------------------------
    def event_rows(self, events: Any, default_id: str | None = None) -> list[EventRow]:
        """Validate events (an Event, a dict, or a list of them) into rows to store."""
        items = events if isinstance(events, list | tuple) else [events]
        if not items:
            raise InvalidEventError("no events to send: pass an Event or a list of them")
        rows = []
        now = self.clock.now()
        for index, item in enumerate(items):
            event = self._coerce_event(item, index)
            try:
                data = dumps(event.data)
            except (TypeError, ValueError) as exc:
                raise InvalidEventError(
                    f"event {event.name!r}: data cannot be stored as JSON ({exc}); send JSON "
                    "values only (convert datetimes and models first)"
                ) from None
            ts = now if event.ts is None else _epoch(event.ts)
            eid = event.id or (f"{default_id}:{index}" if default_id else new_id())
            rows.append(EventRow(eid, event.name, data, ts))
        return rows

    @staticmethod
    def _coerce_event(item: Any, index: int) -> Event:
        if isinstance(item, Event):
            return item
        if isinstance(item, dict):
            unknown = set(item) - {"name", "data", "id", "ts"}
            name = item.get("name")
            data = item.get("data", {})
            problem = None
            if unknown:
                problem = f"unknown keys {sorted(unknown)}"
            elif name is None:
                problem = "no 'name'"
            elif not isinstance(name, str) or not name:
                problem = f"'name' must be a non-empty string, got {name!r}"
            elif not isinstance(data, dict):
                problem = f"'data' is a {type(data).__name__}, not a dict"
            if problem:
                raise InvalidEventError(
                    f"event #{index} {str(item)[:120]} is not an event ({problem}): expected "
                    "{'name': str, 'data': dict, 'id': optional str, 'ts': optional datetime}"
                )
            try:
                return Event(str(name), data, item.get("id"), item.get("ts"))
            except Exception as exc:
                raise InvalidEventError(f"event #{index} is not valid: {exc}") from None
        raise InvalidEventError(
            f"event #{index} is a {type(item).__name__}, not an event: send "
            "tether.Event(name, data) or {'name': ..., 'data': {...}}"
        )

    def send(self, events: Event | dict[str, Any] | Iterable[Any]) -> list[str]:
        """Persist events, start the runs they trigger and wake the runs waiting for them,
        in one transaction synced to disk. Returns the event ids. A repeated id is a no-op."""
        rows = self.event_rows(list(events) if _is_iterable(events) else events)
        self.accept_rows(rows)
        return [r.id for r in rows]

    async def asend(self, events: Any) -> list[str]:
        """Async version of ``send``."""
        return await asyncio.to_thread(self.send, events)

    def accept_rows(self, rows: list[EventRow]) -> list[Accepted]:
        store = self.store
        remote = self._remote_triggers(store, {r.name for r in rows})
        return store.accept(rows, lambda ev: self._plan(ev, remote), self.clock.now())

    def _remote_triggers(self, store: Store, names: set[str]) -> list[dict[str, Any]]:
        """Functions registered in the store by other processes, for these event names."""
        if not any(name not in self._by_event for name in names) and self.functions:
            return []
        out = []
        for row in store.registered_functions():
            if row["id"] in self.functions:
                continue
            for trig in row["triggers"]:
                if trig["event"] in names:
                    out.append({**row, "trigger": trig})
        return out

    def _plan(self, row: EventRow, remote: list[dict[str, Any]]) -> list[NewRun]:
        event: Event | None = None
        runs = []
        for fdef, trig in self._by_event.get(row.name, []):
            event = event or Event(row.name, loads(row.data), row.id)
            if trig.where is not None and not _where(trig.where, event):
                continue
            key = None
            if fdef.idempotency is not None:
                key = dumps(
                    evaluate_key(fdef.idempotency, event, function_id=fdef.id, what="idempotency")
                )
            new = self._new_run(fdef.id, row, key, fdef.timeout)
            new.flow = flow_plan(fdef, event)
            runs.append(new)
        for reg in remote:
            if reg["trigger"]["event"] != row.name:
                continue
            event = event or Event(row.name, loads(row.data), row.id)
            where = reg["trigger"].get("where")
            if where and not evaluate(where, event=_doc(event)):
                continue
            key = None
            if reg.get("idempotency"):
                key = dumps(
                    evaluate_key(
                        reg["idempotency"], event, function_id=reg["id"], what="idempotency"
                    )
                )
            runs.append(self._new_run(reg["id"], row, key, None))
        return runs

    def _new_run(
        self, function_id: str, row: EventRow, key: str | None, timeout: float | None
    ) -> NewRun:
        return NewRun(
            id=new_id(),
            function_id=function_id,
            event_name=row.name,
            input=row.data,
            event_id=row.id,
            event_ts=row.ts,
            due_at=max(row.ts, self.clock.now()),
            version=self.version,
            idempotency_key=key,
            timeout_s=timeout,
        )

    def cron_run(self, fdef: DurableFunction, cron: CronTrigger, name: str, tick: float) -> NewRun:
        """The run of one cron tick: its id is derived from the tick, so it exists once."""
        now = self.clock.now()
        data = {"cron": cron.expression, "tz": cron.tz, "tick": _iso(tick)}
        return NewRun(
            id=f"cron:{name}:{int(tick)}",
            function_id=fdef.id,
            event_name=CRON_EVENT,
            input=dumps(data),
            event_id=None,
            event_ts=tick,
            due_at=max(tick, now) if tick <= now else tick,
            version=self.version,
            timeout_s=fdef.timeout,
            flow=flow_plan(fdef, Event(CRON_EVENT, data)),
        )

    # -- starting runs -------------------------------------------------------------------
    def input_json(self, data: Any) -> str:
        if data is None:
            return "{}"
        if isinstance(data, BaseModel):
            data = data.model_dump(mode="json")
        if not isinstance(data, dict):
            raise InvalidEventError(
                f"run data must be a JSON object (dict) or a pydantic model, got "
                f"{type(data).__name__}: wrap it, e.g. {{'value': ...}}"
            )
        try:
            return dumps(data)
        except (TypeError, ValueError) as exc:
            raise InvalidEventError(
                f"run data cannot be stored as JSON: {exc}; pass JSON values only (convert "
                "datetimes, sets and objects first) or a pydantic model"
            ) from None

    def _create(
        self, fn: Any, data: Any, run_id: str | None, claim: bool
    ) -> tuple[DurableFunction, str, Any]:
        fdef = self.resolve_function(fn)
        payload = self.input_json(data)
        now = self.clock.now()
        run = NewRun(
            id=run_id or new_id(),
            function_id=fdef.id,
            event_name=INVOKED_EVENT,
            input=payload,
            event_id=None,
            event_ts=now,
            due_at=now,
            version=self.version,
            timeout_s=fdef.timeout,
        )
        key = None
        if fdef.idempotency is not None:
            event = Event(INVOKED_EVENT, loads(payload))
            key = dumps(
                evaluate_key(fdef.idempotency, event, function_id=fdef.id, what="idempotency")
            )
            run.idempotency_key = key
        if fdef.has_flow:
            run.flow = flow_plan(fdef, Event(INVOKED_EVENT, loads(payload)))
        engine = self.engine
        rid, _created, got = self.store.create_run(
            run, now, owner=engine.owner if claim else None, ttl=engine.lease_ttl
        )
        return fdef, rid, got

    def enqueue(self, fn: Any, data: Any = None, *, run_id: str | None = None) -> RunHandle:
        """Start a run for a worker to execute; return its handle at once.

        A caller-chosen ``run_id`` makes this idempotent: a second call returns the first run."""
        _, rid, _ = self._create(fn, data, run_id, claim=False)
        return RunHandle(self, rid)

    async def aenqueue(self, fn: Any, data: Any = None, *, run_id: str | None = None) -> RunHandle:
        """Async version of ``enqueue``."""
        return await asyncio.to_thread(self.enqueue, fn, data, run_id=run_id)

    def run(
        self,
        fn: Any,
        data: Any = None,
        *,
        run_id: str | None = None,
        timeout: float | None = None,
    ) -> Any:
        """Run a function durably in this process and return its output.

        Blocks (also inside a running event loop) through sleeps and waits; raises
        ``RunFailed`` for a failed run; ``timeout`` bounds only this wait (``RunTimeout``)."""
        _, rid, claim = self._create(fn, data, run_id, claim=True)
        handle = RunHandle(self, rid)
        status = self.engine.drive(rid, claim, timeout)
        if status not in TERMINAL_STATUSES:
            raise RunTimeout(
                f"run {rid} did not finish within {timeout}s; it goes on (status {status}): "
                f"wait on tether.RunHandle(harness, {rid!r}) or `tether show {rid}`"
            )
        return handle.result(timeout=0)

    async def arun(
        self,
        fn: Any,
        data: Any = None,
        *,
        run_id: str | None = None,
        timeout: float | None = None,
    ) -> Any:
        """Async version of ``run``: the run executes on the engine's event loop."""
        engine = self.engine

        async def drive() -> tuple[str, str]:
            _, rid, claim = self._create(fn, data, run_id, claim=True)
            return rid, await engine.adrive(rid, claim, timeout)

        future = asyncio.run_coroutine_threadsafe(drive(), engine.loop)
        rid, status = await asyncio.wrap_future(future)
        if status not in TERMINAL_STATUSES:
            raise RunTimeout(
                f"run {rid} did not finish within {timeout}s; it goes on (status {status})"
            )
        return RunHandle(self, rid).result(timeout=0)

    # -- reading and operating ---------------------------------------------------------------
    def get_run(self, run_id: str) -> Run:
        """A run with its steps and every attempt."""
        run = self.store.get_run(run_id)
        if run is None:
            raise TetherError(f"run {run_id} does not exist")
        return run

    def list_runs(
        self,
        function_id: str | None = None,
        status: RunStatus | str | None = None,
        limit: int = 100,
        before: str | None = None,
    ) -> list[Run]:
        """Runs, newest first (without their steps). Page with ``before=<last run id>``."""
        if status is not None:
            try:
                status = RunStatus(status).value
            except ValueError:
                raise ConfigurationError(
                    f"status {status!r} is not a run status: use one of "
                    f"{[s.value for s in RunStatus]}"
                ) from None
        return self.store.list_runs(function_id, status, limit, before)

    def cancel(self, run_id: str) -> RunStatus:
        """Cancel a run. A run executing now stops at its next step boundary."""
        status = self.store.request_cancel(run_id, self.clock.now())
        if status is None:
            raise TetherError(f"run {run_id} does not exist")
        if status == "running" and self._engine is not None:
            self._engine.cancel_local(run_id)
        return RunStatus(status)

    def replay(self, run_id: str, from_step: str | None = None) -> RunHandle:
        """Fork a new run of the same function and input, linked to ``run_id``.

        Steps recorded before ``from_step`` are reused; ``from_step`` and everything after
        it execute again (the fix-and-rerun loop). Without ``from_step`` all steps re-run."""
        original = self.get_run(run_id)
        now = self.clock.now()
        new = NewRun(
            id=new_id(),
            function_id=original.function_id,
            event_name=original.event_name or INVOKED_EVENT,
            input=dumps(original.input or {}),
            event_id=None,
            event_ts=now,
            due_at=now,
            version=self.version,
            replay_of=run_id,
            timeout_s=self.functions[original.function_id].timeout
            if original.function_id in self.functions
            else None,
        )
        rid = self.store.fork(run_id, from_step, new, now)
        return RunHandle(self, rid)

    def prune(self, older_than: Duration) -> dict[str, int]:
        """Delete finished runs that ended more than ``older_than`` ago (and old events;
        event ids seen in the last 24 h are kept for deduplication)."""
        now = self.clock.now()
        before = now - seconds(older_than, "older_than")
        return self.store.prune(before, min(before, now - DAY))

    def worker(self, concurrency: int = 10, poll_interval: float = 0.2) -> Worker:
        """A worker executing this harness's functions; ``start()``, ``run()`` or ``with``."""
        worker = Worker(self, concurrency=concurrency, poll_interval=poll_interval)
        self._workers.append(worker)
        return worker

    def check_replay(self, limit: int = 100) -> list[dict[str, Any]]:
        """Replay recorded runs against the current code; report each divergence."""
        from tether.durable.replay import check_runs

        return check_runs(self, limit)


def _place(fn: Callable[..., Any]) -> str:
    return f"{getattr(fn, '__module__', '?')}.{getattr(fn, '__qualname__', repr(fn))}"


def _epoch(ts: datetime) -> float:
    if ts.tzinfo is None:
        ts = ts.replace(tzinfo=UTC)
    return ts.timestamp()


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).isoformat()


def _is_iterable(value: Any) -> bool:
    return isinstance(value, list | tuple | set) or (inspect.isgenerator(value))


def _doc(event: Event) -> dict[str, Any]:
    return {"name": event.name, "data": event.data, "id": event.id}


def _where(where: Any, event: Event) -> bool:
    if isinstance(where, str):
        return evaluate(where, event=_doc(event))
    try:
        return bool(where(event))
    except Exception as exc:
        raise InvalidEventError(
            f"the where= filter failed on event {event.name!r}: {type(exc).__name__}: {exc}"
        ) from exc


__all__ = ["FAILED_EVENT", "Harness", "new_id"]
