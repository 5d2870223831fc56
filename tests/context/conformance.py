"""The behaviour every ``WindowLog`` must have: ``MemoryWindowLog`` is the reference, and a
store-backed log runs the same checks (``CHECKS``, each a function of a factory that returns
a new, empty log). See tests/context/test_log.py for how to parametrise them."""

from __future__ import annotations

import threading
from collections.abc import Callable

import pytest

from tether.context import (
    ContextItem,
    InvalidContextItem,
    StaleCompaction,
    WindowLog,
    WriteKeyConflict,
    message_item,
    pin_item,
)
from tether.llm.types import Message, ToolCall

MakeLog = Callable[[], WindowLog]


def user(text: str, key: str | None = None) -> ContextItem:
    return message_item(Message(role="user", content=text), key=key)


def call(call_id: str, name: str = "search") -> ContextItem:
    return message_item(
        Message(role="assistant", tool_calls=[ToolCall(id=call_id, name=name, arguments={})])
    )


def result(call_id: str, text: str = "ok") -> ContextItem:
    return message_item(Message(role="tool", content=text, tool_call_id=call_id))


def summary(through: int, previous: int | None, text: str = "Goal: x") -> ContextItem:
    return ContextItem(
        kind="summary", text=text, from_seq=1, through_seq=through, meta={"previous": previous}
    )


def conform_append_assigns_seq_and_time(make: MakeLog) -> None:
    log = make()
    first = log.append([user("a"), user("b")])
    second = log.append([user("c")])
    seqs = [i.seq for i in first + second]
    assert seqs == sorted(seqs) and len(set(seqs)) == 3 and seqs[0] >= 1
    assert all(i.created_at is not None for i in first + second)
    assert [i.content for i in log.items()] == ["a", "b", "c"]
    assert [i.content for i in log.items(after=seqs[0])] == ["b", "c"]
    assert log.items() == first + second


def conform_append_is_atomic(make: MakeLog) -> None:
    log = make()
    log.append([user("kept")])
    with pytest.raises(InvalidContextItem, match="unknown call id 'nope'"):
        log.append([user("not kept"), result("nope")])
    assert [i.content for i in log.items()] == ["kept"]


def conform_keys_make_writes_idempotent(make: MakeLog) -> None:
    log = make()
    a = log.append([user("hello", key="run1:0")])[0]
    again = log.append([user("hello", key="run1:0"), user("next", key="run1:1")])
    assert again[0] == a
    assert [i.content for i in log.items()] == ["hello", "next"]
    with pytest.raises(WriteKeyConflict, match="run1:0"):
        log.append([user("different", key="run1:0")])
    with pytest.raises(InvalidContextItem, match="twice in one batch"):
        log.append([user("x", key="k"), user("y", key="k")])
    assert len(log.items()) == 2


def conform_pins_replace_and_unpin(make: MakeLog) -> None:
    log = make()
    log.append([pin_item("plan", "v1"), pin_item("user", "Ada")])
    log.append([pin_item("plan", "v2")])
    assert {n: p.text for n, p in log.pins().items()} == {"plan": "v2", "user": "Ada"}
    log.append([pin_item("user", None)])
    assert list(log.pins()) == ["plan"]
    n = len(log.items())
    with pytest.raises(InvalidContextItem, match="no pin named 'user'"):
        log.append([pin_item("user", None)])
    assert len(log.items()) == n  # every item stays: the log is append-only
    assert [i.text for i in log.items() if i.kind == "pin"] == ["v1", "Ada", "v2", None]


def conform_summaries_swap_atomically(make: MakeLog) -> None:
    log = make()
    msgs = log.append([user(f"m{i}") for i in range(6)])
    assert log.summary() is None
    s1 = log.append([summary(msgs[2].seq, None, "first")])[0]
    assert log.summary() == s1
    with pytest.raises(StaleCompaction):
        log.append([summary(msgs[4].seq, None, "planned before s1")])
    with pytest.raises(InvalidContextItem, match="does not have"):
        log.append([summary(msgs[-1].seq + 50, s1.seq)])
    with pytest.raises(StaleCompaction, match="cover less"):
        log.append([summary(msgs[1].seq, s1.seq)])
    s2 = log.append([summary(msgs[4].seq, s1.seq, "second")])[0]
    assert log.summary() == s2
    assert [i.text for i in log.items() if i.kind == "summary"] == ["first", "second"]


def conform_tool_results_pair_with_calls(make: MakeLog) -> None:
    log = make()
    log.append([call("c1"), result("c1")])  # a call and its result in one batch
    with pytest.raises(InvalidContextItem, match="already has a result"):
        log.append([result("c1")])
    with pytest.raises(InvalidContextItem, match="already used"):
        log.append([call("c1")])
    with pytest.raises(InvalidContextItem, match="unknown call id"):
        log.append([result("c2")])
    log.append([call("c2"), user("meanwhile"), result("c2")])  # a late result is fine
    assert len(log.items()) == 5


def conform_artifacts_by_handle(make: MakeLog) -> None:
    log = make()
    big = "x" * 5000
    stored = log.append([call("c1"), result("c1", big)])[1]
    assert stored.kind == "artifact" and stored.handle
    found = log.artifact(stored.handle)
    assert found is not None and found.content == big
    assert log.artifact("art_000000000000") is None


def conform_clear_deletes_and_reopens(make: MakeLog) -> None:
    log = make()
    old = log.append([user("a"), pin_item("p", "t"), call("c1"), result("c1", "y" * 3000)])
    log.append([summary(old[0].seq, None)])
    assert log.clear() == 5
    assert log.items() == [] and log.pins() == {} and log.summary() is None
    assert log.artifact(old[-1].handle or "") is None
    fresh = log.append([user("new"), call("c1"), result("c1")])  # ids are free again
    assert [i.content for i in log.items()] == ["new", "", "ok"]
    assert fresh[0].seq < fresh[1].seq < fresh[2].seq


def conform_items_round_trip_json(make: MakeLog) -> None:
    log = make()
    log.append([user("a"), pin_item("p", "t"), call("c1"), result("c1", "z" * 2500)])
    log.append([summary(log.items()[0].seq, None)])
    for item in log.items():
        assert ContextItem.model_validate(item.model_dump(mode="json")) == item


def conform_concurrent_appends(make: MakeLog) -> None:
    log = make()

    def writer(n: int) -> None:
        for i in range(25):
            log.append([user(f"w{n}-{i}", key=f"w{n}:{i}")])

    threads = [threading.Thread(target=writer, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    items = log.items()
    assert len(items) == 100 and len({i.seq for i in items}) == 100
    assert {i.content for i in items} == {f"w{n}-{i}" for n in range(4) for i in range(25)}


CHECKS: list[Callable[[MakeLog], None]] = [
    conform_append_assigns_seq_and_time,
    conform_append_is_atomic,
    conform_keys_make_writes_idempotent,
    conform_pins_replace_and_unpin,
    conform_summaries_swap_atomically,
    conform_tool_results_pair_with_calls,
    conform_artifacts_by_handle,
    conform_clear_deletes_and_reopens,
    conform_items_round_trip_json,
    conform_concurrent_appends,
]
