"""``@th.function(subject=...)``: runs record their subject, children, replays and
``on_failure`` runs inherit it, producers plan it from the stored description, and bad
keys or values are refused before anything is written."""

from __future__ import annotations

from typing import Any

import pytest

import tether
from tests.subjects.conftest import BOTH_STORES
from tether.testing import poll


def _register(th: tether.Harness) -> None:
    @th.function(id="child")
    def child(ctx: tether.SyncContext) -> str:
        return str(ctx.step.run("echo", lambda: ctx.event.data["text"]))

    @th.function(id="chat", trigger=tether.on_event("user.message"), subject="event.data.user")
    def chat(ctx: tether.SyncContext) -> str:
        said = ctx.step.run("hear", lambda: ctx.event.data["text"])
        return str(ctx.step.invoke("again", function="child", data={"text": said}))

    def on_failure(ctx: tether.SyncContext) -> str:
        return str(ctx.event.data["run_id"])

    @th.function(id="fragile", subject=lambda e: e.data.get("user"), on_failure=on_failure)
    def fragile(ctx: tether.SyncContext) -> None:
        ctx.step.options(retries=tether.Retry(max_attempts=1)).run("boom", _boom)


def _boom() -> None:
    raise ValueError("no luck")


@BOTH_STORES
def test_runs_events_children_replays_and_follow_ups_carry_the_subject(
    th: tether.Harness,
) -> None:
    _register(th)
    with th.worker(concurrency=2):
        th.send(tether.Event("user.message", {"user": "user:42", "text": "hello"}, id="e1"))
        th.send(tether.Event("user.message", {"user": 7, "text": "other"}, id="e2"))
        with pytest.raises(tether.RunFailed):
            th.run("fragile", {"user": "user:42"})
        poll(
            lambda: (
                len(th.list_runs()) == 6
                and all(
                    r.status is tether.RunStatus.COMPLETED
                    for r in th.list_runs()
                    if r.function_id != "fragile"
                )
            ),
            timeout=30,
        )
        runs = {(r.function_id, r.subject) for r in th.list_runs()}
        original = next(r for r in th.list_runs("chat") if r.subject == "user:42")
        replayed = th.replay(original.id).result(timeout=20)
    assert replayed == "hello"
    assert ("chat", "user:42") in runs and ("chat", "7") in runs  # an integer id as text
    assert ("child", "user:42") in runs and ("child", "7") in runs  # children inherit
    assert ("fragile", "user:42") in runs
    assert ("fragile.on_failure", "user:42") in runs  # the follow-up holds the failed event
    assert {r.subject for r in th.list_runs("chat")} == {"user:42", "7"}
    assert all(r.subject == "user:42" for r in th.list_runs("chat") if r.replay_of)
    exported = th.store.export_subject_runs("user:42")  # type: ignore[attr-defined]
    assert [e["id"] for e in exported["events"]] == ["e1"]
    assert {r["function_id"] for r in exported["runs"]} == {
        "chat",
        "child",
        "fragile",
        "fragile.on_failure",
    }
    chat_run = next(r for r in exported["runs"] if r["function_id"] == "chat")
    assert [s["id"] for s in chat_run["steps"]] == ["hear", "again"]


@BOTH_STORES
def test_a_producer_plans_the_subject_from_the_stored_description(store_url: str) -> None:
    worker = tether.Harness(store_url)
    _register(worker)
    assert "chat" in {f["id"] for f in worker.store.registered_functions()}
    producer = tether.Harness(store_url)
    try:
        producer.send(tether.Event("user.message", {"user": "user:9", "text": "hi"}))
        (run,) = producer.list_runs("chat")
        assert run.subject == "user:9"
        # A callable key cannot travel: the producer refuses to plan that function's runs.
        with pytest.raises(tether.ConfigurationError, match="subject key"):
            producer.enqueue("fragile", {"user": "user:9"})
    finally:
        producer.close()
        worker.close()


@pytest.mark.parametrize("key", ["event.data[user]", "", 42])
def test_a_bad_subject_key_is_refused_at_registration(tmp_path: Any, key: Any) -> None:
    th = tether.Harness(f"sqlite:///{tmp_path / 't.db'}")
    with pytest.raises(tether.ConfigurationError, match="subject"):

        @th.function(id="f", subject=key)
        def f(ctx: tether.SyncContext) -> None:
            pass

    assert "f" not in th.functions
    th.close()


@pytest.mark.parametrize(
    ("data", "problem"),
    [
        ({"text": "no user"}, "missing"),
        ({"user": {"id": 1}, "text": "x"}, "not dict"),
        ({"user": "a/b", "text": "x"}, "'/'"),
        ({"user": "", "text": "x"}, "empty"),
        ({"user": True, "text": "x"}, "bool"),
    ],
)
def test_an_event_whose_subject_is_not_an_id_is_refused_and_nothing_is_written(
    tmp_path: Any, data: dict[str, Any], problem: str
) -> None:
    th = tether.Harness(f"sqlite:///{tmp_path / 't.db'}")
    _register(th)
    with pytest.raises(tether.InvalidEventError) as info:
        th.send(tether.Event("user.message", data))
    assert "subject" in str(info.value) and problem in str(info.value)
    assert th.list_runs() == []
    assert th.store.list_events(10) == []
    th.close()


def test_a_null_subject_means_the_run_belongs_to_no_subject(tmp_path: Any) -> None:
    th = tether.Harness(f"sqlite:///{tmp_path / 't.db'}")
    _register(th)
    th.send(tether.Event("user.message", {"user": None, "text": "anonymous"}))
    (run,) = th.list_runs()
    assert run.subject is None
    th.close()
