"""``tether prune``: dry runs that count per kind and change nothing, JSON, the progress
bar, and ``--vacuum`` shrinking the SQLite file (incremental, or rebuilt once)."""

from __future__ import annotations

import json
import os
import sqlite3
from pathlib import Path

import pytest
from typer.testing import CliRunner

import tether
from tether.cli import app
from tether.cli.prune import Bars
from tether.store.retention import PruneResult
from tether.store.sql import SQLStore
from tether.testing.history import fill_history


@pytest.fixture
def db(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "prune.db"
    monkeypatch.setenv("TETHER_STORE", f"sqlite:///{path}")
    return path


def _fill(path: Path, runs: int) -> None:
    th = tether.Harness(f"sqlite:///{path}")
    assert isinstance(th.store, SQLStore)
    fill_history(th.store, runs, ended_at=1000.0)
    th.close()


def _runs(path: Path) -> int:
    conn = sqlite3.connect(path)
    try:
        return int(conn.execute("SELECT count(*) FROM runs").fetchone()[0])
    finally:
        conn.close()


def test_dry_run_prints_counts_and_bytes_per_kind_and_changes_nothing(db: Path) -> None:
    _fill(db, 40)
    result = CliRunner().invoke(app, ["prune", "--older-than", "30d", "--dry-run"])
    assert result.exit_code == 0, result.output
    assert "would prune 40 runs, 80 steps, 0 events" in result.output
    rows = {line.split()[0]: line.split()[1:] for line in result.output.splitlines()[1:] if line}
    assert rows["runs"][0] == "40" and rows["runs"][2] == "kB"
    assert {"experiments", "online_scores", "langgraph", "breakers"} <= set(rows)
    assert _runs(db) == 40
    out = json.loads(CliRunner().invoke(app, ["prune", "--dry-run", "--json"]).output)
    assert out["dry_run"] is True and out["runs"] == 40 and out["bytes"]["runs"] > 40 * 400
    assert _runs(db) == 40


def test_prune_then_vacuum_shrinks_the_file(db: Path) -> None:
    _fill(db, 3000)
    before = os.path.getsize(db)
    result = CliRunner().invoke(app, ["prune", "--older-than", "1d", "--vacuum", "--json"])
    assert result.exit_code == 0, result.output
    out = json.loads(result.output)
    print(out)  # shown when an assertion below fails
    assert out["runs"] == 3000 and out["steps"] == 6000 and out["batches"] >= 2
    assert out["longest_batch_ms"] < 500
    assert out["vacuum"]["rebuilt"] is False  # a new store vacuums incrementally
    assert out["vacuum"]["bytes_after"] < out["vacuum"]["bytes_before"] / 3
    assert os.path.getsize(db) < before / 3 and _runs(db) == 0


def test_vacuum_rebuilds_a_file_made_without_incremental_vacuum_once(db: Path) -> None:
    _fill(db, 500)
    conn = sqlite3.connect(db)
    conn.execute("PRAGMA auto_vacuum=NONE")
    conn.execute("VACUUM")
    assert conn.execute("PRAGMA auto_vacuum").fetchone()[0] == 0
    conn.close()
    first = json.loads(CliRunner().invoke(app, ["prune", "--vacuum", "--json"]).output)
    assert first["vacuum"]["rebuilt"] is True and first["runs"] == 500
    again = json.loads(CliRunner().invoke(app, ["prune", "--vacuum", "--json"]).output)
    assert again["vacuum"]["rebuilt"] is False


def test_kind_restricts_the_prune_and_a_bad_kind_names_the_kinds(db: Path) -> None:
    _fill(db, 5)
    out = json.loads(
        CliRunner()
        .invoke(app, ["prune", "--kind", "events", "--older-than", "1d", "--json"])
        .output
    )
    assert out["events"] == 0 and "runs" not in out and _runs(db) == 5
    result = CliRunner().invoke(app, ["prune", "--kind", "run"])
    message = str(result.exception)  # `tether` prints it (main() catches TetherError)
    assert isinstance(result.exception, tether.ConfigurationError)
    assert "is not a kind" in message and "'runs'" in message


def test_the_progress_bar_follows_each_kind_to_its_total() -> None:
    totals = PruneResult(dry_run=True)
    totals.add("runs", 10, 100)
    totals.add("steps", 20)
    bars = Bars(totals)
    assert list(bars.tasks) == ["runs"]  # a bar per kind, not per dependent count
    bars("runs", 4, 40)
    assert bars.progress.tasks[0].completed == 4 and bars.progress.tasks[0].total == 10
    bars("runs", 10, 100)
    assert bars.progress.tasks[0].finished
