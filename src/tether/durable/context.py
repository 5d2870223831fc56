"""What a durable function receives: ``tether.Context`` (async) or ``tether.SyncContext``."""

from __future__ import annotations

import logging
from collections.abc import Callable
from contextvars import ContextVar
from typing import TYPE_CHECKING, Any

from tether.durable.execution import CURRENT_STEP, RunExecution
from tether.durable.steps import AsyncSteps, SyncSteps
from tether.records import Event
from tether.store.base import StepWrite
from tether.subjects.subject import AsyncSubject, Subject, sql_store

if TYPE_CHECKING:
    from tether.context.windows import AsyncContextWindow, ContextWindow
    from tether.memory import AsyncMemory, Memory, WriteKeys

_logger = logging.getLogger("tether.run")

# The context of the durable function body running in this task or thread: what
# integrations (``tether.integrations``) use to find the run they are called in.
CURRENT_CONTEXT: ContextVar[Context | SyncContext | None] = ContextVar(
    "tether_context", default=None
)


def current_context() -> Context | SyncContext | None:
    """The ``Context`` (or ``SyncContext``) of the durable function running in this task or
    thread, or None outside durable functions."""
    return CURRENT_CONTEXT.get()


class RunLogger:
    """``ctx.log``: a logger that carries the run id and stays quiet while replaying, so a
    resumed run does not repeat the lines it already logged."""

    def __init__(self, ex: RunExecution) -> None:
        self._ex = ex

    def _log(self, level: int, msg: str, *args: Any, **kwargs: Any) -> None:
        if self._ex.replaying or self._ex.check_only or not _logger.isEnabledFor(level):
            return
        extra = kwargs.pop("extra", None) or {}
        extra.update(run_id=self._ex.run_id, function_id=self._ex.function.id)
        _logger.log(level, msg, *args, extra=extra, stacklevel=3, **kwargs)

    def debug(self, msg: str, *args: Any, **kwargs: Any) -> None:
        self._log(logging.DEBUG, msg, *args, **kwargs)

    def info(self, msg: str, *args: Any, **kwargs: Any) -> None:
        self._log(logging.INFO, msg, *args, **kwargs)

    def warning(self, msg: str, *args: Any, **kwargs: Any) -> None:
        self._log(logging.WARNING, msg, *args, **kwargs)

    def error(self, msg: str, *args: Any, **kwargs: Any) -> None:
        self._log(logging.ERROR, msg, *args, **kwargs)

    def exception(self, msg: str, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("exc_info", True)
        self._log(logging.ERROR, msg, *args, **kwargs)


class _ContextBase:
    def __init__(self, ex: RunExecution) -> None:
        self._ex = ex
        self.log = RunLogger(ex)
        self._memory_writes: WriteKeys | None = None

    @property
    def run_id(self) -> str:
        return self._ex.run_id

    @property
    def function_id(self) -> str:
        return self._ex.function.id

    @property
    def event(self) -> Event:
        """The event that triggered this run."""
        return self._ex.event

    @property
    def events(self) -> list[Event]:
        """Every event of this run (one, unless the function batches events)."""
        return list(self._ex.events)

    @property
    def attempt(self) -> int:
        """0-based attempt number of the step now executing (0 outside steps)."""
        current = CURRENT_STEP.get()
        return 0 if current is None else current[2]

    def patched(self, name: str) -> bool:
        """A gate for code changes, as in Temporal: runs that reach this point for the first
        time take the new path (True); runs that passed it before the change keep the old
        one (False). Remove the gate once no old run is in flight."""
        ex = self._ex
        if name in ex.patches:
            return ex.patches[name]
        sid = f"patch:{name}"
        if sid in ex.memo:
            answer = True
        elif ex.replaying or ex.check_only:
            answer = False
        else:
            now = ex.clock.now()
            with ex.lock:
                seq = ex.next_seq
                ex.next_seq += 1
            ex.save(StepWrite(sid, seq, "patch", "completed", now, now, output="true"))
            answer = True
        ex.patches[name] = answer
        return answer

    def _window_state(self, key: str, options: dict[str, Any]) -> Any:
        from tether.context.windows import open_state

        return open_state(self._ex.store, key, options, ex=self._ex, engine=self._ex.engine)

    def _subject(self, subject_id: str, memory: Callable[[str], Any]) -> Subject:
        # Nothing is written here (no store call on the event loop, nothing to replay): a
        # subject's memories, preferences and runs make it known to the store.
        ex = self._ex
        return Subject(
            subject_id,
            sql_store(ex.store),
            clock=ex.clock,
            memory=memory,
            cancel_local=ex.engine.cancel_local,
            current_run=ex.run_id,
        )

    def _memory(self, subject: str, asynchronous: bool) -> Any:
        from tether.memory import WriteKeys, open_memory

        if self._memory_writes is None:
            self._memory_writes = WriteKeys(self._ex.run_id, check_only=self._ex.check_only)
        ex = self._ex
        return open_memory(
            ex.store,
            subject,
            embedder=ex.engine.embedder,
            clock=ex.clock,
            writes=self._memory_writes,
            asynchronous=asynchronous,
        )


class Context(_ContextBase):
    """Given to ``async def`` functions; ``ctx.step`` methods are coroutines."""

    def __init__(self, ex: RunExecution) -> None:
        super().__init__(ex)
        self.step = AsyncSteps(ex)

    def context(self, key: str, **options: Any) -> AsyncContextWindow:
        """The context window ``key`` (``AsyncContextWindow``: its methods are coroutines).
        Options as ``th.context``: ``model``, ``budget``, ``system``, ``subject``,
        ``memory``, ``summarizer``, ``extract``. Its writes are keyed by (run, write
        number): a replay or a resumed run never appends an item twice."""
        from tether.context.windows import AsyncContextWindow

        return AsyncContextWindow(self._window_state(key, options), self.step)

    def subject(self, subject_id: str) -> AsyncSubject:
        """A subject (DESIGN 4b), with coroutine methods; ``.memory`` is ``ctx.memory(id)``
        (replay-safe writes)."""
        return AsyncSubject(self._subject(subject_id, self.memory))

    def memory(self, subject: str) -> AsyncMemory:
        """The long-term memory of ``subject``; its methods are coroutines, and its writes
        are keyed by (run, write number): a replayed run applies none of them twice."""
        mem: AsyncMemory = self._memory(subject, asynchronous=True)
        return mem


class SyncContext(_ContextBase):
    """Given to plain ``def`` functions, which run on a worker thread; ``ctx.step`` blocks."""

    def __init__(self, ex: RunExecution) -> None:
        super().__init__(ex)
        self.step = SyncSteps(ex)

    def context(self, key: str, **options: Any) -> ContextWindow:
        """The context window ``key`` (``ContextWindow``: its methods block); see
        ``Context.context``."""
        from tether.context.windows import ContextWindow

        return ContextWindow(self._window_state(key, options), self.step)

    def subject(self, subject_id: str) -> Subject:
        """A subject (DESIGN 4b); ``.memory`` is ``ctx.memory(id)`` (replay-safe writes)."""
        return self._subject(subject_id, self.memory)

    def memory(self, subject: str) -> Memory:
        """The long-term memory of ``subject`` (blocking methods); writes keyed by (run,
        write number), as in ``Context.memory``."""
        mem: Memory = self._memory(subject, asynchronous=False)
        return mem
