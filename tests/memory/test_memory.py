"""``th.memory(subject)`` as a user sees it, on both stores: the item life cycle (add, get,
list, update, delete, export, clear), tags, the coroutine twins, and bad input refused with
nothing written."""

from __future__ import annotations

import asyncio

import pytest

import tether
from tether.memory import MAX_TEXT_BYTES


def _rows(th: tether.Harness) -> int:
    return int(th.store.read("SELECT count(*) FROM memories")[0][0])  # type: ignore[attr-defined]


def test_add_get_list_and_the_exact_text_again(text_th: tether.Harness) -> None:
    mem = text_th.memory("user:42")
    a = mem.add("Prefers window seats", source="chat:1", tags=["travel"])
    assert (a.subject, a.text, a.source, a.tags, a.supersedes) == (
        "user:42",
        "Prefers window seats",
        "chat:1",
        ("travel",),
        None,
    )
    assert mem.get(a.id) == a
    assert mem.add("Prefers window seats") == a  # no duplicate
    b = mem.add("Vegetarian", tags=["food"])
    assert [m.id for m in mem.list()] == [a.id, b.id]
    assert [m.id for m in mem.list(tags=["food"])] == [b.id]
    assert _rows(text_th) == 2


def test_update_keeps_the_old_version_out_of_list_and_search_but_in_export(
    text_th: tether.Harness,
) -> None:
    mem = text_th.memory("user:42")
    old = mem.add("Lives in Lisbon", tags=["home"])
    new = mem.update(old.id, "Lives in Porto")
    assert new.id != old.id and new.supersedes == old.id and new.tags == ("home",)
    assert [m.id for m in mem.list()] == [new.id]
    assert mem.search("Lisbon") == []
    assert [h.id for h in mem.search("Porto")] == [new.id]
    exported = mem.export()
    assert [(e["id"], e["current"]) for e in exported] == [(old.id, False), (new.id, True)]
    with pytest.raises(tether.MemoryNotFound):
        mem.get(old.id)


def test_delete_and_clear(text_th: tether.Harness) -> None:
    mem = text_th.memory("user:42")
    a = mem.add("Has a dog named Rex")
    b = mem.add("Works night shifts")
    mem.delete(a.id)
    with pytest.raises(tether.MemoryNotFound):
        mem.get(a.id)
    with pytest.raises(tether.MemoryNotFound):
        mem.delete(a.id)
    assert mem.search("dog Rex") == []
    other = text_th.memory("user:7")
    other.add("Has a cat")
    assert mem.clear() == 1
    assert mem.list() == [] and mem.export() == []
    assert [m.text for m in other.list()] == ["Has a cat"]
    assert b.id not in {e["id"] for e in other.export()}


def test_another_subjects_id_is_not_found(text_th: tether.Harness) -> None:
    mine = text_th.memory("user:1").add("Account number 4417")
    theirs = text_th.memory("user:2")
    for call in (
        lambda: theirs.get(mine.id),
        lambda: theirs.update(mine.id, "hijacked"),
        lambda: theirs.delete(mine.id),
    ):
        with pytest.raises(tether.MemoryNotFound, match="user:2"):
            call()
    assert text_th.memory("user:1").get(mine.id).text == "Account number 4417"
    assert _rows(text_th) == 1


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ("", "empty"),
        ("   \n", "empty"),
        ("x" * (MAX_TEXT_BYTES + 1), "32 KiB"),
        ("é" * (MAX_TEXT_BYTES // 2 + 1), "over the limit"),  # the limit counts UTF-8 bytes
        (42, "is a str"),
    ],
)
def test_bad_text_is_refused_and_nothing_is_written(
    text_th: tether.Harness, text: object, match: str
) -> None:
    mem = text_th.memory("user:1")
    with pytest.raises(tether.InvalidMemory, match=match):
        mem.add(text)  # type: ignore[arg-type]
    item = mem.add("kept")
    with pytest.raises(tether.InvalidMemory, match=match):
        mem.update(item.id, text)  # type: ignore[arg-type]
    assert [m.text for m in mem.list()] == ["kept"] and _rows(text_th) == 1


def test_bad_tags_k_and_ids_are_refused(text_th: tether.Harness) -> None:
    mem = text_th.memory("user:1")
    with pytest.raises(tether.InvalidMemory, match="tags=\\('travel',\\)"):
        mem.add("a fact", tags="travel")
    with pytest.raises(tether.InvalidMemory, match="at most 32 tags"):
        mem.add("a fact", tags=[f"t{i}" for i in range(33)])
    with pytest.raises(tether.InvalidMemory, match="k is"):
        mem.search("fact", k=0)
    with pytest.raises(tether.MemoryNotFound):
        mem.get("no-such-id")
    with pytest.raises(tether.InvalidMemory, match="subject"):
        text_th.memory("")
    assert _rows(text_th) == 0


def test_the_size_limit_itself_is_accepted(text_th: tether.Harness) -> None:
    text = "y" * MAX_TEXT_BYTES
    assert text_th.memory("user:1").add(text).text == text


def test_preferences_memory_false_refuses_writes(text_th: tether.Harness) -> None:
    store = text_th.store
    mem = text_th.memory("user:9")
    kept = mem.add("written before opting out")
    store.set_subject_preferences("user:9", {"memory": False})  # type: ignore[attr-defined]
    with pytest.raises(tether.MemoryDisabled, match="user:9"):
        mem.add("must not be kept")
    with pytest.raises(tether.MemoryDisabled):
        mem.update(kept.id, "nor this")
    assert [m.text for m in mem.list()] == ["written before opting out"]
    mem.delete(kept.id)  # deleting stays allowed
    assert _rows(text_th) == 0
    store.set_subject_preferences("user:9", {"memory": True})  # type: ignore[attr-defined]
    assert mem.add("after opting in").text == "after opting in"


def test_coroutine_twins(text_th: tether.Harness) -> None:
    mem = text_th.memory("user:5")

    async def main() -> None:
        a = await mem.aadd("Speaks Portuguese", tags=["lang"])
        assert (await mem.aget(a.id)).text == "Speaks Portuguese"
        b = await mem.aupdate(a.id, "Speaks Portuguese and Spanish")
        assert [h.id for h in await mem.asearch("Spanish")] == [b.id]
        assert [m.id for m in await mem.alist(tags=["lang"])] == [b.id]
        assert len(await mem.aexport()) == 2
        items = await mem.aadd_many(["one fact", "two facts"])
        await mem.adelete(items[0].id)
        assert await mem.aclear() == 3

    asyncio.run(main())
    assert mem.list() == []


def test_add_many_is_one_batch_and_skips_duplicates(text_th: tether.Harness) -> None:
    mem = text_th.memory("user:5")
    first = mem.add("alpha")
    items = mem.add_many(["alpha", "beta", "gamma"], tags=["x"])
    assert items[0] == first and [i.text for i in items[1:]] == ["beta", "gamma"]
    with pytest.raises(tether.InvalidMemory):
        mem.add_many(["ok", ""])
    assert len(mem.list()) == 3


def test_harness_refuses_an_embedder_that_is_not_a_model() -> None:
    with pytest.raises(tether.ConfigurationError, match="provider:model"):
        tether.Harness("sqlite:///unused.db", embedder="minilm")
