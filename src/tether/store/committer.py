"""Group commit: concurrent writers share one transaction and one commit.

Each write is an operation (a callable taking a cursor). A thread submits its operation
and then competes for the write lock; whoever holds the lock commits every operation
queued so far in one transaction, so concurrent checkpoints cost one commit (and, in the
power-safe mode, one fsync) between them. A lone writer pays no hand-off: it commits its
own operation at once.
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
    __slots__ = ("done", "error", "fn", "result", "sync")

    def __init__(self, fn: Callable[[C], Any], sync: bool) -> None:
        self.fn = fn
        self.sync = sync
        self.done = False
        self.result: Any = None
        self.error: BaseException | None = None


class GroupCommitter(Generic[C]):
    """Batches operations from many threads into shared transactions.

    ``run_batch(ops)`` is supplied by the backend: it opens a transaction, runs each
    operation, commits, and stores each result on its ``Op``. If the batch fails as a
    whole, each operation is retried alone so that one bad operation fails only itself.
    """

    def __init__(self, run_batch: Callable[[list[Op[C]]], None]) -> None:
        self._run_batch = run_batch
        self._queue_lock = threading.Lock()
        self._write_lock = threading.Lock()
        self._queue: list[Op[C]] = []

    def submit(self, fn: Callable[[C], T], *, sync: bool = False) -> T:
        op: Op[C] = Op(fn, sync)
        if not self._queue and self._write_lock.acquire(blocking=False):
            # Nobody is writing or waiting: commit this operation alone, at once.
            try:
                self._commit([op])
            finally:
                self._write_lock.release()
            if op.error is not None:
                raise op.error
            return op.result  # type: ignore[no-any-return]
        with self._queue_lock:
            self._queue.append(op)
        with self._write_lock:
            if not op.done:
                with self._queue_lock:
                    batch, self._queue = self._queue, []
                self._commit(batch)
        if op.error is not None:
            raise op.error
        return op.result  # type: ignore[no-any-return]

    def try_submit(self, fn: Callable[[C], T], run: Callable[[list[Op[C]]], None]) -> T:
        """Commit ``fn`` alone through ``run`` at once, or raise ``WouldBlock`` when another
        writer of this process holds or waits for the lock (``run`` raises it when the
        file's lock is taken by another process)."""
        if self._queue or not self._write_lock.acquire(blocking=False):
            raise WouldBlock()
        op: Op[C] = Op(fn, False)
        try:
            run([op])
        finally:
            self._write_lock.release()
        return op.result  # type: ignore[no-any-return]

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
