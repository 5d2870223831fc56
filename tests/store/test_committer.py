"""Group commit (``store/committer.py``) on its own: operations from many threads share
batches, a lone writer commits alone at once, and a failing operation fails only itself."""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest

from tether.store.committer import GroupCommitter, Op


class Recorder:
    """A ``run_batch`` that records each batch; ``hold`` seconds per commit (a slow fsync)."""

    def __init__(self, hold: float = 0.0) -> None:
        self.hold = hold
        self.batches: list[list[str]] = []  # committed
        self.tried: list[int] = []  # size of every batch run, committed or not
        self.lock = threading.Lock()

    def __call__(self, ops: list[Op[Any]]) -> None:
        with self.lock:
            self.tried.append(len(ops))
        results = [op.fn("conn") for op in ops]  # an exception fails the whole batch
        if self.hold:
            time.sleep(self.hold)
        for op, result in zip(ops, results, strict=True):
            op.result = result
        with self.lock:
            self.batches.append([str(r) for r in results])


def test_a_lone_writer_commits_its_operation_alone() -> None:
    rec = Recorder()
    committer: GroupCommitter[str] = GroupCommitter(rec)
    assert committer.submit(lambda conn: f"{conn}:a") == "conn:a"
    assert committer.submit(lambda conn: "b") == "b"
    assert rec.batches == [["conn:a"], ["b"]]


def test_concurrent_writers_share_commits() -> None:
    rec = Recorder(hold=0.005)
    committer: GroupCommitter[str] = GroupCommitter(rec)
    threads, per_thread = 8, 25
    results: dict[int, list[str]] = {}
    start = threading.Barrier(threads)

    def writer(n: int) -> None:
        start.wait()
        results[n] = [
            committer.submit(lambda conn, n=n, i=i: f"{n}-{i}") for i in range(per_thread)
        ]

    pool = [threading.Thread(target=writer, args=(n,)) for n in range(threads)]
    for t in pool:
        t.start()
    for t in pool:
        t.join(30)
    # every operation committed exactly once, and its caller got its own result
    assert results == {n: [f"{n}-{i}" for i in range(per_thread)] for n in range(threads)}
    committed = [r for batch in rec.batches for r in batch]
    assert sorted(committed) == sorted(
        f"{n}-{i}" for n in range(threads) for i in range(per_thread)
    )
    # while one commit holds the lock the others queue up and go together in the next
    assert len(rec.batches) < threads * per_thread * 0.8, len(rec.batches)
    assert max(len(b) for b in rec.batches) > 1


def test_a_failing_operation_fails_only_its_caller() -> None:
    rec = Recorder()
    committer: GroupCommitter[str] = GroupCommitter(rec)
    outcomes: dict[str, Any] = {}
    first_running, release = threading.Event(), threading.Event()

    def slow_first(conn: str) -> str:
        first_running.set()
        release.wait(5)
        return "first"

    def bad(conn: str) -> str:
        raise ValueError("this operation is broken")

    def call(name: str, fn: Any) -> None:
        try:
            outcomes[name] = committer.submit(fn)
        except Exception as exc:
            outcomes[name] = exc

    first = threading.Thread(target=call, args=("first", slow_first))
    first.start()
    assert first_running.wait(5)
    others = [
        threading.Thread(target=call, args=("bad", bad)),
        threading.Thread(target=call, args=("good", lambda conn: "good")),
    ]
    for t in others:
        t.start()
    deadline = time.monotonic() + 5
    while len(committer._queue) < 2:  # both queued behind the first commit
        assert time.monotonic() < deadline
        time.sleep(0.001)
    release.set()
    for t in [first, *others]:
        t.join(10)
    assert outcomes["first"] == "first" and outcomes["good"] == "good"
    assert isinstance(outcomes["bad"], ValueError)
    # the shared batch failed as a whole; each operation then ran alone
    assert rec.tried == [1, 2, 1, 1]
    assert rec.batches == [["first"], ["good"]]


def test_an_error_in_a_lone_operation_is_raised_to_its_caller() -> None:
    committer: GroupCommitter[str] = GroupCommitter(Recorder())

    def bad(conn: str) -> str:
        raise KeyError("missing")

    with pytest.raises(KeyError, match="missing"):
        committer.submit(bad)
    assert committer.submit(lambda conn: "after") == "after"  # the committer carries on


def test_sync_is_passed_to_the_batch() -> None:
    seen: list[list[bool]] = []

    def run_batch(ops: list[Op[Any]]) -> None:
        seen.append([op.sync for op in ops])
        for op in ops:
            op.result = op.fn(None)

    committer: GroupCommitter[Any] = GroupCommitter(run_batch)
    committer.submit(lambda conn: 1, sync=True)
    committer.submit(lambda conn: 2)
    assert seen == [[True], [False]]


class Interrupted(Exception):
    pass


def _wait_queued(committer: GroupCommitter[str], n: int) -> None:
    deadline = time.monotonic() + 5
    while len(committer._queue) < n:  # queued behind the commit in progress
        assert time.monotonic() < deadline
        time.sleep(0.001)


def test_a_caller_interrupted_while_queued_stalls_nobody() -> None:
    """A caller that stops waiting (a signal on the main thread) leaves its operation
    queued: a later batch commits it, and the callers queued behind it get their turn."""
    import signal

    rec = Recorder()
    committer: GroupCommitter[str] = GroupCommitter(rec)
    first_running, release = threading.Event(), threading.Event()
    outcomes: dict[str, Any] = {}

    def slow_first(conn: str) -> str:
        first_running.set()
        release.wait(5)
        return "first"

    def call(name: str, fn: Any) -> None:
        outcomes[name] = committer.submit(fn)

    first = threading.Thread(target=call, args=("first", slow_first))
    first.start()
    assert first_running.wait(5)

    def interrupt(*_: Any) -> None:
        raise Interrupted()

    previous = signal.signal(signal.SIGALRM, interrupt)
    try:
        signal.setitimer(signal.ITIMER_REAL, 0.1)
        with pytest.raises(Interrupted):
            committer.submit(lambda conn: "interrupted")  # queued behind the first
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
    behind = threading.Thread(target=call, args=("behind", lambda conn: "behind"))
    behind.start()
    _wait_queued(committer, 2)
    release.set()
    for t in (first, behind):
        t.join(10)
        assert not t.is_alive()
    assert outcomes == {"first": "first", "behind": "behind"}
    assert rec.batches == [["first"], ["interrupted", "behind"]]
    assert committer.submit(lambda conn: "after") == "after"


def test_every_queued_caller_returns_once_its_batch_committed() -> None:
    """Callers queued behind a slow commit all return after the next batch, without
    taking turns on a lock: the second batch holds every one of them."""
    rec = Recorder()
    committer: GroupCommitter[str] = GroupCommitter(rec)
    first_running, release = threading.Event(), threading.Event()

    def slow_first(conn: str) -> str:
        first_running.set()
        release.wait(5)
        return "first"

    lead = threading.Thread(target=committer.submit, args=(slow_first,))
    lead.start()
    assert first_running.wait(5)
    done: list[str] = []
    queued = [
        threading.Thread(target=lambda n=n: done.append(committer.submit(lambda c, n=n: str(n))))
        for n in range(6)
    ]
    for t in queued:
        t.start()
    _wait_queued(committer, 6)
    release.set()
    for t in [lead, *queued]:
        t.join(10)
        assert not t.is_alive()
    assert sorted(done) == [str(n) for n in range(6)]
    assert len(rec.batches) == 2 and sorted(rec.batches[1]) == sorted(done)
