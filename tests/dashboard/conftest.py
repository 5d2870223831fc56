"""Dashboard fixtures: an app with a retried step, an LLM step and a long sleeper, and a
real uvicorn server on loopback serving it (with a worker executing runs)."""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("starlette")
pytest.importorskip("uvicorn")

import uvicorn

import tether
from tether.dashboard import create_app

# A step id that would run as code if a page spliced it into a script or a handler.
HOSTILE_STEP = "it's \"<b>x</b>\"');document.title='pwned';('"


def build(th: tether.Harness) -> None:
    attempts: dict[str, int] = {}

    def flaky(key: str) -> dict[str, Any]:
        attempts[key] = attempts.get(key, 0) + 1
        if attempts[key] == 1:
            raise ConnectionError(f"upstream refused for alice@example.com ({key})")
        return {"fetched": key, "token": "sk-live-abcdefghijklmnopqrstuv"}

    @th.function(
        id="triage",
        trigger=tether.on_event("ticket.created"),
        retries=tether.Retry(max_attempts=3, initial=0.01, jitter=False),
    )
    def triage(ctx: tether.SyncContext) -> dict[str, Any]:
        data = ctx.step.run("fetch", flaky, str(ctx.event.data.get("id", ctx.run_id)))
        label = ctx.step.run("label", lambda: "billing")
        return {"label": label, "fetched": data["fetched"]}

    @th.function(id="quoted")
    def quoted(ctx: tether.SyncContext) -> int:
        return int(ctx.step.run(HOSTILE_STEP, lambda: 1))

    @th.function(id="sleeper", trigger=tether.on_event("sleeper.start"))
    def sleeper(ctx: tether.SyncContext) -> str:
        ctx.step.run("before", lambda: 1)
        ctx.step.sleep("nap", "1h")
        return "woke"


@dataclass
class Server:
    url: str
    harness: tether.Harness


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for(predicate: Any, timeout: float = 15.0, what: str = "condition") -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


@contextlib.contextmanager
def serving(th: tether.Harness, *, worker: bool = True) -> Iterator[Server]:
    """The dashboard of ``th`` on a real uvicorn server on loopback (with a worker
    executing runs unless ``worker=False``)."""
    port = free_port()
    config = uvicorn.Config(
        create_app(th, token=""),
        host="127.0.0.1",
        port=port,
        log_level="warning",
        lifespan="off",
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    with contextlib.ExitStack() as stack:
        if worker:
            stack.enter_context(th.worker(concurrency=4))
        thread.start()
        wait_for(lambda: server.started, what="uvicorn to start")
        try:
            yield Server(f"http://127.0.0.1:{port}", th)
        finally:
            server.should_exit = True
            thread.join(timeout=10)


@pytest.fixture
def live_server(tmp_path: Path) -> Iterator[Server]:
    th = tether.Harness(f"sqlite:///{tmp_path / 'dash.db'}")
    build(th)
    with serving(th) as server:
        yield server
    th.close()


@pytest.fixture
def dash(store_url: str) -> Iterator[tether.Harness]:
    """A harness with the dashboard's test app on the ``store_url`` of the test's backend
    (parametrise ``backend`` to run a test on both stores)."""
    th = tether.Harness(store_url)
    build(th)
    yield th
    th.close()


BOTH_STORES = pytest.mark.parametrize("backend", ["sqlite", "postgres"], indirect=True)
