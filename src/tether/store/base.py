"""The Store interface every backend implements, and the rows it exchanges.

A store keeps events, runs, steps and attempts. Every write that belongs to a running
run is *fenced*: it carries the run's lease token and is dropped when another worker has
taken the run over, so a worker that lost its lease can commit nothing for that run.
"""

from __future__ import annotations

import abc
import contextlib
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from tether.errors import Fenced as Fenced  # re-exported: the backends raise it
from tether.errors import WouldBlock
from tether.records import Run
from tether.store.payloads import IDENTITY, PayloadCodec
from tether.store.queries import RunQuery


@dataclass(slots=True)
class EventRow:
    id: str
    name: str
    data: str  # JSON text
    ts: float


@dataclass(slots=True)
class FlowPlan:
    """Flow-control decisions to take when a run is created (keys already evaluated)."""

    concurrency: list[tuple[str, int]] = field(default_factory=list)  # (key, limit), <= 2
    hold: bool = False  # the concurrency slots are kept through sleeps and waits
    singleton: tuple[str, str] | None = None  # (key, mode)
    throttle: tuple[str, int, float] | None = None  # (key, limit, period)
    rate: tuple[str, int, float] | None = None  # (key, limit, period)
    debounce: tuple[str, float, float | None] | None = None  # (key, period, max_wait)
    batch: tuple[str, int, float] | None = None  # (key, max_size, timeout)
    priority: float = 0.0
    cancel_waits: list[tuple[str, str | None, str | None, float | None]] = field(
        default_factory=list
    )  # (event, match path, match value JSON, timeout)

    @property
    def delays_start(self) -> bool:
        """True when the run may not start at once (so it must not be claimed at creation)."""
        return bool(
            self.concurrency
            or self.singleton
            or self.throttle
            or self.rate
            or self.debounce
            or self.batch
        )


@dataclass(slots=True)
class NewRun:
    id: str
    function_id: str
    event_name: str
    input: str  # JSON text of the trigger's data
    event_id: str | None
    event_ts: float
    due_at: float
    version: str | None = None
    parent_id: str | None = None
    parent_step: str | None = None
    replay_of: str | None = None
    idempotency_key: str | None = None
    timeout_s: float | None = None
    status: str = "queued"
    reason: str | None = None
    flow: FlowPlan | None = None
    subject: str | None = None  # whose data this run is (DESIGN 4b)


@dataclass(slots=True)
class Claim:
    """A run this process now holds the lease of."""

    run_id: str
    function_id: str
    token: int
    event_name: str
    input: str
    event_id: str | None
    event_ts: float
    version: str | None
    deadline_at: float | None
    cancel_requested: bool
    created_at: float
    started_at: float
    batch_events: str | None = None
    subject: str | None = None


@dataclass(slots=True)
class StepRow:
    step_id: str
    seq: int
    kind: str
    status: str  # completed | failed | sleeping | waiting
    output: str | None = None
    error: str | None = None
    wake_at: float | None = None
    failed_attempts: int = 0
    child_id: str | None = None


@dataclass(slots=True)
class StepWrite:
    step_id: str
    seq: int
    kind: str
    status: str
    started_at: float
    ended_at: float | None = None
    output: str | None = None
    error: str | None = None
    wake_at: float | None = None
    wait_event: str | None = None
    wait_match: str | None = None
    wait_value: str | None = None
    wait_if: str | None = None
    child_id: str | None = None
    # run in the checkpoint's transaction (``fn(tx)``): a context window's reply append
    also: Any = None


@dataclass(slots=True)
class AttemptWrite:
    step_id: str
    number: int
    started_at: float
    ended_at: float
    error_type: str
    error_message: str
    traceback: str


@dataclass(slots=True)
class Accepted:
    event_id: str
    duplicate: bool
    run_ids: list[str] = field(default_factory=list)


# Plans the runs a newly accepted event triggers; runs inside the accepting transaction.
Planner = Callable[[EventRow], list[NewRun]]


class Store(abc.ABC):
    """Durable storage for tether. Backends: SQLite (``sqlite:///path``), PostgreSQL."""

    url: str
    durability: str
    # Every payload column is written and read through it (``payloads.py``).
    codec: PayloadCodec = IDENTITY
    # True when every write is a short local commit that may run on an event loop (SQLite
    # in process durability); else the engine makes its store calls from I/O threads.
    loop_safe: bool = False

    @contextlib.contextmanager
    def nowait(self) -> Iterator[None]:
        """Writes of this thread inside the block never wait for a lock: they raise
        ``WouldBlock`` instead (backends without a fast local path always raise it)."""
        raise WouldBlock()
        yield  # pragma: no cover

    # -- lifecycle ---------------------------------------------------------------------
    @abc.abstractmethod
    def migrate(self) -> int:
        """Bring the schema up to date; return the schema version."""

    @abc.abstractmethod
    def close(self) -> None: ...

    def add_listener(self, listener: Callable[[], None]) -> None:
        """Call ``listener`` after a commit in this process made runs due."""
        self._listeners().append(listener)

    def _listeners(self) -> list[Callable[[], None]]:
        existing: list[Callable[[], None]] | None = self.__dict__.get("_listener_list")
        if existing is None:
            existing = []
            self.__dict__["_listener_list"] = existing
        return existing

    def notify(self) -> None:
        for listener in list(self._listeners()):
            listener()

    # -- functions ---------------------------------------------------------------------
    @abc.abstractmethod
    def register_functions(self, rows: Sequence[dict[str, Any]], now: float) -> None: ...

    @abc.abstractmethod
    def registered_functions(self) -> list[dict[str, Any]]: ...

    # -- events and run creation ------------------------------------------------------
    @abc.abstractmethod
    def accept(self, events: Sequence[EventRow], plan: Planner, now: float) -> list[Accepted]:
        """Persist events (a seen id is a no-op), create the runs they trigger and wake
        the runs waiting for them, all in one synced transaction."""

    @abc.abstractmethod
    def create_run(
        self, run: NewRun, now: float, owner: str | None = None, ttl: float = 0.0
    ) -> tuple[str, bool, Claim | None]:
        """Create a run (or find the existing one with this id or idempotency key).

        With ``owner`` a newly created run is claimed by it at once.
        Returns (run id, created, claim)."""

    @abc.abstractmethod
    def fork(self, run_id: str, from_step: str | None, new: NewRun, now: float) -> str: ...

    # -- claiming and leases ------------------------------------------------------------
    @abc.abstractmethod
    def claim(
        self,
        owner: str,
        limit: int,
        function_ids: Sequence[str],
        now: float,
        ttl: float,
        keyed: bool = False,
        exclude: Sequence[str] = (),
    ) -> list[Claim]:
        """Lease up to ``limit`` due runs. ``keyed``: some of these functions have
        concurrency limits, which the claim must respect. ``exclude``: the runs this
        process is executing now, whatever their lease says (never claimed twice by it)."""

    @abc.abstractmethod
    def schedule_cron(
        self,
        function_id: str,
        ticks: Callable[[float], list[float]],
        make: Callable[[float], NewRun],
        now: float,
        skip_late: float | None = None,
    ) -> tuple[list[str], float]:
        """Create the runs of a cron function's due ticks (and the next one), exactly once
        across workers; return the ids created and the next tick already scheduled.

        ``skip_late``: when the tick already scheduled passed more than this many seconds
        ago (no scheduler saw it in time: no worker ran), its run is ``skipped`` unless it
        started (``on_cron(..., skip_missed=True)``)."""

    @abc.abstractmethod
    def claim_run(self, run_id: str, owner: str, now: float, ttl: float) -> Claim | None: ...

    @abc.abstractmethod
    def next_due(self, function_ids: Sequence[str]) -> float | None: ...

    @abc.abstractmethod
    def renew(self, owner: str, run_ids: Sequence[str], until: float) -> list[str]:
        """Extend ``owner``'s leases on ``run_ids``; return ids of runs asked to cancel."""

    @abc.abstractmethod
    def release(self, run_id: str, token: int, now: float) -> None:
        """Give a lease back so another worker can take the run at once."""

    # -- execution (all fenced) -------------------------------------------------------
    @abc.abstractmethod
    def load_steps(self, run_id: str) -> dict[str, StepRow]: ...

    @abc.abstractmethod
    def save_step(self, run_id: str, token: int, step: StepWrite) -> bool:
        """Write a step; return True when the run was asked to cancel. Raises Fenced."""

    def save_steps(self, items: Sequence[tuple[str, int, StepWrite]]) -> list[bool | Fenced]:
        """Write checkpoints of several runs at once (one transaction where the backend
        can); per item, the cancel flag of ``save_step`` or the ``Fenced`` it raised."""
        out: list[bool | Fenced] = []
        for run_id, token, step in items:
            try:
                out.append(self.save_step(run_id, token, step))
            except Fenced as exc:
                out.append(exc)
        return out

    @abc.abstractmethod
    def resolve_wait(self, run_id: str, token: int, step_id: str, now: float) -> bool:
        """Time out a waiting step (output null) unless an event resolved it first.
        Returns True when this call resolved it."""

    @abc.abstractmethod
    def save_attempt(self, run_id: str, token: int, attempt: AttemptWrite) -> None: ...

    @abc.abstractmethod
    def start_child(
        self, run_id: str, token: int, step: StepWrite, child: NewRun, now: float
    ) -> str: ...

    @abc.abstractmethod
    def suspend(
        self,
        run_id: str,
        token: int,
        status: str,
        due_at: float | None,
        blocked: Sequence[str],
        now: float,
    ) -> None: ...

    @abc.abstractmethod
    def finish(
        self,
        run_id: str,
        token: int | None,
        status: str,
        output: str | None,
        error: str | None,
        now: float,
        follow_up: NewRun | None = None,
    ) -> bool:
        """End a run (completed, failed, cancelled), resolve a parent waiting on it and
        create the follow-up run (on_failure). ``token=None`` skips fencing."""

    # -- operations -------------------------------------------------------------------
    @abc.abstractmethod
    def request_cancel(self, run_id: str, now: float) -> str | None:
        """Cancel a run that is not executing; flag an executing one. Returns the status."""

    @abc.abstractmethod
    def get_run(self, run_id: str) -> Run | None: ...

    @abc.abstractmethod
    def run_status(self, run_id: str) -> tuple[str, float | None] | None:
        """(status, due_at) of a run, cheaply."""

    @abc.abstractmethod
    def run_result(self, run_id: str) -> tuple[str, str | None, str | None] | None:
        """(status, output JSON, error JSON) of a run."""

    @abc.abstractmethod
    def list_runs(
        self,
        function_id: str | None = None,
        status: str | None = None,
        limit: int = 100,
        before: str | None = None,
    ) -> list[Run]: ...

    @abc.abstractmethod
    def runs_for_check(self, function_ids: Sequence[str], limit: int) -> list[str]: ...

    @abc.abstractmethod
    def prune(self, before: float, events_before: float) -> dict[str, int]:
        """Delete finished runs that ended before ``before`` and events received before
        ``events_before``."""

    @abc.abstractmethod
    def recent_events(self, name: str, since: float) -> list[EventRow]: ...

    @abc.abstractmethod
    def kv_get(self, key: str) -> str | None: ...

    @abc.abstractmethod
    def kv_set(self, key: str, value: str) -> None: ...

    # -- reads of the run audit (shared SQL in tether/audit/queries.py) --------------------
    @abc.abstractmethod
    def iter_rows(self, sql: str, params: Sequence[Any] = (), batch: int = 5000) -> Iterator[Any]:
        """Stream the rows of one read-only statement (written with ``?`` parameters),
        fetched ``batch`` at a time: memory stays flat whatever the result's size."""

    # -- dashboard reads (shared SQL in store/queries.py) ----------------------------------
    @abc.abstractmethod
    def query_runs(self, query: RunQuery) -> list[Run]:
        """Runs matching the dashboard's filters, newest first (no steps)."""

    @abc.abstractmethod
    def run_stats(
        self, since: float, limit: int
    ) -> tuple[list[tuple[str, str, float | None]], dict[str, int]]:
        """(function_id, status, duration) of the latest ``limit`` runs created since
        ``since``, and failed attempts per function over the same runs."""

    @abc.abstractmethod
    def list_events(
        self, limit: int, before: str | None = None, name: str | None = None
    ) -> list[tuple[EventRow, float, str | None]]:
        """Events newest first, with their received time and flow-control decisions (JSON);
        ``before``: the last event id of the previous page."""
