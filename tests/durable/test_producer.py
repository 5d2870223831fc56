"""The web-process shape: a producer that registers no functions sends events and
enqueues runs, while worker processes hold the functions. The runs it plans carry every
control their function declares, exactly as if the worker had planned them."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import tether
from tests.durable.apps import chat_app
from tests.durable.apps.sandbox import Sandbox, wait_for

CHAT_APP = "tests/durable/apps/chat_app.py:th"


@pytest.fixture
def workers_harness(store_url: str) -> Iterator[tether.Harness]:
    """The worker side, in this process: its functions are registered in the store."""
    th = chat_app.build(store_url)
    th.store  # opening the store registers the functions  # noqa: B018
    yield th
    th.close()


@pytest.fixture
def producer(store_url: str, workers_harness: tether.Harness) -> Iterator[tether.Harness]:
    """A process that registers nothing: it only sends and enqueues."""
    th = tether.Harness(store_url)
    yield th
    th.close()


def _runs(th: tether.Harness, function_id: str) -> list[tether.Run]:
    return th.list_runs(function_id=function_id, limit=1000)


def test_producer_sends_while_another_process_registered_a_cron_function(
    producer: tether.Harness,
) -> None:
    assert producer.functions == {}
    producer.send(tether.Event("user.message", {"conversation_id": "c1"}))
    assert [r.function_id for r in producer.list_runs()] == ["reply"]


def test_producer_planned_runs_respect_concurrency_across_worker_processes(
    tmp_path: Path, store_url: str, producer: tether.Harness
) -> None:
    with Sandbox(tmp_path, store_url) as box:
        for _ in range(2):
            box.worker(concurrency=4, ref=CHAT_APP)
        producer.send(
            [tether.Event("user.message", {"conversation_id": "c1"}) for _ in range(5)]
            + [tether.Event("user.message", {"conversation_id": "c2"}) for _ in range(2)]
        )
        wait_for(
            lambda: [r.status for r in _runs(producer, "reply")] == ["completed"] * 7,
            45,
            f"7 completed runs; logs:\n{box.logs()}",
            poll=0.1,
        )
    spans: dict[str, list[tuple[float, float]]] = {}
    for run in _runs(producer, "reply"):
        spans.setdefault(run.output["conversation"], []).append(
            (run.output["start"], run.output["end"])
        )
    for conversation, intervals in spans.items():
        intervals.sort()
        for (_, end), (start, _) in itertools.pairwise(intervals):
            assert start >= end, f"two runs of {conversation} overlapped: {intervals}"
    # The two conversations did run side by side: the key, not the function, is limited.
    assert len(spans) == 2


def test_producer_planned_runs_respect_the_rate_limit(producer: tether.Harness) -> None:
    producer.send([tether.Event("ping", {}) for _ in range(3)])
    statuses = sorted(r.status.value for r in _runs(producer, "limited"))
    assert statuses == ["queued", "skipped", "skipped"]
    skipped = [r for r in _runs(producer, "limited") if r.status == "skipped"]
    assert all("rate limit" in (r.reason or "") for r in skipped)


def test_producer_planned_runs_keep_their_timeout(
    producer: tether.Harness, workers_harness: tether.Harness
) -> None:
    producer.send(tether.Event("slow.requested", {}))
    with workers_harness.worker():
        run = wait_for(
            lambda: next((r for r in _runs(producer, "slow") if r.status.is_terminal), None),
            20,
            "the slow run to end",
            poll=0.05,
        )
    assert run.status == "failed"
    assert run.error["type"] == "RunTimeout"


def test_producer_planned_runs_are_cancelled_by_their_cancel_on_event(
    producer: tether.Harness, workers_harness: tether.Harness
) -> None:
    producer.send(tether.Event("conversation.opened", {"conversation_id": "c9"}))
    with workers_harness.worker():
        wait_for(
            lambda: [r.status for r in _runs(producer, "closing")] == ["sleeping"],
            15,
            "the run asleep",
            poll=0.05,
        )
        producer.send(tether.Event("conversation.closed", {"conversation_id": "c9"}))
        wait_for(
            lambda: [r.status for r in _runs(producer, "closing")] == ["cancelled"],
            15,
            "the run cancelled",
            poll=0.05,
        )


def test_producer_planned_runs_keep_idempotency(producer: tether.Harness) -> None:
    producer.send(tether.Event("signup", {"email": "a@example.com"}))
    producer.send(tether.Event("signup", {"email": "a@example.com"}))
    assert len(_runs(producer, "once")) == 1


def test_producer_refuses_a_trigger_whose_key_is_a_callable_and_writes_nothing(
    producer: tether.Harness,
) -> None:
    before = len(producer.store.list_events(100))
    with pytest.raises(tether.ConfigurationError) as info:
        producer.send(tether.Event("callable.keyed", {"k": "x"}))
    message = str(info.value)
    assert "'by-callable'" in message
    assert "concurrency key" in message
    assert "expression string" in message
    assert len(producer.store.list_events(100)) == before
    assert _runs(producer, "by-callable") == []


def test_producer_enqueues_a_function_it_does_not_register(
    producer: tether.Harness, workers_harness: tether.Harness
) -> None:
    handles = [
        producer.enqueue("reply", {"conversation_id": "c5", "seconds": 0.2}) for _ in range(2)
    ]
    with workers_harness.worker():
        outputs = [h.result(timeout=20) for h in handles]
    (a, b) = sorted((o["start"], o["end"]) for o in outputs)
    assert b[0] >= a[1]  # the concurrency key held for enqueued runs too


def test_producer_run_of_a_remote_function_says_to_enqueue(producer: tether.Harness) -> None:
    with pytest.raises(tether.FunctionNotFound, match="enqueue"):
        producer.run("reply", {"conversation_id": "c1"})
    with pytest.raises(tether.FunctionNotFound, match="no function 'nope'"):
        producer.enqueue("nope")


def test_a_local_registration_does_not_hide_other_processes_functions(
    store_url: str, workers_harness: tether.Harness
) -> None:
    """A web process that registers a function of its own on an event still starts the
    workers' functions on the same event."""
    th = tether.Harness(store_url)

    @th.function(id="audit-log", trigger=tether.on_event("ping"))
    def audit(ctx: tether.SyncContext) -> None:
        return None

    try:
        th.send(tether.Event("ping", {}))
        assert sorted(r.function_id for r in th.list_runs()) == ["audit-log", "limited"]
    finally:
        th.close()


def _planned(th: tether.Harness, event: tether.Event) -> list[dict[str, Any]]:
    rows = th._intake.rows(event)
    remote = th._intake._remote_specs(th.store, {event.name})
    return [
        {
            "function": r.function_id,
            "flow": r.flow,
            "timeout": r.timeout_s,
            "key": r.idempotency_key,
        }
        for r in th._intake.plan(rows[0], remote)
    ]


def test_a_stored_description_plans_the_same_runs_as_the_registration(
    store_url: str,
) -> None:
    """Every control survives the trip through the store (compared on the plans)."""
    local = tether.Harness(store_url)
    remote = tether.Harness(store_url)

    @local.function(
        id="all-controls",
        trigger=tether.on_event("order", where="event.data.total > 10"),
        timeout="5m",
        concurrency=[
            tether.Concurrency(2),
            tether.Concurrency(1, key="event.data.user", scope="payments"),
        ],
        singleton=tether.Singleton(key="event.data.user", mode="cancel"),
        throttle=tether.Throttle(3, "1m", key="event.data.user"),
        rate_limit=tether.RateLimit(10, "1h"),
        debounce=tether.Debounce("30s", key="event.data.user", max_wait="2m"),
        priority=tether.Priority("event.data.rank"),
        batch=None,
        idempotency="event.data.order_id",
        cancel_on=[tether.cancel_on("order.void", match="data.order_id", timeout="1d")],
    )
    def all_controls(ctx: tether.SyncContext) -> None:
        return None

    try:
        local.store  # noqa: B018  (registers)
        event = tether.Event("order", {"total": 20, "user": "u1", "rank": 3, "order_id": "o1"})
        mine = _planned(local, event)
        theirs = _planned(remote, event)
        assert mine and [p["function"] for p in mine] == ["all-controls"]
        assert theirs == mine
        small = tether.Event("order", {"total": 5, "user": "u1", "rank": 3, "order_id": "o2"})
        assert _planned(remote, small) == []  # the where= filter travelled too
    finally:
        local.close()
        remote.close()
