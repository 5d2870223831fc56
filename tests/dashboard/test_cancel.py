"""``POST /api/runs/{id}/cancel`` answers what happened: 200 cancelled (or running: it
stops at its next step), 404 no such run, 409 already finished (with its status), 503 the
store is locked or unavailable (with Retry-After), 500 anything else (logged)."""

from __future__ import annotations

import logging
import sqlite3
from pathlib import Path
from typing import Any

import pytest
from starlette.testclient import TestClient

import tether
from tests.dashboard.conftest import BOTH_STORES
from tether.dashboard import create_app
from tether.errors import StoreError
from tether.store.sqlite import SQLiteStore


@BOTH_STORES
def test_cancel_maps_each_outcome_to_its_status(dash: tether.Harness) -> None:
    dash.run("triage", {"id": "done"}, run_id="done")
    queued = dash.enqueue("sleeper").run_id
    with TestClient(create_app(dash, token="")) as client:
        assert client.post("/api/runs/nope/cancel").status_code == 404
        assert client.post("/api/runs/nope/cancel").json() == {"error": "run nope not found"}

        finished = client.post("/api/runs/done/cancel")
        assert finished.status_code == 409
        assert finished.json() == {
            "error": "run done is already completed: nothing to cancel",
            "status": "completed",
        }
        assert dash.get_run("done").status is tether.RunStatus.COMPLETED

        assert client.post(f"/api/runs/{queued}/cancel").json() == {"status": "cancelled"}
        again = client.post(f"/api/runs/{queued}/cancel")
        assert again.status_code == 409 and again.json()["status"] == "cancelled"


@BOTH_STORES
def test_an_unavailable_store_is_503_with_retry_after(dash: tether.Harness) -> None:
    queued = dash.enqueue("sleeper").run_id
    with TestClient(create_app(dash, token="")) as client:
        dash.store.close()  # what a server gone away or a closed pool looks like
        response = client.post(f"/api/runs/{queued}/cancel")
        assert response.status_code == 503, response.text
        assert response.headers["retry-after"] == "5"
        assert "closed" in response.json()["error"]


def test_a_locked_sqlite_store_is_503_not_404(tmp_path: Path) -> None:
    path = tmp_path / "locked.db"
    th = tether.Harness(f"sqlite:///{path}?timeout=0.2")
    th.function(id="wait")(lambda ctx: None)
    queued = th.enqueue("wait").run_id
    holder = sqlite3.connect(path, isolation_level=None)
    try:
        with TestClient(create_app(th, token="")) as client:
            holder.execute("BEGIN IMMEDIATE")  # another process holds the write lock
            response = client.post(f"/api/runs/{queued}/cancel")
            assert response.status_code == 503, response.text
            assert response.headers["retry-after"] == "5"
            assert "locked" in response.json()["error"] and str(path) in response.json()["error"]
            assert th.get_run(queued).status is tether.RunStatus.QUEUED  # nothing changed
            holder.execute("ROLLBACK")
            assert client.post(f"/api/runs/{queued}/cancel").json() == {"status": "cancelled"}
    finally:
        holder.close()
        th.close()


class UnreachableStore(SQLiteStore):
    """A real SQLite store whose listing fails as an unreachable server's does."""

    def query_runs(self, q: Any) -> Any:
        raise StoreError("lost the connection to the store: server closed the connection")


def test_every_route_answers_503_on_a_store_error(tmp_path: Path) -> None:
    store = UnreachableStore(str(tmp_path / "gone.db"))
    store.migrate()
    th = tether.Harness(store)
    try:
        with TestClient(create_app(th, token="")) as client:
            api = client.get("/api/runs")
            assert api.status_code == 503 and api.headers["retry-after"] == "5"
            assert "lost the connection" in api.json()["error"]
            page = client.get("/runs")
            assert page.status_code == 503 and "the store is unavailable" in page.text
            assert "lost the connection" in page.text
    finally:
        th.close()
        store.close()


class FaultyStore(SQLiteStore):
    """A real SQLite store whose cancel fails with a bug (not a store error)."""

    def request_cancel(self, run_id: str, now: float) -> str | None:
        raise RuntimeError("a bug in the cancel path")


def test_an_unexpected_error_is_500_with_a_logged_traceback(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    store = FaultyStore(str(tmp_path / "faulty.db"))
    store.migrate()
    th = tether.Harness(store)
    th.function(id="wait")(lambda ctx: None)
    queued = th.enqueue("wait").run_id
    try:
        with TestClient(create_app(th, token="")) as client:
            with caplog.at_level(logging.ERROR, logger="tether.dashboard"):
                response = client.post(f"/api/runs/{queued}/cancel")
        assert response.status_code == 500
        assert "server log" in response.json()["error"]
        (record,) = [r for r in caplog.records if r.name == "tether.dashboard"]
        assert queued in record.getMessage()
        assert record.exc_info is not None and "a bug in the cancel path" in caplog.text
    finally:
        th.close()
        store.close()
