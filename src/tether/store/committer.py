"""Group commit: concurrent writers share one transaction and one commit.

Each write is an operation (a callable taking a cursor). A thread submits its operation;
if no other writer is busy it commits at once, else it queues and sleeps until the
leading writer has committed it, together with every operation queued meanwhile, in one
transaction: concurrent checkpoints cost one commit (and, in the power-safe mode, one
fsync) between them. A lone writer pays no hand-off.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Iterator
from typing import Any, Generic, TypeVar

from tether.errors import WouldBlock

T = TypeVar("T")
C = TypeVar("C")


class Statement:
    """An operation that is a single SQL statement (or several that stay right committed
    one by one): alone in a batch, it runs without BEGIN/COMMIT, each statement a
    transaction by itself."""

    __slots__ = ("fn",)

    def __init__(self, fn: Callable[[Any], Any]) -> None:
        self.fn = fn

    def __call__(self, conn: Any) -> Any:
        return self.fn(conn)


class Op(Generic[C]):
    __slots__ = ("_turn", "abandoned", "done", "error", "fn", "lead", "result", "sync")

    def __init__(self, fn: Callable[[C], Any], sync: bool) -> None:
        self.fn = fn
        self.sync = sync
        self.done = False
        self.lead = False  # handed the lead: commit the queue (which holds this op)
        self.abandoned = False  # its caller stopped waiting (interrupted)
        self.result: Any = None
        self.error: BaseException | None = None
        self._turn: threading.Lock | None = None  # released when done or handed the lead

    def _wait(self) -> None:
        turn = self._turn
        assert turn is not None
        turn.acquire()

    def _wake(self) -> None:
        if self._turn is not None:
            self._turn.release()


class GroupCommitter(Generic[C]):
    """Batches operations from many threads into shared transactions.

    ``run_batch(ops)`` is supplied by the backend: it opens a transaction, runs each
    operation, commits, and stores each result on its ``Op``. If the batch fails as a
    whole, each operation is retried alone so that one bad operation fails only itself.

    One thread at a time leads: it commits its operation with everything queued, wakes
    each caller whose operation that batch held (once, with its result) and hands the lead
    to the first caller still queued. Waiting callers never take turns on a lock only to
    find their work done, and a writer arriving alone commits at once.
    """

    def __init__(self, run_batch: Callable[[list[Op[C]]], None]) -> None:
        self._run_batch = run_batch
        self._queue_lock = threading.Lock()
        self._write_lock = threading.Lock()  # held while a batch runs
        self._queue: list[Op[C]] = []
        self._busy = False  # a leader is committing or about to

    def submit(self, fn: Callable[[C], T], *, sync: bool = False) -> T:
        op: Op[C] = Op(fn, sync)
        with self._queue_lock:
            if self._busy:
                op._turn = threading.Lock()
                op._turn.acquire()
                self._queue.append(op)
            else:
                self._busy = True
        if op._turn is None:  # nobody is writing: lead with this operation
            self._lead([op])
        else:
            try:
                op._wait()
            except BaseException:  # interrupted: the next batch commits it all the same
                with self._queue_lock:
                    op.abandoned = True
                    handed = op.lead
                if handed:  # nobody else will lead now
                    self._lead([])
                raise
            if op.lead:  # handed the lead: this operation is in the queue
                self._lead([])
        if op.error is not None:
            raise op.error
        return op.result  # type: ignore[no-any-return]

    def try_submit(self, fn: Callable[[C], T], run: Callable[[list[Op[C]]], None]) -> T:
        """Commit ``fn`` alone through ``run`` at once, or raise ``WouldBlock`` when another
        writer of this process holds or waits for the lock (``run`` raises it when the
        file's lock is taken by another process)."""
        with self._queue_lock:
            if self._busy or self._queue:
                raise WouldBlock()
            self._busy = True
        op: Op[C] = Op(fn, False)
        if not self._write_lock.acquire(blocking=False):  # held by ``exclusive``
            if not self._hand_over():
                self._lead([])
            raise WouldBlock()
        try:
            run([op])
        finally:
            self._write_lock.release()
            if not self._hand_over():
                self._lead([])
        return op.result  # type: ignore[no-any-return]

    def _lead(self, batch: list[Op[C]]) -> None:
        while True:
            with self._write_lock:
                with self._queue_lock:
                    batch += self._queue
                    self._queue = []
                self._commit(batch)
            for op in batch:
                op._wake()
            if self._hand_over():
                return
            batch = []  # only abandoned operations wait: commit them here

    def _hand_over(self) -> bool:
        """Give the lead to the first queued caller, or mark the committer idle; False
        when only operations whose callers stopped waiting are queued."""
        with self._queue_lock:
            if not self._queue:
                self._busy = False
                return True
            nxt = next((op for op in self._queue if not op.abandoned), None)
            if nxt is None:
                return False
            nxt.lead = True
        nxt._wake()
        return True

    @contextlib.contextmanager
    def exclusive(self) -> Iterator[None]:
        """Hold the write lock, with no group commit: for a statement that runs its own
        transaction (``PRAGMA incremental_vacuum``, ``VACUUM``)."""
        with self._write_lock:
            yield

    def _commit(self, batch: list[Op[C]]) -> None:
        try:
            self._run_batch(batch)
        except BaseException as exc:
            if len(batch) == 1:
                batch[0].error = exc
            else:
                for op in batch:
                    try:
                        self._run_batch([op])
                    except BaseException as exc1:
                        op.error = exc1
        for op in batch:
            op.done = True
