"""What long-term memory's ``forget()`` relies on, on the SQLite that ships with this
Python (stdlib ``sqlite3``, no FTS5 ``secure-delete`` option before SQLite 3.42):

``PRAGMA secure_delete=ON`` + FTS5 ``'optimize'`` + ``PRAGMA wal_checkpoint(TRUNCATE)``
leave none of a deleted subject's text in the database file or its WAL, where a raw byte
scan could find it, while the other subjects' text stays searchable."""

from __future__ import annotations

import random
import sqlite3
from pathlib import Path

SECRET = "quixotic-zebra-7741"  # one word for FTS5's tokenizer: "quixotic", "zebra", "7741"
WORDS = ["alpha", "bravo", "charlie", "delta", "echo", "foxtrot", "golf", "hotel", "india"]


def _bytes(path: Path) -> bytes:
    wal = path.with_name(path.name + "-wal")
    return path.read_bytes() + (wal.read_bytes() if wal.exists() else b"")


def _found(path: Path) -> list[str]:
    data = _bytes(path)
    return [w for w in ("quixotic", "zebra", "7741", SECRET) if w.encode() in data]


def test_forgetting_a_subject_leaves_no_text_in_the_file_or_wal(tmp_path: Path) -> None:
    path = tmp_path / "memory.db"
    conn = sqlite3.connect(path, isolation_level=None)
    assert conn.execute("PRAGMA journal_mode=WAL").fetchone() == ("wal",)
    conn.execute("PRAGMA secure_delete=ON")
    assert conn.execute("PRAGMA secure_delete").fetchone() == (1,)
    conn.execute("CREATE TABLE memories (id INTEGER PRIMARY KEY, subject TEXT, body TEXT)")
    conn.execute(
        "CREATE VIRTUAL TABLE memories_fts USING fts5(body, content='memories', content_rowid='id')"
    )
    rng = random.Random(7)
    conn.execute("BEGIN")
    for i in range(3000):  # enough rows for several FTS5 segments and many pages
        subject = "user:42" if i % 10 == 0 else f"user:{i % 7}"
        words = [rng.choice(WORDS) for _ in range(12)]
        if subject == "user:42":
            words[rng.randrange(12)] = SECRET
        body = " ".join(words)
        rowid = conn.execute(
            "INSERT INTO memories (subject, body) VALUES (?, ?)", (subject, body)
        ).lastrowid
        conn.execute("INSERT INTO memories_fts (rowid, body) VALUES (?, ?)", (rowid, body))
        if i % 500 == 499:  # separate transactions: separate FTS5 segments
            conn.execute("COMMIT")
            conn.execute("BEGIN")
    conn.execute("COMMIT")
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    assert set(_found(path)) >= {"quixotic", "zebra", SECRET}  # the text is on disk
    assert conn.execute(
        "SELECT count(*) FROM memories_fts WHERE memories_fts MATCH 'zebra'"
    ).fetchone() == (300,)

    # forget(user:42): delete the rows and their index entries, merge the index, checkpoint
    conn.execute("BEGIN")
    for rowid, body in conn.execute(
        "SELECT id, body FROM memories WHERE subject='user:42'"
    ).fetchall():
        conn.execute(
            "INSERT INTO memories_fts (memories_fts, rowid, body) VALUES ('delete', ?, ?)",
            (rowid, body),
        )
    conn.execute("DELETE FROM memories WHERE subject='user:42'")
    conn.execute("COMMIT")
    conn.execute("INSERT INTO memories_fts (memories_fts) VALUES ('optimize')")
    busy, _, _ = conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
    assert busy == 0
    assert path.with_name(path.name + "-wal").stat().st_size == 0

    assert _found(path) == []
    assert conn.execute(
        "SELECT count(*) FROM memories_fts WHERE memories_fts MATCH 'zebra'"
    ).fetchone() == (0,)
    # everyone else's memories are all still there and searchable
    (others,) = conn.execute("SELECT count(*) FROM memories WHERE subject!='user:42'").fetchone()
    assert others == 2700
    (hits,) = conn.execute(
        "SELECT count(*) FROM memories_fts WHERE memories_fts MATCH 'alpha OR bravo OR charlie "
        "OR delta OR echo OR foxtrot OR golf OR hotel OR india'"
    ).fetchone()
    assert hits == 2700
    assert conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    conn.close()


def test_without_secure_delete_the_text_survives(tmp_path: Path) -> None:
    """The control: the same deletion with ``secure_delete`` off leaves the text behind,
    so the test above proves what the pragma and the merge do."""
    path = tmp_path / "plain.db"
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA secure_delete=OFF")
    conn.execute("CREATE VIRTUAL TABLE notes USING fts5(subject UNINDEXED, body)")
    conn.execute("BEGIN")
    for i in range(200):
        conn.execute(
            "INSERT INTO notes (subject, body) VALUES (?, ?)",
            (
                "user:42" if i % 10 == 0 else "user:1",
                f"{SECRET} {WORDS[i % 9]}" if i % 10 == 0 else WORDS[i % 9],
            ),
        )
    conn.execute("COMMIT")
    conn.execute("DELETE FROM notes WHERE subject='user:42'")
    conn.execute("INSERT INTO notes (notes) VALUES ('optimize')")
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    assert _found(path) != []
    conn.close()
