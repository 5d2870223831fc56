"""Context windows in the store, on both backends: the window-log conformance suite, the
payload codec with the window's subject, atomic appends across stores, and the methods the
subjects feature calls (``window_keys``, ``export_window``, ``delete_subject_windows``,
``clear_window``)."""

from __future__ import annotations

import base64
import threading
import uuid
from collections.abc import Callable

import pytest

import tether
from tests.context.conformance import CHECKS, MakeLog, call, result, user
from tether.context import InvalidContextItem, message_item, pin_item
from tether.context.stored import StoreWindowLog
from tether.llm.types import Message
from tether.store import PayloadCodec, open_store

MARK = "Zk4-window-marker"


@pytest.mark.parametrize("check", CHECKS, ids=lambda c: c.__name__.removeprefix("conform_"))
def test_store_log_conforms(th: tether.Harness, check: Callable[[MakeLog], None]) -> None:
    check(lambda: StoreWindowLog(th.store, f"w-{uuid.uuid4().hex[:8]}"))


class SubjectCodec(PayloadCodec):
    """Wraps each payload with the subject it was given; refuses a mismatched decode."""

    def __init__(self) -> None:
        self.subjects: list[str | None] = []

    def encode(self, text: str, subject: str | None = None) -> str:
        self.subjects.append(subject)
        return f"enc:{subject}:" + base64.b64encode(text.encode()).decode()

    def decode(self, stored: str | bytes, subject: str | None = None) -> str:
        text = stored if isinstance(stored, str) else bytes(stored).decode()
        prefix = f"enc:{subject}:"
        assert text.startswith(prefix), f"decoded {text[:30]!r} with subject {subject!r}"
        return base64.b64decode(text[len(prefix) :]).decode()


def test_items_go_through_the_codec_with_the_subject(store_url: str) -> None:
    codec = SubjectCodec()
    store = open_store(store_url, codec=codec)
    try:
        log = StoreWindowLog(store, "conv", subject="user:42")
        log.append([user(f"my code is {MARK}"), pin_item("secret", MARK)])
        log.append([call("c1"), result("c1", MARK * 200)])
        assert {s for s in codec.subjects} == {"user:42"}
        assert next(i.content for i in log.items()) == f"my code is {MARK}"
        assert log.pins()["secret"].text == MARK
        rows = store.read("SELECT payload FROM window_items")
        assert rows and all(MARK not in r[0] and r[0].startswith("enc:user:42:") for r in rows)
        # another subject cannot reopen the window
        with pytest.raises(tether.ConfigurationError, match="belongs to subject 'user:42'"):
            StoreWindowLog(store, "conv", subject="user:7").append([user("x")])
    finally:
        store.close()


def test_two_stores_append_to_one_log(store_url: str) -> None:
    """Two store objects (two connections, as two processes have) share one log: every
    append lands once, with distinct seqs, and idempotent keys hold across them."""
    stores = [open_store(store_url) for _ in range(2)]
    try:
        logs = [StoreWindowLog(s, "shared") for s in stores]
        errors: list[BaseException] = []

        def writer(n: int) -> None:
            try:
                for i in range(20):
                    logs[n % 2].append([user(f"{n}-{i}", key=f"k{n}:{i}")])
                    logs[(n + 1) % 2].append([user(f"{n}-{i}", key=f"k{n}:{i}")])  # replayed
            except BaseException as exc:  # pragma: no cover - reported below
                errors.append(exc)

        threads = [threading.Thread(target=writer, args=(n,)) for n in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=60)
        assert not errors
        items = logs[0].items()
        assert len(items) == 80 and len({i.seq for i in items}) == 80
        assert logs[1].items() == items
    finally:
        for s in stores:
            s.close()


def test_bad_batch_writes_nothing(th: tether.Harness) -> None:
    log = StoreWindowLog(th.store, "bad")
    log.append([user("kept")])
    with pytest.raises(InvalidContextItem, match="unknown call id"):
        log.append([user("not kept"), result("ghost")])
    with pytest.raises(InvalidContextItem, match="not a ContextItem"):
        log.append([user("not kept"), Message(role="user", content="raw")])  # type: ignore[list-item]
    assert [i.content for i in log.items()] == ["kept"]
    assert th.store.read("SELECT last_seq FROM windows WHERE key='bad'") == [(1,)]


def test_subject_methods(th: tether.Harness) -> None:
    store = th.store
    a = StoreWindowLog(store, "user:1/support", subject="user:1")
    b = StoreWindowLog(store, "user:1/sales", subject="user:1")
    other = StoreWindowLog(store, "user:2/support", subject="user:2")
    a.append([user("hello"), message_item(Message(role="assistant", content="hi"))])
    b.append([user("price?")])
    other.append([user("unrelated")])
    assert store.window_keys("user:1") == ["user:1/sales", "user:1/support"]
    doc = store.export_window("user:1/support")
    assert doc["key"] == "user:1/support" and doc["subject"] == "user:1"
    assert [i["message"]["content"] for i in doc["items"]] == ["hello", "hi"]
    assert store.export_window("nope") == {}
    assert store.clear_window("user:1/sales") == 1
    assert b.items() == [] and store.window_keys("user:1") == ["user:1/sales", "user:1/support"]
    assert store.delete_subject_windows("user:1") == {"windows": 2, "items": 2}
    assert store.window_keys("user:1") == []
    assert store.read("SELECT count(*) FROM window_items WHERE window_key LIKE 'user:1/%'") == [
        (0,)
    ]
    assert [i.content for i in other.items()] == ["unrelated"]
    listed = store.list_windows()
    assert [w["key"] for w in listed] == ["user:2/support"] and listed[0]["items"] == 1


def test_durable_window_end_to_end(vth: tether.Harness) -> None:
    """ctx.step.llm(context=) with compaction and a resumed body, on this backend: one
    reply per call, one summary, nothing twice."""
    from tether.context import extractive_summarizer
    from tether.testing import FakeLLMServer, Reply

    with FakeLLMServer() as fake:
        fake.set_default(Reply("ok"))
        model = f"openai-compatible:{fake.url}/v1#tiny"

        @vth.function(id="talk")
        async def talk(ctx: tether.Context) -> list[str]:
            w = ctx.context("talk", budget=700, summarizer=extractive_summarizer, subject="u:1")
            for i in range(14):
                await w.add("user", f"turn {i} srv-{i} " + "word " * 50)
                await ctx.step.llm("reply", model=model, context=w, max_tokens=16)
            await ctx.step.sleep("pause", 5)  # the body runs again from the top
            return [i.kind for i in await w.items()]

        kinds = vth.run(talk)
        assert kinds.count("message") == 28 and kinds.count("summary") >= 1
        assert fake.request_count() == 14
    assert vth.store.delete_subject_windows("u:1") == {"windows": 1, "items": len(kinds)}
