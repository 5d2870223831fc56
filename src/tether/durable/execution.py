"""One execution of a run's body: memoized steps, step ids, checkpoints and divergence.

Each resume runs the body again from the top. Steps found in the recorded history return
their values at once; the first new step executes and is checkpointed before the body
goes on. This module holds the state both contexts share; ``steps.py`` holds the steps.
"""

from __future__ import annotations

import asyncio
import threading
import traceback
from collections.abc import Callable
from contextvars import ContextVar
from typing import TYPE_CHECKING, Any

from tether.codec import decode_result, dumps, loads
from tether.durable.signals import Cancel, LeaseLost, Suspend
from tether.errors import Fenced, LLMCallFailed, NonDeterminismError, RunTimeout, StepFailed
from tether.records import Event
from tether.store.base import AttemptWrite, Claim, StepRow, StepWrite

if TYPE_CHECKING:
    from tether.durable.engine import Engine
    from tether.durable.function import DurableFunction
    from tether.durable.retry import Retry

# (run id, step id, attempt) of the step executing in this task or thread.
CURRENT_STEP: ContextVar[tuple[str, str, int] | None] = ContextVar("tether_step", default=None)

MARKER_KINDS = frozenset({"patch"})


class CheckStop(BaseException):
    """check-replay reached the end of the recorded history: the run is consistent."""


class DeadlineExceeded(BaseException):
    """The function's timeout passed: the run fails with RunTimeout."""


def error_dict(exc: BaseException, step_id: str | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {
        "type": type(exc).__name__,
        "message": str(exc),
        "traceback": "".join(traceback.format_exception(exc)),
    }
    if step_id is not None:
        out["step"] = step_id
    if isinstance(exc, LLMCallFailed) and exc.attempts:
        # A failed LLM call's attempts (models, errors, waits, cost): what the run audit
        # reads for calls that never returned a response.
        out["attempts"] = [a.model_dump(mode="json") for a in exc.attempts]
    return out


class RunExecution:
    """State of one pass through a run's body."""

    def __init__(
        self,
        engine: Engine,
        claim: Claim,
        function: DurableFunction,
        memo: dict[str, StepRow],
        *,
        check_only: bool = False,
    ) -> None:
        self.engine = engine
        self.store = engine.store
        self.clock = engine.clock
        self.claim = claim
        self.run_id = claim.run_id
        self.token = claim.token
        self.function = function
        self.memo = memo
        self.check_only = check_only
        self.event = Event(claim.event_name, loads(claim.input), claim.event_id, None)
        self.events = [self.event]
        if claim.batch_events:
            self.events = [
                Event(e["name"], e.get("data") or {}, e.get("id"))
                for e in loads(claim.batch_events)
            ]
            self.event = self.events[0]
        self.recorded = sorted(
            (r for r in memo.values() if r.kind not in MARKER_KINDS), key=lambda r: r.seq
        )
        self.unvisited = {r.step_id for r in self.recorded}
        # Sequence numbers taken by steps that began but never checkpointed (a crash while
        # parallel steps ran): a resumed run may begin that many steps anew before the
        # recorded ones that came after them, in whatever order its branches now reach them.
        taken = {r.seq for r in memo.values()}
        self._holes = sorted(set(range(1, max(taken, default=0) + 1)) - taken)
        self._refilled = 0
        self.visit_order: list[str] = []
        self.counts: dict[str, int] = {}
        self.next_seq = max((r.seq for r in memo.values()), default=0) + 1
        self.lock = threading.Lock()
        self.threaded = False  # True once steps run on several threads (ctx.step.parallel)
        self.blocked: list[Suspend] = []
        self.cancel_requested = claim.cancel_requested
        self.lease_lost = False
        self.deadline = claim.deadline_at
        self.task: asyncio.Future[Any] | None = None
        self.inflight = 0  # async steps executing now (asyncio.gather)
        self._idle: asyncio.Event | None = None
        self.patches: dict[str, bool] = {}
        self.diverged: NonDeterminismError | None = None
        # context windows: writes made to each window key in this pass (their write numbers)
        self.window_writes: dict[str, int] = {}

    # -- async steps in flight ------------------------------------------------------------
    def step_entered(self) -> None:
        self.inflight += 1

    def step_left(self) -> None:
        self.inflight -= 1
        if self.inflight == 0 and self._idle is not None:
            self._idle.set()

    async def settled(self) -> None:
        """Return once no async step of this run is executing (siblings of a gather that
        kept running after the body ended checkpoint first)."""
        while self.inflight:
            self._idle = asyncio.Event()
            await self._idle.wait()
        self._idle = None

    # -- ids and history ------------------------------------------------------------------
    @property
    def replaying(self) -> bool:
        """True while recorded steps remain ahead: code outside steps is re-running."""
        return bool(self.unvisited)

    def next_id(self, base: str) -> str:
        if not isinstance(base, str) or not base:
            raise TypeError(f"a step id must be a non-empty string, got {base!r}")
        with self.lock:
            n = self.counts.get(base, 0)
            self.counts[base] = n + 1
        return base if n == 0 else f"{base}:{n}"

    def lookup(self, step_id: str, kind: str) -> StepRow | None:
        row = self.memo.get(step_id)
        if row is None:
            return None
        if row.kind != kind:
            self._diverge(step_id, kind, f"step {step_id!r} was a {row.kind!r} step")
        with self.lock:
            if step_id in self.unvisited:
                self.unvisited.discard(step_id)
                self.visit_order.append(step_id)
        return row

    def begin_new(self, step_id: str, kind: str) -> int:
        """Admit a step that has no record yet; return its sequence number."""
        if self.unvisited:
            with self.lock:
                lowest = min(self.memo[s].seq for s in self.unvisited)
                gaps = sum(1 for h in self._holes if h < lowest)
                admitted = self._refilled < gaps
                self._refilled += admitted
            if not admitted:
                self._diverge(step_id, kind, None)
        if self.check_only:
            raise CheckStop()
        self.boundary()
        with self.lock:
            seq = self.next_seq
            self.next_seq += 1
            self.visit_order.append(step_id)
        return seq

    def boundary(self) -> None:
        """A step boundary: honour cancellation, a lost lease and the function's timeout."""
        if self.lease_lost:
            raise LeaseLost(self.run_id)
        if self.cancel_requested:
            raise Cancel(self.run_id)
        if self.deadline is not None and self.clock.now() >= self.deadline:
            raise DeadlineExceeded(self.run_id)

    def _diverge(self, step_id: str, kind: str, detail: str | None) -> None:
        expected = [f"{r.kind}:{r.step_id}" for r in self.recorded]
        actual = [f"{self.memo[s].kind}:{s}" for s in self.visit_order] + [f"{kind}:{step_id}"]
        diff = []
        for i in range(max(len(expected), len(actual))):
            exp = expected[i] if i < len(expected) else None
            act = actual[i] if i < len(actual) else None
            if exp != act:
                diff.append({"position": i, "expected": exp, "actual": act})
        version = self.claim.version
        hint = (
            f"The run started on code version {version}; the code is now "
            f"{self.engine.registry.version}. Keep the old path for runs in flight with "
            "`if ctx.patched('change-name'): <new> else: <old>`, or let old runs finish "
            "before deploying. `tether check-replay APP` finds this before deploy."
        )
        if detail:
            hint = f"{detail}. {hint}"
        err = NonDeterminismError(self.run_id, self.function.id, diff[:10], hint)
        self.diverged = err
        raise err

    # -- values ---------------------------------------------------------------------------
    def replay_value(self, row: StepRow, fn: Any = None) -> Any:
        if row.status == "failed":
            err = loads(row.error) if row.error else {}
            raise StepFailed(row.step_id, err.get("type", "Error"), err.get("message", ""))
        return decode_result(row.output, fn)

    # -- writes (fenced) --------------------------------------------------------------------
    def save(self, write: StepWrite) -> None:
        try:
            cancel = self.store.save_step(self.run_id, self.token, write)
        except Fenced:
            self.lease_lost = True
            raise LeaseLost(self.run_id) from None
        self._saved(write, cancel)

    async def asave(self, write: StepWrite) -> None:
        """``save`` for coroutines on the engine loop: group-committed with the other runs'
        checkpoints of the same loop iteration."""
        result = await self.engine.save_async(self.run_id, self.token, write)
        if isinstance(result, Fenced):
            self.lease_lost = True
            raise LeaseLost(self.run_id)
        self._saved(write, result)

    def _saved(self, write: StepWrite, cancel: bool) -> None:
        """Remember a checkpoint written in this pass; note a cancellation it reported."""
        self.memo[write.step_id] = StepRow(
            write.step_id,
            write.seq,
            write.kind,
            write.status,
            write.output,
            write.error,
            write.wake_at,
            0,
            write.child_id,
        )
        if cancel:
            self.cancel_requested = True

    def save_attempt(self, attempt: AttemptWrite) -> None:
        try:
            self.store.save_attempt(self.run_id, self.token, attempt)
        except Fenced:
            self.lease_lost = True
            raise LeaseLost(self.run_id) from None

    def fenced(self, fn: Callable[[], Any]) -> Any:
        try:
            return fn()
        except Fenced:
            self.lease_lost = True
            raise LeaseLost(self.run_id) from None

    def suspend(self, step_id: str, wake_at: float | None, waiting: bool) -> Suspend:
        signal = Suspend(wake_at, step_id, waiting)
        with self.lock:
            self.blocked.append(signal)
        return signal

    def failure(
        self,
        step_id: str,
        seq: int,
        attempt: int,
        started: float,
        exc: BaseException,
        policy: Retry,
    ) -> float | None:
        """Record a failed attempt. Return the delay before the next attempt, or None when
        the step has failed for good (it is then checkpointed as failed)."""
        from tether.errors import NonRetriableError, RetryAfterError

        now = self.clock.now()
        info = error_dict(exc)
        self.save_attempt(
            AttemptWrite(
                step_id, attempt, started, now, info["type"], info["message"], info["traceback"]
            )
        )
        retriable = not isinstance(exc, NonRetriableError) and attempt + 1 < policy.max_attempts
        if not retriable:
            self.save(StepWrite(step_id, seq, "run", "failed", started, now, error=dumps(info)))
            return None
        if isinstance(exc, RetryAfterError):
            return exc.seconds
        return policy.delay(attempt + 1)

    def timeout_error(self) -> RunTimeout:
        return RunTimeout(
            f"run {self.run_id} of function {self.function.id!r} passed its timeout of "
            f"{self.function.timeout}s"
        )
