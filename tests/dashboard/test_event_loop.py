"""The dashboard never waits on the store on its event loop: while ``POST /api/events``
waits for a write lock another connection holds (a busy timeout on SQLite, a lock wait on
PostgreSQL), read-only requests and the live stream are still answered at once."""

from __future__ import annotations

import contextlib
import sqlite3
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx

import tether
from tests.conftest import PG_URL
from tests.dashboard.conftest import BOTH_STORES, serving, wait_for

HOLD_S = 2.5  # how long the lock is held; a read queued behind the POST waits about as long
PROMPT_S = 1.0  # a read answered without waiting for the lock (a loaded 2-core machine)


@contextlib.contextmanager
def write_lock(store_url: str) -> Iterator[None]:
    """Hold the store's write lock from a connection of another "process" (reads go on)."""
    if store_url.startswith("sqlite"):
        conn = sqlite3.connect(store_url.split("///", 1)[1], isolation_level=None)
        conn.execute("BEGIN IMMEDIATE")
        try:
            yield
        finally:
            conn.execute("ROLLBACK")
            conn.close()
        return
    import psycopg

    schema = parse_qs(urlsplit(store_url).query)["schema"][0]
    with psycopg.connect(PG_URL) as pg:  # a transaction until the block ends
        pg.execute(f'LOCK TABLE "{schema}".events, "{schema}".runs IN EXCLUSIVE MODE')
        yield
        pg.rollback()


@BOTH_STORES
def test_reads_and_the_live_stream_go_on_while_a_write_waits_for_the_lock(
    dash: tether.Harness, store_url: str
) -> None:
    dash.run("triage", {"id": "seed"})
    with serving(dash, worker=False) as server, ThreadPoolExecutor(2) as pool:
        beats: list[float] = []
        stop = threading.Event()

        def listen() -> None:
            with httpx.stream("GET", f"{server.url}/api/stream", timeout=30) as response:
                for line in response.iter_lines():
                    if line.startswith(": keep-alive"):
                        beats.append(time.monotonic())
                    if stop.is_set():
                        return

        listening = pool.submit(listen)
        wait_for(lambda: beats, what="the first keep-alive")
        with write_lock(store_url):
            sent_at = time.monotonic()
            posted = pool.submit(
                httpx.post,
                f"{server.url}/api/events",
                json={"name": "ticket.created", "data": {"id": "late"}},
                timeout=30,
            )
            slowest = 0.0
            while time.monotonic() - sent_at < HOLD_S:
                for path in ("/api/runs", "/runs", "/api/functions"):
                    started = time.monotonic()
                    try:
                        assert httpx.get(server.url + path, timeout=3).status_code == 200
                        took = time.monotonic() - started
                    except httpx.TimeoutException:
                        took = float("inf")
                    slowest = max(slowest, took)
            waiting = not posted.done()
        answer: Any = posted.result(timeout=30)
        stop.set()
        listening.result(timeout=10)
    assert waiting, "the POST did not wait for the lock: the test proves nothing"
    assert slowest < PROMPT_S, f"a read waited {slowest:.2f}s behind the POST's lock wait"
    assert [b for b in beats if b > sent_at + HOLD_S / 2], (
        "the live stream stopped while the POST waited"
    )
    assert answer.status_code == 200 and len(answer.json()["accepted"][0]["run_ids"]) == 1
