"""The SQLite store under a damaged, locked, full or too-new database file.

Each failure is a typed error (``StoreCorrupt``, ``StoreLocked``, ``StoreFull``,
``SchemaVersionError``) naming the file and the fix; a damaged file is never written to;
what was accepted or completed before the failure is still there afterwards, and once the
cause is gone the same harness carries on.
"""

from __future__ import annotations

import errno
import hashlib
import os
import random
import shutil
import sqlite3
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

import tether

Read = Callable[..., list[Any]]


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _poll(check: Callable[[], bool], timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "condition not reached in time"
        time.sleep(0.02)


def _flow_breaking_the_store(
    th: tether.Harness, sabotage: Callable[[], object], output: str
) -> tuple[tether.DurableFunction, dict[str, int]]:
    """``flow``: step "first", then step "second", whose first call breaks the store (so
    that its own checkpoint fails) before returning ``output``. Returns the call counts."""
    calls = {"first": 0, "second": 0}

    def first() -> str:
        calls["first"] += 1
        return "one"

    def second() -> str:
        calls["second"] += 1
        if calls["second"] == 1:
            sabotage()
        return output

    @th.function()
    def flow(ctx: tether.SyncContext) -> list[Any]:
        return [ctx.step.run("first", first), len(ctx.step.run("second", second))]

    return flow, calls


def _open_and_read_everything(url: str) -> None:
    th = tether.Harness(url)
    try:
        for run in th.list_runs(limit=10_000):
            th.get_run(run.id)
    finally:
        th.close()


# -- a damaged file -------------------------------------------------------------------------


def test_garbage_file_is_store_corrupt_and_left_untouched(tmp_path: Path) -> None:
    path = tmp_path / "tether.db"
    path.write_bytes(random.Random(1).randbytes(3 * 4096))
    digest = _digest(path)

    for _ in range(2):  # and again: the first attempt changed nothing
        with pytest.raises(tether.StoreCorrupt) as info:
            _open_and_read_everything(f"sqlite:///{path}")
        message = str(info.value)
        assert str(path) in message
        assert "Restore it from a backup" in message and "TETHER_STORE" in message
    assert _digest(path) == digest
    assert sorted(p.name for p in tmp_path.iterdir()) == ["tether.db"]


def test_store_truncated_mid_page_is_store_corrupt_and_left_untouched(tmp_path: Path) -> None:
    path = tmp_path / "tether.db"
    url = f"sqlite:///{path}"
    with tether.Harness(url, clock=tether.VirtualClock()) as th:

        @th.function()
        def fill(ctx: tether.SyncContext) -> str:
            return str(ctx.step.run("blob", lambda: "x" * 3000))[:3]

        for _ in range(40):
            th.run(fill)
    assert not (tmp_path / "tether.db-wal").exists()  # closed: everything is in the file
    data = path.read_bytes()
    assert len(data) > 20 * 4096
    path.write_bytes(data[: len(data) // 2 + 1000])  # cut in the middle of a page
    digest = _digest(path)

    with pytest.raises(tether.StoreCorrupt) as info:
        _open_and_read_everything(url)
    assert str(path) in str(info.value) and "Restore it from a backup" in str(info.value)
    assert _digest(path) == digest


def test_sqlite_file_of_another_application_is_not_adopted(
    tmp_path: Path, fresh_read: Read
) -> None:
    path = tmp_path / "tether.db"
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE users (id INTEGER PRIMARY KEY, email TEXT)")
    conn.execute("INSERT INTO users (email) VALUES ('a@example.com')")
    conn.commit()
    conn.close()
    digest = _digest(path)

    with pytest.raises(tether.StoreCorrupt, match=r"not a tether store .*\['users'\]") as info:
        _open_and_read_everything(f"sqlite:///{path}")
    assert str(path) in str(info.value) and "new file" in str(info.value)
    assert _digest(path) == digest
    assert fresh_read("SELECT name FROM sqlite_master WHERE type='table'") == [("users",)]


# -- a newer schema -------------------------------------------------------------------------


def test_store_from_a_newer_tether_is_refused(
    store_url: str, tmp_path: Path, fresh_read: Read
) -> None:
    with tether.Harness(store_url) as th:
        assert th.list_runs() == []
    path = tmp_path / "tether.db"
    conn = sqlite3.connect(path)
    conn.execute("UPDATE tether_meta SET value='999' WHERE key='schema_version'")
    conn.commit()
    conn.close()
    digest = _digest(path)

    with pytest.raises(tether.SchemaVersionError) as info:
        _open_and_read_everything(store_url)
    message = str(info.value)
    assert isinstance(info.value, tether.StoreError)
    assert str(path) in message and "schema version 999" in message
    assert "Upgrade tether" in message and "pip install -U tether" in message
    assert fresh_read("SELECT value FROM tether_meta WHERE key='schema_version'") == [("999",)]
    assert _digest(path) == digest


# -- a locked file ------------------------------------------------------------------------


@pytest.fixture
def locker(tmp_path: Path) -> Iterator[sqlite3.Connection]:
    """Another connection to the store file, to hold ``BEGIN EXCLUSIVE`` with."""
    conn = sqlite3.connect(tmp_path / "tether.db", isolation_level=None, check_same_thread=False)
    yield conn
    if conn.in_transaction:
        conn.execute("ROLLBACK")
    conn.close()


def _assert_locked_message(exc: BaseException, path: Path) -> None:
    assert isinstance(exc, tether.StoreLocked)
    message = str(exc)
    assert str(path) in message and "locked" in message
    assert "?timeout=30" in message  # the fix: a longer busy timeout


def test_opening_a_locked_store_is_store_locked_then_works(
    store_url: str, tmp_path: Path, locker: sqlite3.Connection, fresh_read: Read
) -> None:
    with tether.Harness(store_url) as first:
        assert first.list_runs() == []  # an existing store
    th = tether.Harness(f"{store_url}?timeout=0.2")
    try:

        @th.function(trigger=tether.on_event("ticket.created"))
        def triage(ctx: tether.SyncContext) -> None:
            return None

        locker.execute("BEGIN EXCLUSIVE")
        started = time.monotonic()
        with pytest.raises(tether.StoreLocked) as info:
            th.send({"name": "ticket.created", "data": {}, "id": "e1"})
        assert time.monotonic() - started < 5  # the short busy timeout, not the default 10 s
        _assert_locked_message(info.value, tmp_path / "tether.db")
        locker.execute("ROLLBACK")

        assert fresh_read("SELECT count(*) FROM events") == [(0,)]
        assert th.send({"name": "ticket.created", "data": {}, "id": "e1"}) == ["e1"]
        assert [r.function_id for r in th.list_runs()] == ["triage"]
    finally:
        th.close()


def test_writes_to_a_locked_store_fail_whole_and_the_harness_recovers(
    store_url: str, tmp_path: Path, locker: sqlite3.Connection, fresh_read: Read
) -> None:
    th = tether.Harness(f"{store_url}?timeout=0.2", clock=tether.VirtualClock())
    try:

        @th.function(trigger=tether.on_event("ticket.created"))
        def triage(ctx: tether.SyncContext) -> str:
            return str(ctx.step.run("classify", lambda: "billing"))

        th.send({"name": "ticket.created", "data": {"n": 1}, "id": "before"})
        before = fresh_read("SELECT id FROM runs")

        locker.execute("BEGIN EXCLUSIVE")
        with pytest.raises(tether.StoreLocked) as info:
            th.send(
                [
                    {"name": "ticket.created", "data": {"n": 2}, "id": "during-1"},
                    {"name": "ticket.created", "data": {"n": 3}, "id": "during-2"},
                ]
            )
        _assert_locked_message(info.value, tmp_path / "tether.db")
        with pytest.raises(tether.StoreLocked):
            th.run(triage, run_id="locked-run")
        locker.execute("ROLLBACK")

        assert fresh_read("SELECT id FROM events ORDER BY id") == [("before",)]
        assert fresh_read("SELECT id FROM runs") == before
        # The ids were not remembered: sending them again now creates their runs.
        th.send(
            [
                {"name": "ticket.created", "data": {"n": 2}, "id": "during-1"},
                {"name": "ticket.created", "data": {"n": 3}, "id": "during-2"},
            ]
        )
        assert len(fresh_read("SELECT id FROM runs")) == 3
        assert th.run(triage, run_id="locked-run") == "billing"
    finally:
        th.close()


def test_checkpoint_on_a_locked_store_fails_then_the_run_resumes(
    store_url: str, tmp_path: Path, locker: sqlite3.Connection, fresh_read: Read
) -> None:
    """The lock is taken while a step runs: its checkpoint cannot be written. The run is
    not failed for it; once the lock is gone it resumes from its last checkpoint."""
    th = tether.Harness(f"{store_url}?timeout=0.2", lease_ttl=0.6, heartbeat=0.2)
    try:
        flow, calls = _flow_breaking_the_store(th, lambda: locker.execute("BEGIN EXCLUSIVE"), "two")
        with pytest.raises(tether.StoreLocked) as info:
            th.run(flow, run_id="r1")
        _assert_locked_message(info.value, tmp_path / "tether.db")
        locker.execute("ROLLBACK")

        assert fresh_read("SELECT step_id, status FROM steps WHERE run_id='r1'") == [
            ("first", "completed")
        ]
        assert fresh_read("SELECT status FROM runs WHERE id='r1'") != [("failed",)]
        assert th.run(flow, run_id="r1", timeout=20) == ["one", 3]
        assert calls == {"first": 1, "second": 2}
    finally:
        th.close()


def test_worker_survives_a_locked_store(
    store_url: str, locker: sqlite3.Connection, caplog: pytest.LogCaptureFixture
) -> None:
    th = tether.Harness(f"{store_url}?timeout=0.1")
    try:

        @th.function(trigger=tether.on_event("ticket.created"))
        def triage(ctx: tether.SyncContext) -> str:
            return str(ctx.step.run("classify", lambda: "billing"))

        worker = th.worker(poll_interval=0.02).start()
        th.send({"name": "ticket.created", "data": {}, "id": "first"})
        _poll(lambda: th.list_runs(status="completed") != [])
        locker.execute("BEGIN EXCLUSIVE")

        def met_lock() -> list[str]:
            return [r.getMessage() for r in caplog.records if "could not claim" in r.getMessage()]

        _poll(lambda: len(met_lock()) >= 3)  # the worker met the lock, and went on trying
        assert worker.running
        assert "locked" in met_lock()[0]
        locker.execute("ROLLBACK")
        th.send({"name": "ticket.created", "data": {}, "id": "second"})
        _poll(lambda: len(th.list_runs(status="completed")) == 2)
        worker.stop(timeout=5)
    finally:
        th.close()


# -- a full disk ----------------------------------------------------------------------------


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 4 MB tmpfs mounted for this test: a disk that really fills up."""
    if os.geteuid() != 0 or shutil.which("mount") is None:
        pytest.skip("needs root and mount(8) to mount a small tmpfs as a full disk")
    mount_point = tmp_path / "disk"
    mount_point.mkdir()
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", str(mount_point)],
        capture_output=True,
        text=True,
    )
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.strip()}")
    try:
        yield mount_point
    finally:
        if subprocess.run(["umount", str(mount_point)], capture_output=True).returncode:
            subprocess.run(["umount", "-l", str(mount_point)], check=True)


def _fill(disk: Path, leave: int = 0) -> Path:
    """Fill the filesystem with a file, then give back ``leave`` bytes of it."""
    filler = disk / "filler"
    with filler.open("wb") as out:
        try:
            while True:
                out.write(b"\0" * 65536)
                out.flush()
        except OSError as exc:
            assert exc.errno == errno.ENOSPC
        if leave:
            out.truncate(max(0, out.tell() - leave))
    return filler


def _assert_full_message(exc: BaseException, path: Path) -> None:
    assert isinstance(exc, tether.StoreFull)
    message = str(exc)
    assert str(path) in message and "Nothing from this write was kept" in message
    assert "Free disk space" in message and "tether prune" in message


@pytest.mark.parametrize("leave", [0, 192 * 1024], ids=["no-space", "room-for-small-writes"])
@pytest.mark.parametrize("resume_with", ["run", "worker"])
def test_full_disk_keeps_what_was_done_and_the_run_continues_after(
    small_disk: Path, fresh_read: Read, leave: int, resume_with: str
) -> None:
    path = small_disk / "tether.db"
    th = tether.Harness(f"sqlite:///{path}", lease_ttl=0.6, heartbeat=0.2)
    filler: list[Path] = []
    try:
        # The second step's output is well under the output limit but needs room on disk.
        flow, calls = _flow_breaking_the_store(
            th, lambda: filler.append(_fill(small_disk, leave)), "r" * 600_000
        )
        th.send({"name": "audit.requested", "data": {"k": 1}, "id": "accepted-before"})
        with pytest.raises(tether.StoreFull) as info:
            th.run(flow, run_id="r1")
        _assert_full_message(info.value, path)

        # Sending on the full disk fails whole too, and remembers nothing.
        if leave == 0:
            with pytest.raises(tether.StoreFull):
                th.send({"name": "audit.requested", "data": {"k": 2}, "id": "while-full"})

        # What was accepted or completed before is there; the run was not failed for it.
        assert fresh_read("SELECT id FROM events", path=path) == [("accepted-before",)]
        assert fresh_read("SELECT step_id, status FROM steps", path=path) == [
            ("first", "completed")
        ]
        assert fresh_read("SELECT status FROM runs WHERE id='r1'", path=path) != [("failed",)]

        filler[0].unlink()
        if resume_with == "run":
            assert th.run(flow, run_id="r1", timeout=20) == ["one", 600_000]
        else:
            with th.worker(poll_interval=0.02):
                assert tether.RunHandle(th, "r1").result(timeout=20) == ["one", 600_000]
        assert calls == {"first": 1, "second": 2}
        assert th.send({"name": "audit.requested", "data": {"k": 2}, "id": "while-full"}) == [
            "while-full"
        ]
        assert len(fresh_read("SELECT id FROM events", path=path)) == 2
    finally:
        th.close()


def test_new_store_on_a_full_disk_is_store_full_then_works(small_disk: Path) -> None:
    path = small_disk / "tether.db"
    filler = _fill(small_disk)
    th = tether.Harness(f"sqlite:///{path}")
    try:
        with pytest.raises(tether.StoreFull) as info:
            th.list_runs()
        _assert_full_message(info.value, path)
        assert not path.exists() or path.stat().st_size == 0  # no half-made schema

        filler.unlink()

        @th.function()
        def hello(ctx: tether.SyncContext) -> str:
            return "hi"

        assert th.list_runs() == []  # the same harness opens and migrates it now
        assert th.run(hello) == "hi"
    finally:
        th.close()
