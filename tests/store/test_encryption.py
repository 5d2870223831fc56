"""Encryption at rest (store/encryption.py), on both backends.

The payload workflow of test_payload_codec runs on an encrypted store: everything reads
back intact, and a raw read of every table (and, on SQLite, of the file and its WAL as
bytes) finds none of it in clear. Then the failure paths: no key, a wrong key, a rotated
key ring, a tampered value, values written in clear before encryption was on, and a
subject's data key destroyed (its remaining ciphertext unreadable).
"""

from __future__ import annotations

import base64
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

import tether
from tests.context.conformance import user
from tests.store.test_payload_codec import MARK, PAYLOAD_COLUMNS, _exercise, _tables
from tether.context.stored import StoreWindowLog
from tether.store import Store, open_store
from tether.store.encryption import (
    PREFIX,
    EncryptingCodec,
    generate_key,
    key_id,
    rekey,
)
from tether.store.queries import RunQuery

pytest.importorskip("cryptography")

KEY_A = generate_key()
KEY_B = generate_key()


def _read(store: Store) -> Callable[..., list[Any]]:
    read: Callable[..., list[Any]] = store.read  # type: ignore[attr-defined]
    return read


@pytest.fixture
def encrypted(store_url: str) -> Iterator[tuple[tether.Harness, Store]]:
    th = tether.Harness(store_url, encryption_key=KEY_A)
    yield th, th.store
    th.close()


def _one_run(store_url: str, key: str | None, text: str = MARK) -> str:
    with tether.Harness(store_url, encryption_key=key) as th:

        @th.function(id="echo")
        def echo(ctx: tether.SyncContext) -> dict[str, str]:
            return {"said": ctx.step.run("say", lambda: ctx.event.data["t"])}

        rid = f"run-{uuid.uuid4().hex[:12]}"
        th.run("echo", {"t": text}, run_id=rid)
        return rid


def _get(store_url: str, key: str | None, run_id: str) -> tether.Run:
    with tether.Harness(store_url, encryption_key=key) as th:
        return th.get_run(run_id)


def test_nothing_of_an_encrypted_payload_is_on_disk_in_clear(
    encrypted: tuple[tether.Harness, Store], tmp_path: Path, store_url: str
) -> None:
    th, store = encrypted
    seen = _exercise(th)
    assert seen["result"]["out"] == MARK and seen["input"] == {"x": MARK}
    assert seen["ingest"] == [f"{MARK}-0", f"{MARK}-1"] and MARK in seen["broken"]["message"]

    read = _read(store)
    kid = key_id(base64.urlsafe_b64decode(KEY_A))
    for table, columns in PAYLOAD_COLUMNS.items():
        for column in columns:
            values = [
                r[0] for r in read(f"SELECT {column} FROM {table} WHERE {column} IS NOT NULL")
            ]
            assert values, f"{table}.{column} was not exercised"
            assert all(str(v).startswith(f"{PREFIX}m{kid}:") for v in values), (table, column)
    for table in _tables(store):
        for row in read(f"SELECT * FROM {table}"):
            assert MARK not in repr(row), f"{table} holds the payload in clear: {row!r}"
    if store_url.startswith("sqlite"):
        th.close()
        files = list(tmp_path.glob("tether.db*"))
        assert files
        for path in files:  # the file and its WAL, as bytes
            assert MARK.encode() not in path.read_bytes(), f"{path.name} holds the payload"


def test_a_store_opened_without_its_key_fails_naming_the_fix(
    store_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    _one_run(store_url, KEY_A)
    monkeypatch.delenv("TETHER_ENCRYPTION_KEY", raising=False)
    with pytest.raises(tether.EncryptionKeyError, match="TETHER_ENCRYPTION_KEY") as info:
        open_store(store_url)
    assert key_id(base64.urlsafe_b64decode(KEY_A)) in str(info.value)
    assert KEY_A not in str(info.value)
    # The variable works as well as the argument.
    monkeypatch.setenv("TETHER_ENCRYPTION_KEY", KEY_A)
    store = open_store(store_url)
    try:
        assert isinstance(store.codec, EncryptingCodec)
        assert store.list_runs("echo", None, 5, None)[0].output == {"said": MARK}
    finally:
        store.close()


def test_a_wrong_key_is_refused_and_never_echoed(store_url: str) -> None:
    _one_run(store_url, KEY_A)
    with pytest.raises(tether.EncryptionKeyError, match="none of the keys given") as info:
        open_store(store_url, encryption_key=KEY_B)
    assert KEY_A not in str(info.value) and KEY_B not in str(info.value)
    with pytest.raises(tether.EncryptionKeyError, match="tether keygen") as bad:
        open_store(store_url, encryption_key="hunter2-not-a-key")
    assert "hunter2" not in str(bad.value)


def test_rotation_reads_old_values_writes_new_ones_and_rekey_finishes_it(store_url: str) -> None:
    old = _one_run(store_url, KEY_A, "old text")
    new = _one_run(store_url, f"{KEY_B},{KEY_A}", "new text")
    assert _get(store_url, [KEY_B, KEY_A], old).output == {"said": "old text"}
    store = open_store(store_url, encryption_key=[KEY_B, KEY_A])
    try:
        stored = dict(_read(store)("SELECT id, input FROM runs"))
        kid_a = key_id(base64.urlsafe_b64decode(KEY_A))
        kid_b = key_id(base64.urlsafe_b64decode(KEY_B))
        assert stored[old].startswith(f"{PREFIX}m{kid_a}:")
        assert stored[new].startswith(f"{PREFIX}m{kid_b}:")
    finally:
        store.close()
    # The old key dropped too soon: its values fail with the id of the key to add back.
    with pytest.raises(tether.EncryptionKeyError, match=kid_a):
        _get(store_url, KEY_B, old)
    store = open_store(store_url, encryption_key=[KEY_B, KEY_A])
    try:
        done = rekey(store)
        assert done["runs"] >= 2 and done["steps"] >= 1
        assert rekey(store)["runs"] == 0  # nothing left to rewrite
    finally:
        store.close()
    assert _get(store_url, KEY_B, old).output == {"said": "old text"}


def test_a_tampered_value_fails_authentication(encrypted: tuple[tether.Harness, Store]) -> None:
    th, store = encrypted

    @th.function(id="echo")
    def echo(ctx: tether.SyncContext) -> str:
        return str(ctx.event.data["t"])

    rid = "intact-run"
    th.run("echo", {"t": "intact"}, run_id=rid)
    (stored,) = _read(store)("SELECT input FROM runs WHERE id=?", (rid,))[0]
    head, body = stored.rsplit(":", 1)
    raw = bytearray(base64.b64decode(body))
    raw[-1] ^= 1
    forged = f"{head}:{base64.b64encode(bytes(raw)).decode()}"
    store.write(lambda tx: tx.execute("UPDATE runs SET input=? WHERE id=?", (forged, rid)))
    with pytest.raises(tether.EncryptionError, match="failed authentication"):
        th.get_run(rid)


def test_values_in_clear_from_before_encryption_are_refused_until_rekeyed(store_url: str) -> None:
    rid = _one_run(store_url, None, MARK)
    with pytest.raises(tether.EncryptionError, match="tether rekey"):
        _get(store_url, KEY_A, rid)
    store = open_store(store_url, encryption_key=KEY_A)
    try:
        assert rekey(store)["runs"] >= 1
        for table in _tables(store):
            for row in _read(store)(f"SELECT * FROM {table}"):
                assert MARK not in repr(row), f"{table} still holds a payload in clear"
    finally:
        store.close()
    assert _get(store_url, KEY_A, rid).output == {"said": MARK}


def test_a_destroyed_subject_key_leaves_only_unreadable_ciphertext(
    encrypted: tuple[tether.Harness, Store],
) -> None:
    _, store = encrypted
    codec = store.codec
    # Inside a transaction (as feature modules write) and outside one.
    sealed = store.write(lambda tx: tx.codec.encode(f"{MARK} alice", "user:alice"))  # type: ignore[attr-defined]
    other = codec.encode(f"{MARK} bob", "user:bob")
    plain = codec.encode("nobody's", None)
    assert MARK not in sealed and sealed.startswith(f"{PREFIX}s")
    assert codec.decode(sealed, "user:alice") == f"{MARK} alice"
    assert store.reading(lambda tx: tx.codec.decode(sealed, "user:alice")) == f"{MARK} alice"  # type: ignore[attr-defined]
    rows = _read(store)("SELECT subject, wrapped FROM subject_keys ORDER BY subject")
    assert [r[0] for r in rows] == ["user:alice", "user:bob"]
    # A ciphertext moved to another subject does not decrypt.
    with pytest.raises(tether.EncryptionError):
        codec.decode(sealed, "user:bob")

    assert store.destroy_subject_key("user:alice") is True  # type: ignore[attr-defined]
    assert store.destroy_subject_key("user:alice") is False  # type: ignore[attr-defined]
    with pytest.raises(tether.SubjectKeyDestroyed, match="user:alice"):
        codec.decode(sealed, "user:alice")
    # New data of the subject gets a new key; the old ciphertext stays unreadable.
    again = codec.encode("after forget", "user:alice")
    assert codec.decode(again, "user:alice") == "after forget"
    with pytest.raises(tether.SubjectKeyDestroyed):
        codec.decode(sealed, "user:alice")
    # Others are untouched.
    assert codec.decode(other, "user:bob") == f"{MARK} bob"
    assert codec.decode(plain) == "nobody's"


def test_rotation_rewraps_subject_keys(store_url: str) -> None:
    store = open_store(store_url, encryption_key=KEY_A)
    try:
        sealed = store.codec.encode("carol's", "user:carol")
    finally:
        store.close()
    store = open_store(store_url, encryption_key=[KEY_B, KEY_A])
    try:
        assert rekey(store)["subject_keys"] == 1
    finally:
        store.close()
    store = open_store(store_url, encryption_key=KEY_B)  # the old key is gone now
    try:
        assert store.codec.decode(sealed, "user:carol") == "carol's"
    finally:
        store.close()


def test_text_search_matches_run_ids_only_over_encrypted_payloads(
    encrypted: tuple[tether.Harness, Store],
) -> None:
    th, store = encrypted

    @th.function(id="echo")
    def echo(ctx: tether.SyncContext) -> str:
        return str(ctx.event.data["t"])

    rid = "run-0123456789"
    th.run("echo", {"t": "findable words"}, run_id=rid)
    assert store.query_runs(RunQuery(text="findable")) == []
    # The ciphertext is never searched: a piece of it matches nothing.
    (stored,) = _read(store)("SELECT input FROM runs WHERE id=?", (rid,))[0]
    assert store.query_runs(RunQuery(text=stored[-20:-10])) == []
    assert [r.id for r in store.query_runs(RunQuery(text=rid[-8:]))] == [rid]


def test_a_store_object_and_a_key_do_not_mix(encrypted: tuple[tether.Harness, Store]) -> None:
    _, store = encrypted
    with pytest.raises(tether.ConfigurationError, match="open_store"):
        tether.Harness(store, encryption_key=KEY_A)
    assert "key" not in repr(store.codec).lower().replace("key_ids", "")
    assert KEY_A not in repr(store.codec)


def test_rekey_encrypts_a_registered_subject_table_with_each_subject_key(
    store_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tether.store import encryption

    monkeypatch.setattr(encryption, "PAYLOAD_TABLES", list(encryption.PAYLOAD_TABLES))
    encryption.payload_table("notes_t", ["id"], ["body"], subject="who")
    store: Any = open_store(store_url)  # a feature's table, written in clear
    try:
        store.write(
            lambda tx: tx.execute("CREATE TABLE notes_t (id TEXT PRIMARY KEY, who TEXT, body TEXT)")
        )
        store.write(
            lambda tx: tx.many(
                "INSERT INTO notes_t (id, who, body) VALUES (?, ?, ?)",
                [("1", "user:ann", f"{MARK} ann"), ("2", "user:bo", f"{MARK} bo")],
            )
        )
    finally:
        store.close()
    store = open_store(store_url, encryption_key=KEY_A)
    try:
        assert rekey(store)["notes_t"] == 2
        rows = dict(_read(store)("SELECT who, body FROM notes_t"))
        assert all(MARK not in v and v.startswith(f"{PREFIX}s") for v in rows.values())
        assert store.codec.decode(rows["user:ann"], "user:ann") == f"{MARK} ann"
        store.destroy_subject_key("user:ann")
        with pytest.raises(tether.SubjectKeyDestroyed):
            store.codec.decode(rows["user:ann"], "user:ann")
        assert store.codec.decode(rows["user:bo"], "user:bo") == f"{MARK} bo"
        assert rekey(store)["notes_t"] == 0
    finally:
        store.close()


def test_forgetting_a_subject_leaves_its_ciphertext_unreadable(store_url: str) -> None:
    th = tether.Harness(store_url, encryption_key=KEY_A, embedder=None)
    try:
        ann = th.subject("user:ann")
        ann.memory.add(f"{MARK} ann likes tea")
        th.subject("user:bo").memory.add(f"{MARK} bo likes coffee")
        StoreWindowLog(th.store, "chat:ann", subject="user:ann").append(
            [user(f"{MARK} hello from ann")]
        )
        read = _read(th.store)
        kept = [r[0] for r in read("SELECT text FROM memories WHERE subject='user:ann'")]
        kept += [r[0] for r in read("SELECT payload FROM window_items")]
        assert len(kept) == 2 and all(v.startswith(f"{PREFIX}s") for v in kept)
        for table in _tables(th.store):
            for row in read(f"SELECT * FROM {table}"):
                assert MARK not in repr(row), f"{table} holds a payload in clear: {row!r}"
        ann.forget()
        # What a backup, an old WAL or an unvacuumed page still holds can no longer be read.
        for stored in kept:
            with pytest.raises(tether.SubjectKeyDestroyed, match="user:ann"):
                th.store.codec.decode(stored, "user:ann")
        assert [m.text for m in th.memory("user:bo").list()] == [f"{MARK} bo likes coffee"]
    finally:
        th.close()


def test_rekey_encrypts_memories_windows_and_preferences_written_in_clear(store_url: str) -> None:
    th = tether.Harness(store_url, embedder=None)
    try:
        th.subject("user:cy").memory.add(f"{MARK} cy")
        th.subject("user:cy").preferences["lang"] = MARK
        StoreWindowLog(th.store, "chat:cy", subject="user:cy").append([user(f"{MARK} hi")])
    finally:
        th.close()
    store = open_store(store_url, encryption_key=KEY_A)
    try:
        done = rekey(store)
        assert done["memories"] == 1 and done["window_items"] == 1 and done["subjects"] == 1
        for table in ("memories", "window_items", "subjects"):
            for row in _read(store)(f"SELECT * FROM {table}"):
                assert MARK not in repr(row), f"{table} still holds a payload in clear"
    finally:
        store.close()
    th = tether.Harness(store_url, encryption_key=KEY_A, embedder=None)
    try:
        assert [m.text for m in th.memory("user:cy").list()] == [f"{MARK} cy"]
        assert th.subject("user:cy").preferences["lang"] == MARK
        items = StoreWindowLog(th.store, "chat:cy", subject="user:cy").items()
        assert [i.content for i in items] == [f"{MARK} hi"]
    finally:
        th.close()
