"""Bad input gets a clear error that names the thing and the fix, and changes nothing.

Non-JSON and oversized step outputs, duplicate function ids, malformed events, run data
that is not a JSON object, and bad configuration. Each test reads the store back through
a connection of its own to show that nothing was half-written.
"""

from __future__ import annotations

import datetime
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel

import tether
from tether.codec import DEFAULT_MAX_OUTPUT_BYTES

Read = Callable[..., list[Any]]


class Opaque:
    def __repr__(self) -> str:
        return "<Opaque handle>"


def _table_counts(read: Read) -> dict[str, int]:
    return {
        table: read(f"SELECT count(*) FROM {table}")[0][0]
        for table in ("events", "runs", "steps", "attempts")
    }


# -- step outputs that cannot be checkpointed ---------------------------------------------


@pytest.mark.parametrize(
    ("value", "type_name"),
    [
        (datetime.datetime(2026, 1, 2, 3, 4, 5), "datetime"),
        ({"tags", "urgent"}, "set"),
        (Opaque(), "Opaque"),
    ],
    ids=["datetime", "set", "object"],
)
@pytest.mark.parametrize("flavour", ["sync", "async"])
def test_non_json_step_output_fails_at_once_without_retries(
    vth: tether.Harness, fresh_read: Read, value: Any, type_name: str, flavour: str
) -> None:
    calls = {"produce": 0, "after": 0}

    def produce() -> Any:
        calls["produce"] += 1
        return value

    def after() -> str:
        calls["after"] += 1
        return "never"

    retries = tether.Retry(max_attempts=5, initial=0.0, jitter=False)
    if flavour == "sync":

        @vth.function(id="make-report", retries=retries)
        def flow(ctx: tether.SyncContext) -> Any:
            ctx.step.run("produce", produce)
            return ctx.step.run("after", after)

    else:

        @vth.function(id="make-report", retries=retries)
        async def flow(ctx: tether.Context) -> Any:  # type: ignore[misc]
            await ctx.step.run("produce", produce)
            return await ctx.step.run("after", after)

    with pytest.raises(tether.RunFailed) as info:
        vth.run(flow, run_id="r1")

    assert calls == {"produce": 1, "after": 0}  # the first attempt, no retries
    message = info.value.error["message"]
    assert "StepOutputError" in message
    for part in ("'make-report'", "'produce'", type_name, "cannot be stored as JSON"):
        assert part in message
    assert "-> MyModel" in message and "dict, list, str" in message  # the fix

    run = vth.get_run("r1")
    assert run.status == tether.RunStatus.FAILED
    [step] = run.steps
    assert (step.id, step.status, step.output) == ("produce", "failed", None)
    assert [(a.number, a.error_type) for a in step.attempts] == [(0, "StepOutputError")]
    # On disk: the step is recorded as failed with no output, never as completed.
    assert fresh_read("SELECT step_id, status, output FROM steps WHERE run_id='r1'") == [
        ("produce", "failed", None)
    ]


class Ticket(BaseModel):
    id: int
    opened: datetime.datetime
    labels: list[str]


def test_pydantic_step_output_is_rebuilt_typed_after_a_durable_sleep(
    vth: tether.Harness, fresh_read: Read
) -> None:
    calls: list[int] = []
    seen: list[str] = []

    def load_ticket(ticket_id: int) -> Ticket:
        calls.append(ticket_id)
        return Ticket(id=ticket_id, opened=datetime.datetime(2026, 3, 1, 9, 30), labels=["a"])

    @vth.function()
    async def triage(ctx: tether.Context) -> dict[str, Any]:
        ticket = await ctx.step.run("load", load_ticket, ctx.event.data["id"])
        seen.append(type(ticket).__name__)
        await ctx.step.sleep("cool-off", 3600)  # suspends: the body runs again from the top
        return {"opened": ticket.opened.isoformat(), "labels": ticket.labels}

    assert vth.run(triage, {"id": 7}, run_id="t1") == {
        "opened": "2026-03-01T09:30:00",
        "labels": ["a"],
    }
    assert calls == [7]  # executed once, replayed after the sleep
    assert seen == ["Ticket", "Ticket"]  # typed on the first pass and on replay, not a dict
    [(stored,)] = fresh_read("SELECT output FROM steps WHERE run_id='t1' AND step_id='load'")
    assert json.loads(stored) == {"id": 7, "opened": "2026-03-01T09:30:00", "labels": ["a"]}


def test_pydantic_step_output_is_rebuilt_typed_in_a_new_process_state(
    store_url: str, fresh_read: Read
) -> None:
    """A run resumed by a fresh harness (as after a restart) gets the model back."""
    calls: list[int] = []

    def load_ticket(ticket_id: int) -> Ticket:
        calls.append(ticket_id)
        return Ticket(id=ticket_id, opened=datetime.datetime(2026, 3, 1), labels=[])

    def define(th: tether.Harness, seen: list[str]) -> tether.DurableFunction:
        @th.function(id="triage")
        def triage(ctx: tether.SyncContext) -> int:
            ticket = ctx.step.run("load", load_ticket, 3)
            seen.append(type(ticket).__name__)
            ctx.step.wait_for_event("reply", event="ticket.replied", timeout=3600)
            return ticket.id

        return triage

    first_seen: list[str] = []
    first = tether.Harness(store_url)
    define(first, first_seen)
    with pytest.raises(tether.RunTimeout):  # the caller stops waiting; the run waits on
        first.run("triage", run_id="t2", timeout=0.1)
    assert first.get_run("t2").status == tether.RunStatus.WAITING
    first.close()
    assert first_seen == ["Ticket"]

    second_seen: list[str] = []
    second = tether.Harness(store_url)
    try:
        define(second, second_seen)
        second.send({"name": "ticket.replied", "data": {}})
        with second.worker(poll_interval=0.02):
            assert tether.RunHandle(second, "t2").result(timeout=20) == 3
    finally:
        second.close()
    assert calls == [3]
    assert second_seen == ["Ticket"]


class Point(BaseModel):
    x: int


@pytest.mark.parametrize(
    "make",
    [lambda: (1, 2), lambda: {1: "a"}, lambda: Point(x=1)],
    ids=["tuple", "int-keys", "unannotated-model"],
)
def test_step_value_is_the_same_on_replay_or_refused_at_once(
    vth: tether.Harness, make: Callable[[], Any]
) -> None:
    seen: list[str] = []

    @vth.function()
    def flow(ctx: tether.SyncContext) -> None:
        seen.append(repr(ctx.step.run("value", make)))
        ctx.step.sleep("nap", 60)  # the body runs again from the top: "value" is replayed

    # a value that would change type on replay is refused at once, on the first run
    with pytest.raises(tether.RunFailed) as info:
        vth.run(flow)
    assert "StepOutputError" in info.value.error["message"]
    assert "round trip" in info.value.error["message"]
    assert len(seen) == 0


def test_annotated_values_come_back_with_their_type(vth: tether.Harness) -> None:
    seen: list[Any] = []

    def pair() -> tuple[int, int]:
        return (1, 2)

    def point() -> Point:
        return Point(x=1)

    @vth.function()
    def flow(ctx: tether.SyncContext) -> None:
        seen.append((ctx.step.run("pair", pair), ctx.step.run("point", point)))
        ctx.step.sleep("nap", 60)

    vth.run(flow)
    assert seen == [((1, 2), Point(x=1)), ((1, 2), Point(x=1))]


# -- oversized outputs ----------------------------------------------------------------------


def test_step_output_over_the_default_limit_fails_at_once(
    vth: tether.Harness, fresh_read: Read
) -> None:
    calls: list[int] = []

    def big() -> str:
        calls.append(1)
        return "x" * DEFAULT_MAX_OUTPUT_BYTES  # plus two quotes: just over 4 MB of JSON

    @vth.function(retries=tether.Retry(max_attempts=4, initial=0.0))
    def export(ctx: tether.SyncContext) -> int:
        return len(ctx.step.run("dump", big))

    with pytest.raises(tether.RunFailed) as info:
        vth.run(export, run_id="big")
    assert calls == [1]
    message = info.value.error["message"]
    for part in ("StepOutputError", "'dump'", "'export'", "4,194,306 bytes", "4,194,304-byte"):
        assert part in message
    assert "max_output_bytes" in message and "return a reference" in message
    [step] = vth.get_run("big").steps
    assert step.status == "failed" and len(step.attempts) == 1
    assert fresh_read("SELECT status, output FROM steps WHERE run_id='big'") == [("failed", None)]


def test_custom_output_limit_applies_to_steps_and_function_outputs(
    store_url: str, fresh_read: Read
) -> None:
    with tether.Harness(store_url, clock=tether.VirtualClock(), max_output_bytes=1000) as th:

        @th.function(retries=tether.Retry(max_attempts=3, initial=0.0))
        def step_output(ctx: tether.SyncContext) -> str:
            size = ctx.event.data["size"]
            ctx.step.run("fits", lambda: "y" * 900)
            return str(len(ctx.step.run("payload", lambda: {"text": "x" * size})["text"]))

        @th.function()
        def function_output(ctx: tether.SyncContext) -> str:
            return "z" * 1500

        assert th.run(step_output, {"size": 900}) == "900"  # under the limit: fine

        with pytest.raises(tether.RunFailed) as info:
            th.run(step_output, {"size": 2000}, run_id="over")
        message = info.value.error["message"]
        for part in ("'payload'", "'step_output'", "2,011 bytes", "1,000-byte limit"):
            assert part in message
        assert "max_output_bytes" in message
        steps = {s.id: s for s in th.get_run("over").steps}
        assert steps["fits"].status == "completed"
        assert steps["payload"].status == "failed" and len(steps["payload"].attempts) == 1

        with pytest.raises(tether.RunFailed) as info:
            th.run(function_output, run_id="fout")
        message = info.value.error["message"]
        assert "function 'function_output'" in message and "1,502 bytes" in message
        assert fresh_read("SELECT status, output FROM runs WHERE id='fout'") == [("failed", None)]


# -- duplicate function ids ---------------------------------------------------------------


def _make_handler(name: str, calls: list[str]) -> Callable[[tether.SyncContext], str]:
    def handle(ctx: tether.SyncContext) -> str:
        calls.append(name)
        return name

    handle.__qualname__ = f"{name}.handle"
    return handle


def test_duplicate_function_id_names_both_places_and_changes_nothing(
    vth: tether.Harness, fresh_read: Read
) -> None:
    calls: list[str] = []
    first = vth.function(trigger=tether.on_event("ticket.created"))(_make_handler("billing", calls))
    vth.store  # opened: registrations reach the store from now on  # noqa: B018
    version = vth.version
    before = dict(vth.functions)
    stored = fresh_read("SELECT id, triggers FROM functions")

    def cleanup(ctx: tether.SyncContext) -> None:
        calls.append("cleanup")

    with pytest.raises(tether.ConfigurationError) as info:
        vth.function(trigger=tether.on_event("ticket.closed"), on_failure=cleanup)(
            _make_handler("support", calls)
        )
    assert isinstance(info.value, tether.TetherError)
    message = str(info.value)
    assert "'handle'" in message  # the id
    assert "billing.handle" in message and "support.handle" in message  # both places
    assert "@th.function(id=" in message  # the fix

    assert vth.functions == before  # no on_failure handler slipped in either
    assert vth.version == version
    assert fresh_read("SELECT id, triggers FROM functions") == stored
    vth.send([{"name": "ticket.closed"}, {"name": "ticket.created"}])
    assert [r.function_id for r in vth.list_runs()] == ["handle"]  # only the first's trigger
    assert vth.run(first) == "billing"
    assert vth.run("handle") == "billing"
    assert "support" not in calls and "cleanup" not in calls


# -- malformed events ---------------------------------------------------------------------

BAD_EVENTS = [
    pytest.param("ticket.created", ["str, not an event", "tether.Event(name, data)"], id="string"),
    pytest.param(42, ["int, not an event", "tether.Event(name, data)"], id="number"),
    pytest.param({"data": {"id": 1}}, ["no 'name'", "expected {'name': str"], id="no-name"),
    pytest.param({"name": ""}, ["'name'", "non-empty string"], id="empty-name"),
    pytest.param(
        {"name": "ticket.created", "data": [1, 2]},
        ["'data' is a list", "'data': dict"],
        id="data-not-dict",
    ),
    pytest.param(
        {"name": "ticket.created", "data": {}, "payload": 1},
        ["unknown keys ['payload']", "expected {'name': str"],
        id="extra-keys",
    ),
    pytest.param(
        {"name": "ticket.created", "data": {"at": datetime.datetime(2026, 1, 1)}},
        ["'ticket.created'", "cannot be stored as JSON", "datetime", "convert datetimes"],
        id="non-json-data",
    ),
    pytest.param(
        tether.Event("ticket.created", {"tags": {"a"}}),
        ["'ticket.created'", "set", "send JSON values only"],
        id="event-with-set",
    ),
    pytest.param(
        {"name": "ticket.created", "ts": "yesterday"},
        ["event #0 is not valid", "ts", "valid datetime"],
        id="bad-ts",
    ),
    pytest.param([], ["no events to send", "pass an Event"], id="empty-list"),
]


@pytest.mark.parametrize(("event", "parts"), BAD_EVENTS)
def test_malformed_event_is_rejected_and_nothing_is_stored(
    th: tether.Harness, fresh_read: Read, event: Any, parts: list[str]
) -> None:
    @th.function(trigger=tether.on_event("ticket.created"))
    def triage(ctx: tether.SyncContext) -> None:
        return None

    assert th.list_runs() == []  # the store file exists
    before = _table_counts(fresh_read)
    with pytest.raises(tether.InvalidEventError) as info:
        th.send(event)
    for part in parts:
        assert part in str(info.value)
    assert (
        _table_counts(fresh_read)
        == before
        == {
            "events": 0,
            "runs": 0,
            "steps": 0,
            "attempts": 0,
        }
    )
    # The harness is unharmed: a good event goes through afterwards.
    th.send({"name": "ticket.created", "data": {"id": 1}})
    assert _table_counts(fresh_read)["runs"] == 1


def test_one_bad_event_in_a_list_stores_none_of_them(th: tether.Harness, fresh_read: Read) -> None:
    @th.function(trigger=tether.on_event("ticket.created"))
    def triage(ctx: tether.SyncContext) -> None:
        return None

    assert th.list_runs() == []
    good = {"name": "ticket.created", "data": {"id": 1}, "id": "good-1"}
    batch = [good, tether.Event("ticket.created", {"id": 2}, id="good-2"), {"name": "x", "d": 1}]
    with pytest.raises(tether.InvalidEventError, match=r"event #2 .*unknown keys \['d'\]"):
        th.send(batch)
    with pytest.raises(tether.InvalidEventError, match=r"event #1 .*str, not an event"):
        th.send(e for e in [good, "oops"])
    assert _table_counts(fresh_read) == {"events": 0, "runs": 0, "steps": 0, "attempts": 0}
    # Nothing was remembered for deduplication either: the good ids are still new.
    th.send(batch[:2])
    assert sorted(r[0] for r in fresh_read("SELECT id FROM events")) == ["good-1", "good-2"]
    assert _table_counts(fresh_read)["runs"] == 2


# -- run data that is not a JSON object --------------------------------------------------


@pytest.mark.parametrize(
    ("data", "parts"),
    [
        pytest.param([1, 2], ["got list", "{'value': ...}"], id="list"),
        pytest.param("hello", ["got str", "{'value': ...}"], id="string"),
        pytest.param(7, ["got int", "{'value': ...}"], id="number"),
        pytest.param(
            {"when": datetime.date(2026, 1, 1)},
            ["cannot be stored as JSON", "date", "JSON values only"],
            id="non-json-value",
        ),
    ],
)
def test_run_data_that_is_not_a_json_object_creates_no_run(
    vth: tether.Harness, fresh_read: Read, data: Any, parts: list[str]
) -> None:
    calls: list[int] = []

    @vth.function()
    def job(ctx: tether.SyncContext) -> None:
        calls.append(1)

    assert vth.list_runs() == []
    for start in (vth.run, vth.enqueue):
        with pytest.raises(tether.InvalidEventError) as info:
            start(job, data, run_id="nope")
        assert "run data" in str(info.value)
        for part in parts:
            assert part in str(info.value)
    assert calls == []
    assert fresh_read("SELECT count(*) FROM runs") == [(0,)]
    assert vth.run(job, {"value": 1}) is None  # wrapped as the message says: fine
    assert calls == [1]


# -- configuration ------------------------------------------------------------------------


def test_retry_with_no_attempts_is_refused(vth: tether.Harness) -> None:
    with pytest.raises(tether.ConfigurationError, match=r"max_attempts=0.*at least 1 attempt"):
        tether.Retry(max_attempts=0)
    with pytest.raises(tether.ConfigurationError, match="'exponential', 'linear' or 'constant'"):
        tether.Retry(backoff="fibonacci")  # type: ignore[arg-type]
    with pytest.raises(tether.ConfigurationError, match=r"retries= takes tether.Retry"):

        @vth.function(retries=4)  # type: ignore[call-overload]
        def flow(ctx: tether.SyncContext) -> None:
            return None

    assert vth.functions == {}


@pytest.mark.parametrize(
    ("kwargs", "parts"),
    [
        pytest.param(
            {"durability": "fast"}, ["durability='fast'", "'process'", "'power'"], id="durability"
        ),
        pytest.param(
            {"store": "redis://localhost/0"},
            ["unknown scheme 'redis'", "sqlite:///path.db", "postgresql://"],
            id="scheme",
        ),
        pytest.param(
            {"store": "sqlite:///:memory:"},
            ["names no file", "sqlite:///relative/path.db", "in-memory"],
            id="memory",
        ),
        pytest.param({"store": "sqlite://"}, ["names no file"], id="no-path"),
    ],
)
def test_bad_harness_configuration_is_refused_and_creates_no_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, kwargs: dict[str, Any], parts: list[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("TETHER_STORE", raising=False)
    with pytest.raises(tether.ConfigurationError) as info:
        th = tether.Harness(**kwargs)
        try:
            th.list_runs()  # the store opens on first use
        finally:
            th.close()
    for part in parts:
        assert part in str(info.value)
    assert list(tmp_path.iterdir()) == []


# -- records and keys named at construction -----------------------------------------------


def test_an_event_built_with_bad_fields_is_an_invalid_event_error() -> None:
    with pytest.raises(tether.InvalidEventError) as info:
        tether.Event("m", "x")  # type: ignore[arg-type]
    message = str(info.value)
    assert "data" in message and "tether.Event(name: str, data: dict" in message
    with pytest.raises(tether.InvalidEventError, match="ts"):
        tether.Event("m", {}, ts="yesterday")  # type: ignore[arg-type]


def test_an_unknown_run_id_raises_run_not_found(th: tether.Harness) -> None:
    for call in (th.get_run, th.cancel, lambda rid: tether.RunHandle(th, rid).status()):
        with pytest.raises(tether.RunNotFound) as info:
            call("nope")
        assert info.value.run_id == "nope"
        assert "`tether runs`" in str(info.value)


@pytest.mark.parametrize(
    ("key", "suggestion"),
    [
        ("event.data['id']", "did you mean 'event.data.id'?"),
        ('event.data["user id"]', None),
        ("event.data.(x)", None),
    ],
)
def test_a_key_path_that_is_not_a_dotted_path_is_refused_at_registration(
    th: tether.Harness, key: str, suggestion: str | None
) -> None:
    with pytest.raises(tether.ConfigurationError) as info:

        @th.function(trigger=tether.on_event("x"), concurrency=tether.Concurrency(1, key=key))
        def keyed(ctx: tether.SyncContext) -> None:
            return None

    assert "is not a key path" in str(info.value)
    if suggestion:
        assert suggestion in str(info.value)
    assert th.functions == {}
    with pytest.raises(tether.ConfigurationError, match="is not a key path"):
        th.function(idempotency="event.data[0]")(lambda ctx: None)
