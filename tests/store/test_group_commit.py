"""Durability modes and group commit on the SQLite store."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import pytest

import tether
from tether.store.sqlite import SQLiteStore


@pytest.mark.parametrize("durability", ["process", "power"])
def test_concurrent_runs_share_commits(store_url: str, durability: str) -> None:
    """8 runs in flight checkpoint concurrently: their writes share transactions (fewer
    commits than writes), most of all when each commit waits for an fsync."""
    th = tether.Harness(store_url, durability=durability)

    @th.function()
    def five(ctx: tether.SyncContext) -> int:
        return sum(ctx.step.run(f"s{i}", lambda i=i: i) for i in range(5))

    handles = [th.enqueue(five) for _ in range(40)]
    store: Any = th.store
    before_ops, before_commits = store.operations, store.commits
    with th.worker(concurrency=8):
        assert [h.result(timeout=60) for h in handles] == [10] * 40
    ops = store.operations - before_ops
    commits = store.commits - before_commits
    print(f"\n{durability}: {ops} writes in {commits} transactions")
    assert ops >= 40 * 6  # 5 checkpoints and a finish per run, plus claims
    assert commits < ops, (ops, commits)  # shared
    if durability == "power":
        # while one thread waits for fsync, the others queue up and share the next commit
        assert ops / commits >= 1.5, (ops, commits)
    th.close()


def test_synchronous_setting_per_mode(tmp_path: Path) -> None:
    for durability, expected in (("process", 1), ("power", 2)):
        store = SQLiteStore(str(tmp_path / f"{durability}.db"), durability=durability)
        store.migrate()
        (level,) = store._writer.execute("PRAGMA synchronous").fetchone()
        assert level == expected  # NORMAL=1, FULL=2
        store.close()


def test_accepted_events_are_synced_in_process_mode(tmp_path: Path) -> None:
    """An accepting transaction switches the connection to FULL for its commit."""
    th = tether.Harness(f"sqlite:///{tmp_path / 'ev.db'}")
    store = th.store
    assert isinstance(store, SQLiteStore)
    statements: list[str] = []
    store._writer.set_trace_callback(statements.append)
    th.send(tether.Event("x", {}))
    store._writer.set_trace_callback(None)
    assert statements[0] == "PRAGMA synchronous=FULL"
    assert "COMMIT" in statements and statements[-1] == "PRAGMA synchronous=NORMAL"
    th.close()
    conn = sqlite3.connect(tmp_path / "ev.db")
    assert conn.execute("SELECT count(*) FROM events").fetchone() == (1,)
    conn.close()
