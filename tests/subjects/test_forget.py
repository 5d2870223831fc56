"""``Subject.forget()`` and ``export()`` on both stores: the subject's runs (steps,
attempts, children), the events that triggered them, memories, windows and preferences are
exported whole, then deleted with counts by kind; active runs are cancelled first; other
subjects keep everything."""

from __future__ import annotations

import json
from typing import Any, ClassVar

import tether
from tests.subjects.conftest import BOTH_STORES
from tether.testing import poll


def register(th: tether.Harness) -> None:
    @th.function(id="helper")
    def helper(ctx: tether.SyncContext) -> str:
        return str(ctx.step.run("shout", lambda: ctx.event.data["text"].upper()))

    @th.function(
        id="chat",
        trigger=tether.on_event("user.message"),
        subject="event.data.user",
        retries=tether.Retry(max_attempts=2, initial=0.01, jitter=False),
    )
    def chat(ctx: tether.SyncContext) -> dict[str, Any]:
        def hear() -> str:
            if ctx.attempt == 0:
                raise ConnectionError("flaky " + ctx.event.data["text"])
            return str(ctx.event.data["text"])

        heard = ctx.step.run("hear", hear)
        loud = ctx.step.invoke("loud", function="helper", data={"text": heard})
        return {"reply": loud}

    @th.function(id="napper", trigger=tether.on_event("user.nap"), subject="event.data.user")
    def napper(ctx: tether.SyncContext) -> None:
        ctx.step.run("before", lambda: ctx.event.data["text"])
        ctx.step.sleep("nap", "1h")


@BOTH_STORES
def test_export_then_forget_deletes_everything_of_one_subject_only(th: tether.Harness) -> None:
    register(th)
    with th.worker(concurrency=4):
        for user in ("user:1", "user:2"):
            th.send(tether.Event("user.message", {"user": user, "text": f"hi from {user}"}))
            th.send(tether.Event("user.nap", {"user": user, "text": f"nap {user}"}))
        poll(
            lambda: (
                {(r.function_id, r.status.value) for r in th.list_runs()}
                == {
                    ("chat", "completed"),
                    ("helper", "completed"),
                    ("napper", "sleeping"),
                }
                and len(th.list_runs()) == 6
            ),
            timeout=30,
        )
        one = th.subject("user:1")
        one.preferences["memory"] = False
        one.preferences["lang"] = "en"
        th.subject("user:2").preferences["lang"] = "de"
        for user in ("user:1", "user:2"):
            conv = th.context(f"conversation:{user}", budget=2000, subject=user)
            conv.add("user", f"window text of {user}")
            conv.add("assistant", "noted")
            conv.pin("name", f"pinned for {user}")
        th.context("unowned", budget=2000).add("user", "nobody's")
        assert one.windows() == ["conversation:user:1"]

        doc = one.export()
        json.dumps(doc)  # JSON-serialisable as it is
        assert doc["subject"] == "user:1"
        assert doc["preferences"] == {"memory": False, "lang": "en"}
        assert {r["function_id"] for r in doc["runs"]} == {"chat", "helper", "napper"}
        chat = next(r for r in doc["runs"] if r["function_id"] == "chat")
        assert chat["output"] == {"reply": "HI FROM USER:1"}
        hear = next(s for s in chat["steps"] if s["id"] == "hear")
        assert "flaky hi from user:1" in hear["attempts"][0]["error_message"]
        assert sorted(e["name"] for e in doc["events"]) == ["user.message", "user.nap"]
        (window,) = doc["windows"]
        assert window["key"] == "conversation:user:1"
        assert len(window["items"]) == 3 and "window text of user:1" in json.dumps(window)
        assert all(e["data"]["user"] == "user:1" for e in doc["events"])
        assert "user:2" not in json.dumps(doc)

        done = one.forget()
    assert dict(done) == {
        "memories": 0,
        "windows": 1,
        "items": 3,
        "preferences": 2,
        "runs": 3,
        "events": 2,
    }
    assert done.erased and done.residue is None
    left = th.list_runs()
    assert {r.subject for r in left} == {"user:2"} and len(left) == 3
    assert th.subjects() == ["user:2"]
    assert not th._subject("user:1").kept()
    assert th.subject("user:2").windows() == ["conversation:user:2"]
    assert th.context("unowned", budget=2000).items()  # a window of no subject stays
    names = sorted(row.name for row, _, _ in th.store.list_events(50))
    assert names == ["user.message", "user.nap"]
    assert th.subject("user:2").preferences.load() == {"lang": "de"}
    gone = th.store.read(  # type: ignore[attr-defined]
        "SELECT count(*) FROM steps WHERE run_id NOT IN (SELECT id FROM runs)"
    )
    assert gone[0][0] == 0
    attempts = th.store.read(  # type: ignore[attr-defined]
        "SELECT count(*) FROM attempts WHERE run_id NOT IN (SELECT id FROM runs)"
    )
    assert attempts[0][0] == 0
    # Forgetting twice is harmless; the subject is known again only once used again.
    again = th._subject("user:1").forget()
    assert sum(again.values()) == 0 and again.erased


@BOTH_STORES
def test_forget_cancels_an_executing_run_and_waits_for_it(th: tether.Harness) -> None:
    import threading

    started, release = threading.Event(), threading.Event()

    @th.function(id="slow", trigger=tether.on_event("slow"), subject="event.data.user")
    def slow(ctx: tether.SyncContext) -> str:
        ctx.step.run("first", lambda: (started.set(), release.wait(10)) and "ok")
        ctx.step.run("second", lambda: "never")
        return "done"

    with th.worker(concurrency=1):
        th.send(tether.Event("slow", {"user": "user:3"}))
        assert started.wait(10)
        timer = threading.Timer(0.3, release.set)
        timer.start()
        done = th._subject("user:3").forget(wait=10)
        timer.join()
    assert done["runs"] == 1 and done["events"] == 1
    assert th.list_runs() == []


def test_forget_destroys_the_subjects_key_when_the_store_keeps_one(tmp_path: Any) -> None:
    from tether.store.sqlite import SQLiteStore

    class KeyedStore(SQLiteStore):
        """A store with a key per subject (encryption at rest): forget() must destroy it."""

        destroyed: ClassVar[list[str]] = []

        def destroy_subject_key(self, subject: str) -> None:
            self.destroyed.append(subject)

    store = KeyedStore(str(tmp_path / "keyed.db"))
    store.migrate()
    th = tether.Harness(store)
    th.subject("user:9").preferences["lang"] = "it"
    th.subject("user:9").forget()
    assert KeyedStore.destroyed == ["user:9"]
    th.close()
    store.close()


@BOTH_STORES
def test_a_parent_outside_the_subject_sees_its_forgotten_child_fail(th: tether.Harness) -> None:
    @th.function(id="profile", subject="event.data.user")
    def profile(ctx: tether.SyncContext) -> None:
        ctx.step.sleep("wait-a-day", "1d")

    @th.function(id="batch")
    def batch(ctx: tether.SyncContext) -> str:
        try:
            ctx.step.invoke("one", function="profile", data={"user": "user:5"})
        except tether.StepFailed as exc:
            return f"{exc.error_type}: {exc}"
        return "child finished"

    with th.worker(concurrency=2):
        handle = th.enqueue("batch")
        poll(lambda: [r.status.value for r in th.list_runs("profile")] == ["sleeping"])
        done = th._subject("user:5").forget()
        out = handle.result(timeout=20)
    assert done["runs"] == 1
    assert out.startswith("RunCancelled") and "was forgotten" in out
    assert th.get_run(handle.run_id).subject is None


@BOTH_STORES
def test_an_event_a_subjects_run_waited_for_is_forgotten_with_it(th: tether.Harness) -> None:
    @th.function(id="ask", trigger=tether.on_event("asked"), subject="event.data.user")
    def ask(ctx: tether.SyncContext) -> Any:
        reply = ctx.step.wait_for_event("reply", event="replied", match="data.ticket", timeout=60)
        return None if reply is None else reply.data["text"]

    with th.worker(concurrency=2):
        th.send(tether.Event("asked", {"user": "user:8", "ticket": "T1"}))
        poll(lambda: [r.status.value for r in th.list_runs("ask")] == ["waiting"])
        th.send(tether.Event("replied", {"ticket": "T1", "text": "my address is 1 Rue X"}))
        th.send(tether.Event("replied", {"ticket": "T2", "text": "someone else's"}))
        poll(lambda: [r.status.value for r in th.list_runs("ask")] == ["completed"])
    doc = th._subject("user:8").export()
    assert sorted(e["name"] for e in doc["events"]) == ["asked", "replied"]
    done = th._subject("user:8").forget()
    assert done["runs"] == 1 and done["events"] == 2
    left = [row.data for row, _, _ in th.store.list_events(10)]
    assert left == ['{"ticket":"T2","text":"someone else\'s"}']
