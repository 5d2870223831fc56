"""The store's long-term memory tables (``store/memories.py``) on both backends: items and
their versions, the full-text index kept in step, vectors, replay keys, subjects, and the
subject-wide deletion the subject facade's ``forget()`` relies on."""

from __future__ import annotations

import base64
import struct
from collections.abc import Iterator

import pytest

from tether.errors import MemoryNotFound
from tether.store import PayloadCodec, open_store
from tether.store.memories import NewMemory, query_terms
from tether.store.sql import SQLStore

T0 = 1_700_000_000.0
DIM = 4


class SubjectCodec(PayloadCodec):
    """Wraps each payload with the subject it belongs to, and checks it on the way out."""

    def encode(self, text: str, subject: str | None = None) -> str:
        return f"enc[{subject}]:" + base64.b64encode(text.encode()).decode()

    def decode(self, stored: str | bytes, subject: str | None = None) -> str:
        text = stored if isinstance(stored, str) else bytes(stored).decode()
        prefix = f"enc[{subject}]:"
        assert text.startswith(prefix), f"payload of another subject read as {subject}: {text}"
        return base64.b64decode(text[len(prefix) :]).decode()


@pytest.fixture
def store(store_url: str) -> Iterator[SQLStore]:
    s = open_store(store_url, codec=SubjectCodec())
    assert isinstance(s, SQLStore)
    yield s
    s.close()


def vec(*values: float) -> bytes:
    return struct.pack(f"<{DIM}f", *values)


def new(
    item: str,
    text: str,
    subject: str = "user:1",
    *,
    at: float = T0,
    key: str | None = None,
    tags: tuple[str, ...] = (),
    vector: bytes | None = None,
) -> NewMemory:
    return NewMemory(
        item,
        subject,
        text,
        "chat",
        tags,
        at,
        write_key=key,
        vector=vector,
        model=None if vector is None else "test:model",
        dimension=None if vector is None else DIM,
    )


def found(store: SQLStore, subject: str, query: str) -> list[str]:
    """The ids matching any word of the query, sorted."""
    matches = store.memory_search_sources(subject, query_terms(query), 50, None)[1]
    return sorted({i for ids in matches.values() for i in ids})


def test_an_item_round_trips_and_payloads_are_encoded_with_their_subject(store: SQLStore) -> None:
    row, created = store.memory_add(new("m1", "Prefers window seats", tags=("travel",)))
    assert created and row.id == "m1" and row.tags == ("travel",)
    got = store.memory_get("user:1", "m1")
    assert (got.text, got.source, got.tags, got.created_at) == (
        "Prefers window seats",
        "chat",
        ("travel",),
        T0,
    )
    (raw_text, raw_source) = store.read("SELECT text, source FROM memories")[0]
    assert raw_text.startswith("enc[user:1]:") and "window" not in raw_text
    assert raw_source.startswith("enc[user:1]:")


def test_the_exact_current_text_again_returns_the_existing_item(store: SQLStore) -> None:
    store.memory_add(new("m1", "Allergic to peanuts"))
    again, created = store.memory_add(new("m2", "Allergic to peanuts", at=T0 + 5))
    assert not created and again.id == "m1"
    other, created = store.memory_add(new("m3", "Allergic to peanuts", subject="user:2"))
    assert created and other.id == "m3"  # another subject's same text is its own item
    assert [r.id for r in store.memory_list("user:1")] == ["m1"]


def test_update_supersedes_and_old_versions_leave_list_and_search_but_stay_in_export(
    store: SQLStore,
) -> None:
    store.memory_add(new("m1", "Lives in Lisbon"))
    newer = store.memory_update("m1", new("m2", "Lives in Porto", at=T0 + 1))
    assert newer.supersedes == "m1"
    assert [r.id for r in store.memory_list("user:1")] == ["m2"]
    assert found(store, "user:1", "Lisbon") == []
    assert found(store, "user:1", "Porto") == ["m2"]
    exported = store.export_memories("user:1")
    assert [(e["id"], e["current"], e["supersedes"]) for e in exported] == [
        ("m1", False, None),
        ("m2", True, "m1"),
    ]
    assert exported[0]["text"] == "Lives in Lisbon" and exported[0]["superseded_at"] == T0 + 1
    with pytest.raises(MemoryNotFound):
        store.memory_update("m1", new("m3", "Lives in Faro"))  # no longer current
    with pytest.raises(MemoryNotFound):
        store.memory_get("user:1", "m1")


def test_delete_takes_the_item_and_its_older_versions(store: SQLStore) -> None:
    store.memory_add(new("m1", "Drives a blue car"))
    store.memory_update("m1", new("m2", "Drives a red car", at=T0 + 1))
    store.memory_add(new("m3", "Has a cat"))
    assert store.memory_delete("user:1", "m2", None, T0 + 2) == 2
    assert [e["id"] for e in store.export_memories("user:1")] == ["m3"]
    assert found(store, "user:1", "car drives") == []
    with pytest.raises(MemoryNotFound):
        store.memory_delete("user:1", "m2", None, T0 + 3)


def test_another_subjects_id_is_not_found_and_nothing_changes(store: SQLStore) -> None:
    store.memory_add(new("m1", "Secret of user one"))
    with pytest.raises(MemoryNotFound, match="user:2"):
        store.memory_get("user:2", "m1")
    with pytest.raises(MemoryNotFound):
        store.memory_delete("user:2", "m1", None, T0)
    with pytest.raises(MemoryNotFound):
        store.memory_update("m1", new("m9", "overwritten", subject="user:2"))
    assert store.memory_get("user:1", "m1").text == "Secret of user one"
    assert store.export_memories("user:2") == []


def test_full_text_matches_keep_to_the_subject_term_by_term(store: SQLStore) -> None:
    for i in range(20):
        store.memory_add(new(f"a{i}", f"Order ORD-{10000 + i} shipped to the customer"))
        store.memory_add(new(f"b{i}", f"Order ORD-{10000 + i} shipped", subject="user:2"))
    store.memory_add(new("a-x", "Order ORD-99812 shipped to the customer"))
    store.memory_add(new("b-x", "Order ORD-99812 shipped", subject="user:2"))
    terms = query_terms("Where is ORD-99812? Shipping!")
    assert terms == ["ord", "99812", "shipping"]  # function words left out
    matches = store.memory_search_sources("user:1", terms, 50, None)[1]
    assert matches["99812"] == ["a-x"]
    assert len(matches["ord"]) == 21 and all(i.startswith("a") for i in matches["ord"])
    assert len(matches["shipping"]) == 21  # stemmed: "shipped" holds "shipping"
    assert found(store, "user:2", "99812") == ["b-x"]
    assert found(store, "user:1", "") == [] and found(store, "user:3", "order") == []
    capped = store.memory_search_sources("user:1", ["order"], 5, None)[1]
    assert len(capped["order"]) == 6  # cap + 1: the caller knows there are more


def test_vectors_are_kept_with_their_model_and_the_index_records_it(store: SQLStore) -> None:
    assert store.memory_index() is None
    store.memory_add(new("m1", "one", vector=vec(1, 0, 0, 0)))
    store.memory_add(new("m2", "two", vector=vec(0, 1, 0, 0), tags=("x",)))
    store.memory_add(new("m3", "three", subject="user:2", vector=vec(0, 0, 1, 0)))
    assert store.memory_index() == ("test:model", DIM)
    index, _, items, vectors = store.memory_search_sources("user:1", [], 5, "test:model")
    assert index == ("test:model", DIM)
    assert sorted(v[0] for v in vectors) == ["m1", "m2"]
    assert {v[0]: v[3] for v in vectors}["m2"] == vec(0, 1, 0, 0)
    assert sorted(i[0] for i in items) == ["m1", "m2"]
    assert store.memory_search_sources("user:1", [], 5, "other:model")[3] == []
    store.memory_update("m2", new("m4", "two again", vector=vec(0, 1, 1, 0)))
    vectors = store.memory_search_sources("user:1", [], 5, "test:model")[3]
    assert sorted(v[0] for v in vectors) == ["m1", "m4"]  # the old version's vector went


def test_reindex_reads_items_without_a_vector_of_the_new_model(store: SQLStore) -> None:
    store.memory_add(new("m1", "one", vector=vec(1, 0, 0, 0)))
    store.memory_add(new("m2", "two"))
    todo = store.memory_to_reindex("new:model", 0, 10)
    assert [(t[1], t[2]) for t in todo] == [("user:1", "one"), ("user:1", "two")]
    store.memory_set_index("new:model", 2, T0)
    store.memory_put_vectors(
        [(seq, s, struct.pack("<2f", 1, 0)) for seq, s, _ in todo], "new:model", 2
    )
    assert store.memory_to_reindex("new:model", 0, 10) == []
    # one vector per item: the new model's replaced the old one's
    assert store.memory_search_sources("user:1", [], 5, "test:model")[3] == []
    assert store.memory_drop_vectors("new:model") == 0
    assert store.memory_index() == ("new:model", 2)
    assert len(store.memory_search_sources("user:1", [], 5, "new:model")[3]) == 2


def test_a_replayed_write_key_is_applied_once(store: SQLStore) -> None:
    first, created = store.memory_add(new("m1", "Likes jazz", key="run1:0"))
    assert created
    again, created = store.memory_add(new("m1-replay", "Likes jazz", key="run1:0"))
    assert not created and again.id == "m1"
    upd = store.memory_update("m1", new("m2", "Likes blues", key="run1:1"))
    # the replayed update finds its key even though m1 is no longer current
    assert store.memory_update("m1", new("m2-replay", "Likes blues", key="run1:1")).id == upd.id
    assert store.memory_delete("user:1", "m2", "run1:2", T0) == 2
    assert store.memory_delete("user:1", "m2", "run1:2", T0) == 0  # replayed: no error
    # replaying the add after the delete must not bring the item back
    replayed, created = store.memory_add(new("m1-replay", "Likes jazz", key="run1:0"))
    assert not created and replayed.id == "m1"
    assert store.export_memories("user:1") == []


def test_subjects_preferences_and_listing(store: SQLStore) -> None:
    assert store.subject_preferences("user:1") is None
    store.ensure_subject("user:1")
    assert store.subject_preferences("user:1") == {}
    store.set_subject_preferences("user:1", {"memory": False, "model": "x"})
    store.set_subject_preferences("user:2", {"tone": "brief"})
    assert store.subject_preferences("user:1") == {"memory": False, "model": "x"}
    raw = store.read("SELECT preferences FROM subjects WHERE id='user:2'")[0][0]
    assert raw.startswith("enc[user:2]:")
    store.memory_add(new("m1", "only a memory", subject="user:3"))
    assert store.list_subjects() == ["user:1", "user:2", "user:3"]
    assert store.delete_subject_row("user:1") == 1
    assert store.delete_subject_row("user:1") == 0
    assert store.list_subjects() == ["user:2", "user:3"]


def test_deleting_a_subjects_memories_takes_rows_index_entries_vectors_and_keys(
    store: SQLStore,
) -> None:
    for i in range(5):
        store.memory_add(new(f"a{i}", f"alpha fact {i}", vector=vec(1, 0, 0, i), key=f"r:{i}"))
    store.memory_update("a0", new("a9", "alpha fact nine", vector=vec(1, 1, 0, 0)))
    store.memory_add(new("b1", "alpha fact of user two", subject="user:2", vector=vec(0, 1, 0, 0)))
    assert store.delete_subject_memories("user:1") == 6
    assert store.export_memories("user:1") == []
    assert found(store, "user:1", "alpha fact") == []
    assert found(store, "user:2", "alpha") == ["b1"]
    counts = store.read(
        "SELECT (SELECT count(*) FROM memory_vectors WHERE subject='user:1'), "
        "(SELECT count(*) FROM memory_writes WHERE subject='user:1'), "
        "(SELECT count(*) FROM memory_vectors)"
    )[0]
    assert tuple(counts) == (0, 0, 1)
    if store.dialect.name == "sqlite":
        # the merged index holds one document: user two's
        (docs,) = store.read("SELECT count(*) FROM memories_fts WHERE memories_fts MATCH 'alpha'")[
            0
        ]
        assert docs == 1
    else:
        (indexed,) = store.read("SELECT count(*) FROM memories WHERE tsv IS NOT NULL")[0]
        assert indexed == 1
    assert store.delete_subject_memories("user:1") == 0


def test_pgvector_is_used_only_where_the_extension_can_be_created(store: SQLStore) -> None:
    """Debian's PostgreSQL here has no pgvector: the attempt must leave the store working,
    create nothing, and searches keep the exact scan. (Where pgvector is installed, this
    asserts the HNSW table instead.)"""
    store.memory_add(new("m1", "one", vector=vec(1, 0, 0, 0)))
    enabled = store.memory_pgvector(DIM)
    tables = {
        r[0]
        for r in store.read(
            "SELECT name FROM sqlite_master"
            if store.dialect.name == "sqlite"
            else "SELECT table_name FROM information_schema.tables "
            "WHERE table_schema = current_schema()"
        )
    }
    if store.dialect.name == "sqlite":
        assert not enabled
    available = store.dialect.name == "postgres" and bool(
        store.read("SELECT count(*) FROM pg_available_extensions WHERE name='vector'")[0][0]
    )
    assert enabled == available
    assert ("memory_pgvectors" in tables) == available
    # the failed CREATE EXTENSION rolled back to its savepoint only: writes go on
    store.memory_add(new("m2", "two", vector=vec(0, 1, 0, 0)))
    assert store.memory_pgvector(DIM) == enabled  # decided once per store
    assert len(store.memory_search_sources("user:1", [], 5, "test:model")[3]) == 2
