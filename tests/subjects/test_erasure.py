"""No residue on SQLite (DESIGN 4b): after ``forget()`` returns, a raw byte scan of the
store file, its -wal and its -shm finds none of the subject's text — run inputs and
outputs, step outputs, attempt errors, event data, preferences, memories (and their
full-text index), window items and pins — while the other
subject's text is still there (so the scan can see it). A reader holding an old snapshot
blocks the WAL's truncation: ``forget()`` says so, and a second call finishes."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import pytest

import tether
from tests.subjects.conftest import BOTH_STORES
from tether.testing import poll

# Distinctive strings, each stored in a different place (lower case: what an index keeps).
GONE = {
    "input": "zq7inputsecret",
    "step": "zq7stepsecret",
    "attempt": "zq7attemptsecret",
    "output": "zq7outputsecret",
    "preference": "zq7prefsecret",
    "memory": "zq7memorysecret",
    "window": "zq7windowsecret",
    "pin": "zq7pinnedsecret",
}
KEPT = "zq7keptforother"


def raw(path: Path) -> bytes:
    out = b""
    for suffix in ("", "-wal", "-shm"):
        part = Path(str(path) + suffix)
        if part.exists():
            out += part.read_bytes()
    return out


def found(path: Path) -> set[str]:
    data = raw(path).lower()
    return {k for k, v in GONE.items() if v[:10].encode() in data}


def build(th: tether.Harness) -> None:
    @th.function(
        id="secretive",
        trigger=tether.on_event("said"),
        subject="event.data.user",
        retries=tether.Retry(max_attempts=2, initial=0.01, jitter=False),
    )
    def secretive(ctx: tether.SyncContext) -> dict[str, Any]:
        data = ctx.event.data

        def flaky() -> str:
            if ctx.attempt == 0:
                raise RuntimeError("boom " + data.get("attempt", ""))
            return "ok"

        step = ctx.step.run("remember", lambda: {"kept": data.get("step", "")})
        ctx.step.run("flaky", flaky)
        return {"said": data.get("output", ""), "step": step}


def fill(th: tether.Harness, path: Path) -> None:
    build(th)
    with th.worker(concurrency=2):
        th.send(
            tether.Event(
                "said",
                {
                    "user": "user:gone",
                    "text": GONE["input"],
                    "step": GONE["step"],
                    "attempt": GONE["attempt"],
                    "output": GONE["output"],
                },
            )
        )
        th.send(tether.Event("said", {"user": "user:kept", "text": KEPT, "output": KEPT}))
        poll(
            lambda: len(th.list_runs(status="completed")) == 2,
            timeout=30,
        )
    th.subject("user:gone").preferences["note"] = GONE["preference"]
    th.subject("user:kept").preferences["note"] = KEPT
    th.memory("user:gone").add(f"the user said {GONE['memory']} twice")
    th.memory("user:kept").add(f"the user said {KEPT}")
    conv = th.context("conv:gone", budget=4000, subject="user:gone")
    conv.add("user", f"in the window: {GONE['window']}")
    conv.pin("fact", GONE["pin"])
    th.context("conv:kept", budget=4000, subject="user:kept").add("user", KEPT)


def test_no_byte_of_a_forgotten_subject_stays_in_the_file_or_its_wal(tmp_path: Path) -> None:
    path = tmp_path / "tether.db"
    th = tether.Harness(f"sqlite:///{path}", embedder=None)
    fill(th, path)
    assert found(path) == set(GONE)  # the scan sees every string before
    done = th.subject("user:gone").forget()
    assert done.erased, done.residue
    assert found(path) == set(), found(path)
    assert KEPT.encode() in raw(path)  # the other subject's data is still readable
    assert th.subject("user:kept").preferences["note"] == KEPT
    th.close()
    assert found(path) == set()


def test_a_reader_blocking_the_checkpoint_is_reported_and_a_second_forget_finishes(
    tmp_path: Path,
) -> None:
    path = tmp_path / "tether.db"
    th = tether.Harness(f"sqlite:///{path}", embedder=None)
    fill(th, path)
    reader = sqlite3.connect(path, isolation_level=None)
    reader.execute("BEGIN")
    reader.execute("SELECT count(*) FROM runs").fetchone()  # holds a snapshot of the WAL
    try:
        done = th.subject("user:gone").forget(erase_timeout=0.5)
        assert not done.erased
        assert done.residue is not None and "could not be checkpointed" in done.residue
        assert done["runs"] == 1  # the rows are deleted all the same
    finally:
        reader.execute("COMMIT")
        reader.close()
    again = th._subject("user:gone").forget()
    assert again.erased and sum(again.values()) == 0
    assert found(path) == set()
    th.close()


def test_a_forgotten_subjects_embeddings_leave_the_file_too(tmp_path: Path, minilm: object) -> None:
    """With the real local embedder: the bytes of the subject's vectors are in the file
    before ``forget()`` and nowhere in it (or its WAL) after."""
    path = tmp_path / "tether.db"
    th = tether.Harness(f"sqlite:///{path}")
    th.memory("user:gone").add("prefers window seats on long flights")
    th.memory("user:kept").add("likes green tea")
    rows = th.store.read(  # type: ignore[attr-defined]
        "SELECT subject, vector FROM memory_vectors ORDER BY subject"
    )
    vectors = {subject: bytes(vector) for subject, vector in rows}
    assert set(vectors) == {"user:gone", "user:kept"}
    probe = {s: v[64:128] for s, v in vectors.items()}  # 16 floats: no accidental match
    assert probe["user:gone"] in raw(path)
    done = th.subject("user:gone").forget()
    assert done.erased and done["memories"] == 1
    data = raw(path)
    assert probe["user:gone"] not in data and probe["user:kept"] in data
    th.close()


@BOTH_STORES
def test_no_table_holds_a_row_of_a_forgotten_subject(store_url: str, tmp_path: Path) -> None:
    """On both stores: after ``forget()`` no row of any table holds the subject's text or
    id (on PostgreSQL the physical bytes are VACUUM's, docs/subjects.md)."""
    th = tether.Harness(store_url, embedder=None)
    fill(th, tmp_path / "unused")
    store: Any = th.store
    if store.dialect.name == "sqlite":
        tables = [r[0] for r in store.read("SELECT name FROM sqlite_master WHERE type='table'")]
    else:
        tables = [
            r[0]
            for r in store.read(
                "SELECT table_name FROM information_schema.tables "
                "WHERE table_schema=current_schema()"
            )
        ]

    def rows_mentioning(needles: list[str]) -> dict[str, int]:
        hits: dict[str, int] = {}
        for table in tables:
            for row in store.read(f'SELECT * FROM "{table}"'):
                text = repr(row).lower()
                if any(n.lower() in text for n in needles):
                    hits[table] = hits.get(table, 0) + 1
        return hits

    needles = [*GONE.values(), "user:gone"]
    assert {"runs", "steps", "events", "attempts", "memories", "subjects"} <= set(
        rows_mentioning(needles)
    )
    th.subject("user:gone").forget()
    assert rows_mentioning(needles) == {}
    assert rows_mentioning([KEPT, "user:kept"])  # the other subject is all there
    th.close()


@BOTH_STORES
def test_with_encryption_at_rest_forget_destroys_the_subjects_key(store_url: str) -> None:
    """The subject's memories, window items and preferences are encrypted with a data key
    of its own; ``forget()`` deletes that key, so no copy left by the server (dead tuples,
    old WAL, backups) can be read."""
    pytest.importorskip("cryptography")
    from tether.store.encryption import generate_key

    th = tether.Harness(store_url, embedder=None, encryption_key=generate_key())
    th.subject("user:gone").preferences["note"] = GONE["preference"]
    th.memory("user:gone").add(GONE["memory"])
    th.context("conv:gone", budget=4000, subject="user:gone").add("user", GONE["window"])
    th.subject("user:kept").preferences["note"] = KEPT
    store: Any = th.store
    keys = "SELECT subject FROM subject_keys ORDER BY subject"
    assert [r[0] for r in store.read(keys)] == ["user:gone", "user:kept"]
    doc = th.subject("user:gone").export()
    assert doc["preferences"] == {"note": GONE["preference"]}
    assert doc["memories"][0]["text"] == GONE["memory"]
    assert GONE["window"] in str(doc["windows"])
    done = th.subject("user:gone").forget()
    assert done["memories"] == 1 and done["items"] == 1 and done["preferences"] == 1
    assert [r[0] for r in store.read(keys)] == ["user:kept"]
    assert th.subject("user:kept").preferences["note"] == KEPT
    th.close()
