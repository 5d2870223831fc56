"""Harness: the one runtime object users hold. A facade over the registry, the run
factory, the event intake, the store and the engine (``tether.durable``), which it builds
and wires together; it holds no execution logic of its own."""

from __future__ import annotations

import asyncio
import os
import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, TypeVar, Unpack, overload

from tether.clock import Clock
from tether.codec import DEFAULT_MAX_OUTPUT_BYTES, dumps
from tether.durable.engine import Engine, EngineSettings
from tether.durable.function import FAILED_EVENT, DurableFunction
from tether.durable.handle import RunHandle
from tether.durable.intake import DEFAULT_MAX_EVENT_BYTES, DEFAULT_MAX_EVENTS_PER_SEND, Intake
from tether.durable.registry import FunctionOptions, Registry
from tether.durable.retention import (
    RETENTION_FN,
    RetentionPolicy,
    ages,
    keep_count,
    parse_policy,
    retention_function,
)
from tether.durable.retry import Retry
from tether.durable.runs import RunFactory, input_json, new_id
from tether.durable.spec import FunctionSpec
from tether.durable.worker import Worker
from tether.durations import Duration
from tether.errors import ConfigurationError, FunctionNotFound, RunNotFound, RunTimeout
from tether.flow.cron import on_cron
from tether.memory import DEFAULT_EMBEDDER, Memory, open_memory
from tether.records import TERMINAL_STATUSES, Event, Run, RunStatus
from tether.store import Store, open_store
from tether.store.base import NewRun
from tether.store.retention import KEEP_EXPERIMENTS, PruneResult, set_window_ttl
from tether.store.retention import prune as prune_store
from tether.store.sql import SQLStore
from tether.subjects.subject import Subject, sql_store

if TYPE_CHECKING:
    from tether.context.windows import ContextWindow

F = TypeVar("F", bound=Callable[..., Any])
DAY = 86400.0


class Harness:
    """Durable functions on a store. ``Harness()`` uses ``TETHER_STORE`` or
    ``sqlite:///.tether/tether.db``; ``Harness(store="postgresql://...")`` for many machines.

    ``durability="process"`` (default) survives any process crash; ``"power"`` also
    survives power loss, with concurrent checkpoints sharing an fsync. ``version`` names the
    code version recorded on each run (default: a hash of the registered functions).
    ``retention={"runs": "30d", ...}`` prunes each kind past its age from any worker, on a
    built-in cron function (``tether.durable.retention``).
    ``encryption_key`` (default ``TETHER_ENCRYPTION_KEY``) encrypts every payload at rest:
    a key from ``tether keygen``, or a key ring ``"NEW,OLD"`` for rotation.
    ``max_event_bytes`` and ``max_events_per_send`` bound what ``send`` accepts (the
    event's data as JSON; the events of one call): beyond them nothing is stored.
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
        retention: Mapping[str, Any] | None = None,
        embedder: str | None = DEFAULT_EMBEDDER,
        encryption_key: str | Sequence[str] | None = None,
        max_event_bytes: int = DEFAULT_MAX_EVENT_BYTES,
        max_events_per_send: int = DEFAULT_MAX_EVENTS_PER_SEND,
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
        if encryption_key is not None and isinstance(store, Store):
            raise ConfigurationError(
                "encryption_key= goes with a store URL; a store object already has its codec: "
                "open it with open_store(url, encryption_key=...)"
            )
        self._store_arg = store
        self._encryption_key = encryption_key
        self.durability = durability
        self.clock = clock or Clock()
        if embedder is not None and (not isinstance(embedder, str) or ":" not in embedder):
            raise ConfigurationError(
                f"embedder={embedder!r} is not a model: name one as 'provider:model' "
                f"(the default is {DEFAULT_EMBEDDER!r}), or None for full-text memory only"
            )
        self.embedder = embedder
        self._settings = EngineSettings(lease_ttl, heartbeat, max_output_bytes, embedder=embedder)
        self._registry = Registry(version)
        self._registry.on_register(self._registered)
        self._factory = RunFactory(self.clock, lambda: self._registry.version)
        self._intake = Intake(
            self._registry,
            self._factory,
            lambda: self.store,
            self.clock,
            max_event_bytes=max_event_bytes,
            max_events_per_send=max_events_per_send,
        )
        self._store: Store | None = None
        self._engine: Engine | None = None
        self._lock = threading.RLock()
        self._workers: list[Worker] = []
        self._breaker: Any = None
        self.retention: RetentionPolicy | None = None
        if retention is not None:
            self.retention = policy = parse_policy(retention)
            self._registry.register(
                retention_function(self, policy),
                {
                    "id": RETENTION_FN,
                    "trigger": on_cron(policy.schedule, skip_missed=True),
                    "retries": Retry(max_attempts=3),
                },
            )

    def __repr__(self) -> str:
        return f"Harness(store={self.store_url!r}, functions={sorted(self.functions)})"

    # -- store and engine (opened lazily) ------------------------------------------------
    @property
    def store_url(self) -> str:
        if isinstance(self._store_arg, Store):
            return self._store_arg.url
        from tether.store import DEFAULT_URL, redact_url

        return redact_url(self._store_arg or os.environ.get("TETHER_STORE") or DEFAULT_URL)

    @property
    def store(self) -> Store:
        """The store, opened (and migrated) on first use."""
        if self._store is None:
            with self._lock:
                if self._store is None:
                    if isinstance(self._store_arg, Store):
                        store = self._store_arg
                    else:
                        store = open_store(
                            self._store_arg,
                            durability=self.durability,
                            encryption_key=self._encryption_key,
                        )
                    if self._registry.functions:
                        store.register_functions(self._registry.describe(), self.clock.now())
                    self._store = store
        return self._store

    @property
    def engine(self) -> Engine:
        """The engine executing this process's runs (started on first use)."""
        if self._engine is None:
            with self._lock:
                if self._engine is None:
                    self._engine = Engine(
                        self.store,
                        self._registry,
                        self._factory,
                        self._intake,
                        self.clock,
                        self._settings,
                        lambda: self.circuit_breaker,
                    )
        return self._engine

    # -- long-term memory -------------------------------------------------------------------
    def memory(self, subject: str) -> Memory:
        """The long-term memory of ``subject`` (blocking methods, ``a``-prefixed coroutine
        twins); embedded with this harness's ``embedder``."""
        mem = open_memory(self.store, subject, embedder=self.embedder, clock=self.clock)
        assert isinstance(mem, Memory)
        return mem

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
        return self._registry.version

    @property
    def functions(self) -> Mapping[str, DurableFunction]:
        """The functions registered in this process, by id (read-only)."""
        return MappingProxyType(self._registry.functions)

    @property
    def lease_ttl(self) -> float:
        return self._settings.lease_ttl

    @property
    def heartbeat(self) -> float:
        return self._settings.heartbeat

    @property
    def max_output_bytes(self) -> int:
        return self._settings.max_output_bytes

    # -- registration ----------------------------------------------------------------------
    @overload
    def function(self, fn: F, /) -> DurableFunction: ...

    @overload
    def function(
        self, fn: None = None, /, **options: Unpack[FunctionOptions]
    ) -> Callable[[F], DurableFunction]: ...

    def function(
        self, fn: Callable[..., Any] | None = None, /, **options: Unpack[FunctionOptions]
    ) -> Any:
        """Register a durable function: ``@th.function(trigger=tether.on_event("x"))``.

        ``async def`` functions get a ``tether.Context``; plain ``def`` functions a
        ``tether.SyncContext`` and run on a worker thread. The options are those of
        ``tether.durable.registry.FunctionOptions`` (DESIGN section 1)."""

        def register(func: Callable[..., Any]) -> DurableFunction:
            return self._registry.register(func, options)

        return register(fn) if fn is not None else register

    def _registered(self, fdef: DurableFunction) -> None:
        if self._store is not None:
            self._store.register_functions([fdef.describe()], self.clock.now())

    def _spec(self, fn: Any) -> FunctionSpec:
        """A function registered here, or (by id) one another process registered."""
        try:
            return self._registry.resolve(fn)
        except FunctionNotFound:
            if isinstance(fn, str):
                spec = self._intake.remote_spec(fn)
                if spec is not None:
                    spec.require_plannable()
                    return spec
                raise FunctionNotFound(
                    f"no function {fn!r} is registered in this process or in the store "
                    f"{self.store_url}; registered here: {sorted(self.functions)}. Start a "
                    "worker that registers it (or check the id)."
                ) from None
            raise

    # -- events ---------------------------------------------------------------------------
    def send(self, events: Event | dict[str, Any] | Iterable[Any]) -> list[str]:
        """Persist events, start the runs they trigger and wake the runs waiting for them,
        in one transaction synced to disk. Returns the event ids. A repeated id is a no-op.

        Runs of functions that other processes registered are planned here from their
        stored descriptions, with all their controls."""
        rows = self._intake.rows(events)
        self._intake.accept(rows)
        return [r.id for r in rows]

    async def asend(self, events: Any) -> list[str]:
        """Async version of ``send``."""
        return await asyncio.to_thread(self.send, events)

    # -- starting runs -------------------------------------------------------------------
    def _create(self, fn: Any, data: Any, run_id: str | None, claim: bool) -> tuple[str, Any]:
        spec = self._spec(fn)
        run = self._factory.invoked(spec, input_json(data), run_id)
        now = self.clock.now()
        owner = None
        if claim:
            if not isinstance(spec, DurableFunction):
                raise FunctionNotFound(
                    f"function {spec.id!r} is registered by another process only: "
                    "Harness.run executes in this process. Use enqueue() and wait on the "
                    "handle, or register the function here."
                )
            owner = self.engine.owner
        rid, _created, got = self.store.create_run(run, now, owner=owner, ttl=self.lease_ttl)
        return rid, got

    def enqueue(self, fn: Any, data: Any = None, *, run_id: str | None = None) -> RunHandle:
        """Start a run for a worker to execute; return its handle at once. ``fn`` may be the
        id of a function that only other processes register (a producer process).

        A caller-chosen ``run_id`` makes this idempotent: a second call returns the first run."""
        rid, _ = self._create(fn, data, run_id, claim=False)
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
        rid, claim = self._create(fn, data, run_id, claim=True)
        status = self.engine.drive(rid, claim, timeout)
        if status not in TERMINAL_STATUSES:
            raise RunTimeout(
                f"run {rid} did not finish within {timeout}s; it goes on (status {status}): "
                f"wait on tether.RunHandle(harness, {rid!r}) or `tether show {rid}`"
            )
        return RunHandle(self, rid).result(timeout=0)

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
        spec = self._plain_local(fn)
        if spec is None:  # store reads or user key callables may run: create on a thread
            rid, claim = await asyncio.to_thread(self._create, fn, data, run_id, True)
            new = None
        else:  # a plain registered function: create, execute and read on the loop
            rid, claim = "", None
            new = self._factory.invoked(spec, input_json(data), run_id)
        future = asyncio.run_coroutine_threadsafe(
            self._arun_on_loop(new, rid, claim, timeout), engine.loop
        )
        rid, status, outcome = await asyncio.wrap_future(future)
        if status not in TERMINAL_STATUSES:
            raise RunTimeout(
                f"run {rid} did not finish within {timeout}s; it goes on (status {status})"
            )
        return outcome()

    def _plain_local(self, fn: Any) -> DurableFunction | None:
        """``fn``'s registered function when it has no idempotency key or flow control
        (creating its run calls no user code and reads nothing first), else None."""
        try:
            spec = self._registry.resolve(fn)
        except FunctionNotFound:
            return None
        return None if spec.idempotency is not None or spec.has_flow else spec

    async def _arun_on_loop(
        self, new: NewRun | None, rid: str, claim: Any, timeout: float | None
    ) -> tuple[str, str, Any]:
        """``arun``'s part on the engine loop: one hop there and back for the whole run."""
        engine = self.engine
        if new is not None:
            rid, _, claim = await engine.io(
                self.store.create_run, new, self.clock.now(), engine.owner, self.lease_ttl
            )
        status = await engine.adrive(rid, claim, timeout)
        handle = RunHandle(self, rid)
        outcome = await engine.io(handle._outcome) if status in TERMINAL_STATUSES else None
        return rid, status, outcome

    # -- reading and operating ---------------------------------------------------------------
    def get_run(self, run_id: str) -> Run:
        """A run with its steps and every attempt; ``RunNotFound`` for an unknown id."""
        run = self.store.get_run(run_id)
        if run is None:
            raise RunNotFound(run_id)
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
        """Cancel a run. A run executing now stops at its next step boundary. Returns the
        run's status: ``cancelled``, ``running`` (it stops at its next step boundary) or
        the status it had already ended with."""
        status = self.store.request_cancel(run_id, self.clock.now())
        if status is None:
            raise RunNotFound(run_id)
        if status == "running" and self._engine is not None:
            self._engine.cancel_local(run_id)
        return RunStatus(status)

    def replay(self, run_id: str, from_step: str | None = None) -> RunHandle:
        """Fork a new run of the same function and input, linked to ``run_id``.

        Steps recorded before ``from_step`` are reused; ``from_step`` and everything after
        it execute again (the fix-and-rerun loop). Without ``from_step`` all steps re-run."""
        original = self.get_run(run_id)
        new = self._factory.replay(
            self._registry.get(original.function_id),
            original.function_id,
            original.event_name or "",
            dumps(original.input or {}),
            run_id,
            original.subject,
        )
        rid = self.store.fork(run_id, from_step, new, self.clock.now())
        return RunHandle(self, rid)

    def prune(
        self,
        older_than: Duration | Mapping[str, Duration],
        *,
        dry_run: bool = False,
        keep_experiments: int = KEEP_EXPERIMENTS,
        progress: Callable[[str, int, int], None] | None = None,
    ) -> PruneResult:
        """Delete what is older than ``older_than`` (a duration for every kind, or a mapping
        of kind to duration): finished runs with their steps, events no live run came from,
        finished experiments (the latest ``keep_experiments`` of each evaluation and
        baselines stay), online scores, LangGraph checkpoints, expired breaker records,
        superseded memory versions, context window items (see README, Retention).
        Event ids seen in the last 24 h are kept for deduplication. Returns the counts per
        kind (``result["runs"]``, ``result["steps"]``...; ``result.bytes`` per kind);
        ``dry_run`` only counts. Batches are short, so workers keep going meanwhile."""
        cutoffs = {kind: self.clock.now() - age for kind, age in ages(older_than).items()}
        store = self.store
        if not isinstance(store, SQLStore):
            raise ConfigurationError(f"the store {self.store_url} has no retention")
        return prune_store(
            store,
            cutoffs,
            self.clock.now(),
            dry_run=dry_run,
            keep_experiments=keep_count(keep_experiments),
            progress=progress,
        )

    def vacuum(self) -> dict[str, Any]:
        """Shrink the store after a large prune: SQLite gives free pages back to the file
        system (incremental vacuum; the first time on an older file, one full VACUUM),
        PostgreSQL runs ``VACUUM (ANALYZE)`` on the pruned tables. See README, Retention."""
        vacuum: Callable[[], dict[str, Any]] | None = getattr(self.store, "vacuum", None)
        if vacuum is None:
            raise ConfigurationError(f"the store {self.store_url} cannot be vacuumed")
        return vacuum()

    def context(
        self,
        key: str,
        *,
        model: str | None = None,
        budget: int | None = None,
        system: str | None = None,
        subject: str | None = None,
        memory: bool = False,
        summarizer: Any = None,
        extract: bool = False,
        ttl: Duration | None = None,
    ) -> ContextWindow:
        """The context window ``key`` (``ContextWindow``): the same key reopens the same log,
        in any process. Needs ``model`` (whose context window sets the budget) or
        ``budget``. Inside a durable function use ``ctx.context(...)``. ``ttl`` (e.g.
        ``"90d"``) is the window's own retention age: pruning clears it once it has been
        untouched that long, whatever age the prune is given (README, Retention)."""
        from tether.context.windows import ContextWindow, open_state

        options = dict(
            model=model,
            budget=budget,
            system=system,
            subject=subject,
            memory=memory,
            summarizer=summarizer,
            extract=extract,
        )
        # the engine's observer when it runs (tracing); no engine is started for a window
        state = open_state(self.store, key, options, engine=self._engine, embedder=self.embedder)
        if ttl is not None:
            set_window_ttl(sql_store(self.store), key, ttl, create=True, subject=subject)
        return ContextWindow(state)

    # -- subjects (DESIGN 4b) ------------------------------------------------------------------
    def subject(self, subject_id: str) -> Subject:
        """A subject (an end user, a tenant): its memory, preferences, windows, ``export()``
        and ``forget()``. Created on first use."""
        subject = self._subject(subject_id)
        sql_store(self.store).ensure_subject(subject.id)
        return subject

    async def asubject(self, subject_id: str) -> Subject:
        """Async version of ``subject``."""
        return await asyncio.to_thread(self.subject, subject_id)

    def _subject(self, subject_id: str) -> Subject:
        """A handle on a subject that writes nothing (lookups: ``Subject.kept()``)."""
        return Subject(
            subject_id,
            sql_store(self.store),
            clock=self.clock,
            memory=self.memory,
            cancel_local=self._cancel_local,
        )

    def _cancel_local(self, run_id: str) -> None:
        if self._engine is not None:
            self._engine.cancel_local(run_id)

    def subjects(self) -> list[str]:
        """Every subject the store keeps something about (created, or owning memories,
        windows, runs or events), sorted."""
        store = sql_store(self.store)
        return sorted(set(store.list_subjects()) | set(store.run_subjects()))

    async def asubjects(self) -> list[str]:
        """Async version of ``subjects``."""
        return await asyncio.to_thread(self.subjects)

    def worker(self, concurrency: int = 10, poll_interval: float = 0.2) -> Worker:
        """A worker executing this harness's functions; ``start()``, ``run()`` or ``with``."""
        worker = Worker(self.engine, concurrency=concurrency, poll_interval=poll_interval)
        self._workers.append(worker)
        return worker

    def check_replay(self, limit: int = 100) -> list[dict[str, Any]]:
        """Replay recorded runs against the current code; report each divergence."""
        from tether.durable.replay import check_runs

        return check_runs(self.engine, limit)


__all__ = ["FAILED_EVENT", "Harness", "new_id"]
