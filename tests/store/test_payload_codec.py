"""Every payload column goes through the store's one codec, on both backends.

A test codec wraps each payload (``enc:`` + base64) and refuses to decode anything it
did not wrap. A workflow then touches every payload path: run input and output, step
outputs, a failed attempt's message and traceback, a failed run's error, an event's data
(a trigger and a ``wait_for_event``), a child run's output into its parent's step, a
batch's events, a debounced run's replaced input, a cancelled run's error. Afterwards a
raw read of every table (and, on SQLite, of the file and its WAL) must find the marker
nowhere and every payload column wrapped, while the API reads everything back intact.
"""

from __future__ import annotations

import base64
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

import tether
from tether.store import PayloadCodec, Store, open_store

MARK = "Qx7-payload-marker"
PAYLOAD_COLUMNS = {
    "runs": ("input", "output", "error", "batch_events"),
    "steps": ("output", "error"),
    "events": ("data",),
    "attempts": ("error_message", "traceback"),
}


class Wrapping(PayloadCodec):
    def __init__(self) -> None:
        self.encoded = 0
        self.decoded = 0

    def encode(self, text: str, subject: str | None = None) -> str:
        self.encoded += 1
        return "enc:" + base64.b64encode(text.encode()).decode()

    def decode(self, stored: str | bytes, subject: str | None = None) -> str:
        self.decoded += 1
        text = stored if isinstance(stored, str) else bytes(stored).decode()
        assert text.startswith("enc:"), f"read a payload the codec never wrote: {text[:60]!r}"
        return base64.b64decode(text[4:]).decode()


@pytest.fixture
def wrapped(store_url: str) -> Iterator[tuple[tether.Harness, Store, Wrapping]]:
    codec = Wrapping()
    store = open_store(store_url, codec=codec)
    th = tether.Harness(store)
    yield th, store, codec
    th.close()
    store.close()


def _wait(check: Callable[[], bool], timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "condition not reached in time"
        time.sleep(0.01)


def _exercise(th: tether.Harness) -> dict[str, Any]:
    """Run a workflow through every payload path; return what the API read back."""
    flaky_calls = [0]

    @th.function()
    def child(ctx: tether.SyncContext) -> dict[str, str]:
        return {"child": ctx.event.data["m"]}

    def flaky() -> str:
        flaky_calls[0] += 1
        if flaky_calls[0] == 1:
            raise ValueError(f"first try of {MARK} fails")
        return f"retried {MARK}"

    def doomed() -> None:
        raise tether.NonRetriableError(f"doomed {MARK}")

    @th.function(retries=tether.Retry(max_attempts=3, initial=0.01, jitter=False))
    async def flow(ctx: tether.Context) -> dict[str, Any]:
        a = await ctx.step.run("a", lambda: {"a": f"{MARK}-{ctx.event.data['x']}"})
        b = await ctx.step.run("b", flaky)
        try:
            await ctx.step.run("d", doomed)
        except tether.StepFailed as exc:
            b += f" / {exc.error_type}"
        ev = await ctx.step.wait_for_event("w", event="go", timeout=60)
        c = await ctx.step.invoke("c", function=child, data={"m": f"{MARK}-child"})
        return {"a": a, "b": b, "ev": ev.data if ev else None, "c": c, "out": MARK}

    @th.function(retries=tether.Retry(max_attempts=1))
    def broken(ctx: tether.SyncContext) -> None:
        raise RuntimeError(f"broken by {MARK}")

    @th.function(trigger=tether.on_event("row"), batch=tether.Batch(max_size=2, timeout=0.2))
    def ingest(ctx: tether.SyncContext) -> list[str]:
        return [e.data["v"] for e in ctx.events]

    @th.function(
        trigger=tether.on_event("edit"), debounce=tether.Debounce(period=0.3, key="event.data.d")
    )
    def settle(ctx: tether.SyncContext) -> str:
        return str(ctx.event.data["v"])

    @th.function()
    def never(ctx: tether.SyncContext) -> None:
        return None

    idle = th.enqueue(never, {"secret": MARK})
    assert th.cancel(idle.run_id) == tether.RunStatus.CANCELLED
    with th.worker(concurrency=4):
        handle = th.enqueue(flow, {"x": MARK})
        _wait(lambda: th.get_run(handle.run_id).status == "waiting")
        th.send(tether.Event("go", {"k": 1, "secret": f"{MARK}-event"}))
        th.send([tether.Event("row", {"v": f"{MARK}-{i}"}) for i in range(2)])
        th.send(tether.Event("edit", {"d": "doc", "v": f"{MARK}-old"}))
        th.send(tether.Event("edit", {"d": "doc", "v": f"{MARK}-new"}))
        result = handle.result(timeout=30)
        with pytest.raises(tether.RunFailed):
            th.enqueue(broken, {"y": MARK}).result(timeout=30)
        _wait(lambda: [r.status for r in th.list_runs("ingest")] == ["completed"])
        _wait(lambda: [r.status for r in th.list_runs("settle")] == ["completed"])
    run = th.get_run(handle.run_id)
    return {
        "result": result,
        "input": run.input,
        "steps": {s.id: s.output for s in run.steps},
        "attempt": [a.error_message for s in run.steps for a in s.attempts if a.error_message],
        "broken": th.list_runs("broken")[0].error,
        "ingest": th.list_runs("ingest")[0].output,
        "settle": th.list_runs("settle")[0].output,
        "idle": th.get_run(idle.run_id).error,
        "events": [e.data for e, _, _ in th.store.list_events(10)],
    }


def _tables(store: Store) -> list[str]:
    read: Callable[..., list[Any]] = store.read  # type: ignore[attr-defined]
    if store.url.startswith("sqlite"):
        sql = "SELECT name FROM sqlite_master WHERE type='table'"
    else:
        sql = "SELECT table_name FROM information_schema.tables WHERE table_schema=current_schema()"
    return sorted(r[0] for r in read(sql))


def test_every_payload_column_goes_through_the_codec(
    wrapped: tuple[tether.Harness, Store, Wrapping], tmp_path: Path, store_url: str
) -> None:
    th, store, codec = wrapped
    seen = _exercise(th)

    # Read back through the API: every payload intact.
    assert seen["result"] == {
        "a": {"a": f"{MARK}-{MARK}"},
        "b": f"retried {MARK} / NonRetriableError",
        "ev": {"k": 1, "secret": f"{MARK}-event"},
        "c": {"child": f"{MARK}-child"},
        "out": MARK,
    }
    assert seen["input"] == {"x": MARK}
    assert seen["steps"]["w"]["data"]["secret"] == f"{MARK}-event"
    assert seen["attempt"] and MARK in seen["attempt"][0]
    assert MARK in seen["broken"]["message"]
    assert seen["ingest"] == [f"{MARK}-0", f"{MARK}-1"]
    assert seen["settle"] == f"{MARK}-new"
    assert seen["idle"]["type"] == "RunCancelled"
    assert {"k": 1, "secret": f"{MARK}-event"} in [tether.codec.loads(d) for d in seen["events"]]
    assert codec.encoded > 20 and codec.decoded > 20

    # A raw read of every table: no payload column holds anything the codec did not write.
    read: Callable[..., list[Any]] = store.read  # type: ignore[attr-defined]
    for table, columns in PAYLOAD_COLUMNS.items():
        for column in columns:
            values = [r[0] for r in read(f"SELECT {column} FROM {table}") if r[0] is not None]
            unwrapped = [v for v in values if not str(v).startswith("enc:")]
            assert not unwrapped, f"{table}.{column} written around the codec: {unwrapped[:2]}"
    payloads_seen = {
        f"{table}.{column}": len(read(f"SELECT {column} FROM {table} WHERE {column} IS NOT NULL"))
        for table, columns in PAYLOAD_COLUMNS.items()
        for column in columns
    }
    assert all(payloads_seen.values()), payloads_seen  # each column was exercised
    for table in _tables(store):
        for row in read(f"SELECT * FROM {table}"):
            assert MARK not in repr(row), f"{table} holds the payload in clear: {row!r}"

    if store_url.startswith("sqlite"):  # the file and its WAL, as bytes
        th.close()
        store.close()
        for path in tmp_path.glob("tether.db*"):
            assert MARK.encode() not in path.read_bytes(), f"{path.name} holds the payload"
