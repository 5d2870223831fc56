"""Long-term memory and subjects in the store, for every backend (DESIGN 4 and 4b).

Four tables (migration 0007): ``subjects`` (one row per subject: its preferences, a payload),
``memories`` (every version of every memory item: text and source are payloads, encoded with
the subject), ``memory_vectors`` (one float32 embedding per current item, with the model
and dimension it was made with; ``memory_index`` records the model of the whole index) and
``memory_writes`` (the (run, write number) key of every write a durable function made, so a
replayed write is not applied again).

The full-text index is SQLite's contentless FTS5 table ``memories_fts`` (the store inserts a
current item's terms and deletes them, giving the same text, when the item is superseded or
deleted) and PostgreSQL's ``memories.tsv`` column (a GIN index; NULL once superseded). Both
are plaintext by nature: the terms of every current memory are readable in the index even
when the codec encrypts the ``text`` column (docs/memory.md says what each index reveals).

The write functions take the subject's named lock (``memory:<subject>``) first, so two
writers of one subject go one after the other on PostgreSQL (SQLite serialises writers).
"""

from __future__ import annotations

import dataclasses
import hashlib
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

from tether.codec import dumps, loads
from tether.errors import MemoryNotFound
from tether.store.executor import Tx

COLUMNS = "id, subject, text, source, tags, created_at, supersedes, superseded_at"
INDEX = "default"
_TERM = re.compile(r"[^\W_]+")  # runs of letters and digits, as FTS5's unicode61 splits


class MemoryRow(NamedTuple):
    """One version of a memory item as the store keeps it (text and source decoded)."""

    id: str
    subject: str
    text: str
    source: str | None
    tags: tuple[str, ...]
    created_at: float
    supersedes: str | None
    superseded_at: float | None


@dataclass(frozen=True)
class NewMemory:
    """What ``add`` and ``update`` write: the item and, when embedded, its vector."""

    id: str
    subject: str
    text: str
    source: str | None
    tags: tuple[str, ...]
    created_at: float
    write_key: str | None = None
    vector: bytes | None = None  # float32, L2-normalised
    model: str | None = None
    dimension: int | None = None


def subject_token(subject: str) -> str:
    """The one full-text term that stands for a subject in ``memories_fts``."""
    return "s" + hashlib.sha256(subject.encode()).hexdigest()[:24]


def text_hash(subject: str, text: str) -> str:
    """What finds an exact duplicate of a subject's text without reading the payloads."""
    return hashlib.sha256(f"{subject}\0{text}".encode()).hexdigest()


# English function words, left out of queries on both backends (PostgreSQL's english
# configuration drops these and more; FTS5 has no stop list): "what is her job" must not
# match every memory with "is" in it.
_STOP_TEXT = (
    "a about above after again against all am an and any are as at be because been before "
    "being below between both but by can could did do does doing down during each few for "
    "from further had has have having he her here hers herself him himself his how i if in "
    "into is it its itself just me more most my myself no nor not now of off on once only or "
    "other our ours ourselves out over own same she should so some such than that the their "
    "theirs them themselves then there these they this those through to too under until up "
    "very was we were what when where which while who whom why will with would you your yours "
    "yourself yourselves "
)
STOPWORDS = frozenset(_STOP_TEXT.split())


def query_terms(query: str) -> list[str]:
    """The words of a query but function words, as both full-text indexes are asked for
    them (any of them matches)."""
    words = [w for w in _TERM.findall(query.lower()) if w not in STOPWORDS]
    return list(dict.fromkeys(words))[:64]


def _row(codec: Any, r: Sequence[Any]) -> MemoryRow:
    subject = r[1]
    return MemoryRow(
        r[0],
        subject,
        codec.decode(r[2], subject),
        codec.decode_opt(r[3], subject),
        tuple(loads(r[4])),
        float(r[5]),
        r[6],
        None if r[7] is None else float(r[7]),
    )


# -- the full-text index ------------------------------------------------------------------
def _pg_words(text: str) -> str:
    """PostgreSQL's parser reads "ORD-99812" as "ord" and "-99812": it is given the words
    split as queries are, so an identifier's parts match."""
    return " ".join(_TERM.findall(text))


def _index_text(tx: Tx, seq: int, subject: str, text: str) -> None:
    if tx.d.name == "sqlite":
        tx.execute(
            "INSERT INTO memories_fts (rowid, subject_token, text) VALUES (?, ?, ?)",
            (seq, subject_token(subject), text),
        )
    else:
        tx.execute(
            "UPDATE memories SET tsv=to_tsvector('english', ?::text) WHERE seq=?",
            (_pg_words(text), seq),
        )


def _unindex_text(tx: Tx, seq: int, subject: str, text: str) -> None:
    if tx.d.name == "sqlite":  # a contentless table is told the values it indexed
        tx.execute(
            "INSERT INTO memories_fts (memories_fts, rowid, subject_token, text) "
            "VALUES ('delete', ?, ?, ?)",
            (seq, subject_token(subject), text),
        )
    else:
        tx.execute("UPDATE memories SET tsv=NULL WHERE seq=?", (seq,))


def text_matches(tx: Tx, subject: str, terms: Sequence[str], cap: int) -> dict[str, list[str]]:
    """For each term, the ids of the subject's current items whose text holds it (stemmed
    as the index stems), at most ``cap`` + 1 of them: what the memory layer's ranking needs
    (which terms each item matched, and how many items hold each term)."""
    out: dict[str, list[str]] = {}
    token = subject_token(subject)
    for term in terms:
        if tx.d.name == "sqlite":
            rows = tx.all(
                "SELECT m.id FROM memories_fts f CROSS JOIN memories m ON m.seq = f.rowid "
                "WHERE memories_fts MATCH ? AND m.subject=? AND m.superseded_at IS NULL LIMIT ?",
                (f'subject_token:"{token}" AND text:"{term}"', subject, cap + 1),
            )
        else:
            rows = tx.all(
                "SELECT id FROM memories WHERE subject=? AND superseded_at IS NULL "
                "AND tsv @@ to_tsquery('english', ?::text) LIMIT ?",
                (subject, term, cap + 1),
            )
        out[term] = [r[0] for r in rows]
    return out


# -- vectors --------------------------------------------------------------------------------
def index_info(tx: Tx) -> tuple[str, int] | None:
    """(model, dimension) the store's vectors are made with, or None before the first."""
    row = tx.one("SELECT model, dimension FROM memory_index WHERE name=?", (INDEX,))
    return None if row is None else (row[0], int(row[1]))


def set_index(tx: Tx, model: str, dimension: int, now: float) -> None:
    tx.execute(
        "INSERT INTO memory_index (name, model, dimension, updated_at) VALUES (?, ?, ?, ?) "
        "ON CONFLICT (name) DO UPDATE SET model=excluded.model, dimension=excluded.dimension, "
        "updated_at=excluded.updated_at",
        (INDEX, model, dimension, now),
    )


def put_vector(tx: Tx, seq: int, subject: str, model: str, dimension: int, vector: bytes) -> None:
    tx.execute(
        "INSERT INTO memory_vectors (memory_seq, subject, model, dimension, vector) "
        "VALUES (?, ?, ?, ?, ?) ON CONFLICT (memory_seq) DO UPDATE SET model=excluded.model, "
        "dimension=excluded.dimension, vector=excluded.vector",
        (seq, subject, model, dimension, vector),
    )
    if getattr(tx.store, "_pgvector", False):
        pgvector_put(tx, seq, subject, model, vector)


def subject_vectors(tx: Tx, subject: str, model: str) -> list[tuple[str, float, str, bytes]]:
    """(id, created_at, tags JSON, float32 bytes) of the subject's current embedded items."""
    rows = tx.all(
        "SELECT m.id, m.created_at, m.tags, v.vector FROM memory_vectors v "
        "JOIN memories m ON m.seq = v.memory_seq "
        "WHERE v.subject=? AND v.model=? AND m.superseded_at IS NULL",
        (subject, model),
    )
    return [(r[0], float(r[1]), r[2], bytes(r[3])) for r in rows]


def to_reindex(tx: Tx, model: str, after: int, limit: int) -> list[tuple[int, str, str]]:
    """(seq, subject, text) of current items with no vector of ``model``, in seq order."""
    rows = tx.all(
        "SELECT m.seq, m.subject, m.text FROM memories m LEFT JOIN memory_vectors v "
        "ON v.memory_seq = m.seq AND v.model=? WHERE m.superseded_at IS NULL AND m.seq>? "
        "AND v.memory_seq IS NULL ORDER BY m.seq LIMIT ?",
        (model, after, limit),
    )
    return [(int(r[0]), r[1], tx.codec.decode(r[2], r[1])) for r in rows]


# -- writes ---------------------------------------------------------------------------------
def _replayed(tx: Tx, key: str | None) -> tuple[str, str | None] | None:
    """(op, item) a durable function's earlier execution recorded under ``key``."""
    if key is None:
        return None
    row = tx.one("SELECT op, item FROM memory_writes WHERE write_key=?", (key,))
    return None if row is None else (row[0], row[1])


def _record(tx: Tx, key: str | None, subject: str, op: str, item: str | None, now: float) -> None:
    if key is not None:
        tx.execute(
            "INSERT INTO memory_writes (write_key, subject, op, item, created_at) "
            "VALUES (?, ?, ?, ?, ?)",
            (key, subject, op, item, now),
        )


def _get(tx: Tx, subject: str, item: str) -> MemoryRow | None:
    row = tx.one(f"SELECT {COLUMNS} FROM memories WHERE id=? AND subject=?", (item, subject))
    return None if row is None else _row(tx.codec, row)


def _as_replayed(tx: Tx, new: NewMemory, item: str | None) -> MemoryRow:
    """The item a replayed write made: as stored, or (deleted since) as it was written."""
    if item is not None and (row := _get(tx, new.subject, item)) is not None:
        return row
    return MemoryRow(
        item or new.id, new.subject, new.text, new.source, new.tags, new.created_at, None, None
    )


def _insert(tx: Tx, new: NewMemory, supersedes: str | None, indexed: bool = False) -> MemoryRow:
    """Insert one version with its full-text entry and vector. ``indexed``: the caller
    has recorded the index's model in this transaction already."""
    codec, subject = tx.codec, new.subject
    postgres = tx.d.name == "postgres"
    (seq,) = tx.one(
        "INSERT INTO memories (id, subject, text, text_hash, source, tags, created_at, "
        "supersedes, write_key"
        + (
            ", tsv) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, to_tsvector('english', ?::text))"
            if postgres
            else ") VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)"
        )
        + " RETURNING seq",
        (
            new.id,
            subject,
            codec.encode(new.text, subject),
            text_hash(subject, new.text),
            codec.encode_opt(new.source, subject),
            dumps(list(new.tags)),
            new.created_at,
            supersedes,
            new.write_key,
            *((_pg_words(new.text),) if postgres else ()),
        ),
    )
    if not postgres:
        _index_text(tx, int(seq), subject, new.text)
    if new.vector is not None and new.model is not None and new.dimension is not None:
        if not indexed:
            tx.execute(
                "INSERT INTO memory_index (name, model, dimension, updated_at) "
                "VALUES (?, ?, ?, ?) ON CONFLICT (name) DO NOTHING",
                (INDEX, new.model, new.dimension, new.created_at),
            )
        put_vector(tx, int(seq), subject, new.model, new.dimension, new.vector)
    return MemoryRow(
        new.id, subject, new.text, new.source, new.tags, new.created_at, supersedes, None
    )


def add(
    tx: Tx, new: NewMemory, *, locked: bool = False, indexed: bool = False
) -> tuple[MemoryRow, bool]:
    """Write a new item; (the item, created). The exact text already current for the
    subject, or a write key already applied, returns the existing item instead."""
    if not locked:
        tx.lock([f"memory:{new.subject}"])
    done = _replayed(tx, new.write_key)
    if done is not None:
        return _as_replayed(tx, new, done[1]), False
    row = tx.one(
        f"SELECT {COLUMNS} FROM memories WHERE subject=? AND text_hash=? AND superseded_at IS NULL",
        (new.subject, text_hash(new.subject, new.text)),
    )
    if row is not None:
        existing = _row(tx.codec, row)
        _record(tx, new.write_key, new.subject, "add", existing.id, new.created_at)
        return existing, False
    item = _insert(tx, new, None, indexed)
    _record(tx, new.write_key, new.subject, "add", item.id, new.created_at)
    return item, True


def add_many(tx: Tx, news: Sequence[NewMemory]) -> list[MemoryRow]:
    """``add`` for many items in one transaction: the subjects' locks and the index's
    model taken once."""
    tx.lock(sorted({f"memory:{n.subject}" for n in news}))
    first = next((n for n in news if n.vector is not None), None)
    if first is not None and first.model is not None and first.dimension is not None:
        tx.execute(
            "INSERT INTO memory_index (name, model, dimension, updated_at) VALUES (?, ?, ?, ?) "
            "ON CONFLICT (name) DO NOTHING",
            (INDEX, first.model, first.dimension, first.created_at),
        )
    return [add(tx, n, locked=True, indexed=True)[0] for n in news]


def _current(tx: Tx, subject: str, item: str) -> tuple[int, MemoryRow]:
    row = tx.one(
        f"SELECT seq, {COLUMNS} FROM memories WHERE id=? AND subject=? AND superseded_at IS NULL",
        (item, subject),
    )
    if row is None:
        raise MemoryNotFound(
            f"subject {subject!r} has no current memory {item!r} (unknown, deleted, superseded "
            "by a newer version, or another subject's): list the subject's items with "
            "memory.list()"
        )
    return int(row[0]), _row(tx.codec, row[1:])


def update(tx: Tx, old_id: str, new: NewMemory) -> MemoryRow:
    """Supersede ``old_id`` with ``new``'s text (``supersedes`` = the old id; source and tags
    carried over; the old version stays, out of the indexes). The same text returns the
    current item unchanged."""
    tx.lock([f"memory:{new.subject}"])
    done = _replayed(tx, new.write_key)
    if done is not None:
        return _as_replayed(tx, new, done[1])
    seq, old = _current(tx, new.subject, old_id)
    if old.text == new.text:
        _record(tx, new.write_key, new.subject, "update", old.id, new.created_at)
        return old
    tx.execute("UPDATE memories SET superseded_at=? WHERE seq=?", (new.created_at, seq))
    _unindex_text(tx, seq, old.subject, old.text)
    tx.execute("DELETE FROM memory_vectors WHERE memory_seq=?", (seq,))
    item = _insert(tx, dataclasses.replace(new, source=old.source, tags=old.tags), old.id)
    _record(tx, new.write_key, new.subject, "update", item.id, new.created_at)
    return item


def _remove(tx: Tx, rows: Sequence[Sequence[Any]]) -> int:
    """Delete memory rows given as (seq, subject, text, superseded_at): FTS entries, vectors."""
    for seq, subject, text, superseded_at in rows:
        if superseded_at is None:
            _unindex_text(tx, int(seq), subject, tx.codec.decode(text, subject))
        tx.execute("DELETE FROM memory_vectors WHERE memory_seq=?", (seq,))
        tx.execute("DELETE FROM memories WHERE seq=?", (seq,))
    return len(rows)


def delete(tx: Tx, subject: str, item: str, write_key: str | None, now: float) -> int:
    """Delete a current item and every older version it superseded; how many rows went."""
    tx.lock([f"memory:{subject}"])
    if _replayed(tx, write_key) is not None:
        return 0
    _current(tx, subject, item)
    chain: list[Sequence[Any]] = []
    next_id: str | None = item
    while next_id is not None:
        row = tx.one(
            "SELECT seq, subject, text, superseded_at, supersedes FROM memories "
            "WHERE id=? AND subject=?",
            (next_id, subject),
        )
        if row is None:
            break
        chain.append(row[:4])
        next_id = row[4]
    count = _remove(tx, chain)
    _record(tx, write_key, subject, "delete", item, now)
    return count


def delete_subject(tx: Tx, subject: str, *, writes: bool = True) -> int:
    """Delete every memory of the subject (all versions), its FTS entries, its vectors and
    (``writes``) its write keys; on SQLite the FTS index is then merged so no segment keeps
    the terms. How many memory rows went."""
    tx.lock([f"memory:{subject}"])
    rows = tx.all(
        "SELECT seq, subject, text, superseded_at FROM memories WHERE subject=? ORDER BY seq",
        (subject,),
    )
    count = _remove(tx, rows)
    tx.execute("DELETE FROM memory_vectors WHERE subject=?", (subject,))
    if writes:
        tx.execute("DELETE FROM memory_writes WHERE subject=?", (subject,))
    if tx.d.name == "sqlite" and count:
        tx.execute("INSERT INTO memories_fts (memories_fts) VALUES ('optimize')")
    return count


def clear(tx: Tx, subject: str, write_key: str | None, now: float) -> int:
    """``Memory.clear``: every memory of the subject goes. The write keys stay (a replay of
    the run's earlier writes must still find them), and the clear records its own."""
    if _replayed(tx, write_key) is not None:
        return 0
    count = delete_subject(tx, subject, writes=False)
    _record(tx, write_key, subject, "clear", None, now)
    return count


# -- reads ----------------------------------------------------------------------------------
def get(tx: Tx, subject: str, item: str) -> MemoryRow:
    """A current item of the subject, or MemoryNotFound."""
    return _current(tx, subject, item)[1]


def get_many(tx: Tx, subject: str, ids: Sequence[str]) -> dict[str, MemoryRow]:
    """The subject's current items among ``ids``, by id."""
    if not ids:
        return {}
    where, params = tx.in_("id", list(ids))
    rows = tx.all(
        f"SELECT {COLUMNS} FROM memories WHERE {where} AND subject=? AND superseded_at IS NULL",
        (*params, subject),
    )
    return {r[0]: _row(tx.codec, r) for r in rows}


def current(tx: Tx, subject: str) -> list[MemoryRow]:
    """The subject's current items, oldest first."""
    rows = tx.all(
        f"SELECT {COLUMNS} FROM memories WHERE subject=? AND superseded_at IS NULL ORDER BY seq",
        (subject,),
    )
    return [_row(tx.codec, r) for r in rows]


def candidates(tx: Tx, subject: str) -> list[tuple[str, float, str]]:
    """(id, created_at, tags JSON) of the subject's current items."""
    rows = tx.all(
        "SELECT id, created_at, tags FROM memories WHERE subject=? AND superseded_at IS NULL",
        (subject,),
    )
    return [(r[0], float(r[1]), r[2]) for r in rows]


def export(tx: Tx, subject: str) -> list[dict[str, Any]]:
    """Every version of every item of the subject, oldest first, as JSON-ready dicts."""
    rows = tx.all(f"SELECT {COLUMNS} FROM memories WHERE subject=? ORDER BY seq", (subject,))
    out = []
    for r in rows:
        m = _row(tx.codec, r)
        out.append(
            {
                "id": m.id,
                "text": m.text,
                "source": m.source,
                "tags": list(m.tags),
                "created_at": m.created_at,
                "supersedes": m.supersedes,
                "superseded_at": m.superseded_at,
                "current": m.superseded_at is None,
            }
        )
    return out


# -- subjects -------------------------------------------------------------------------------
def ensure_subject(tx: Tx, subject: str, now: float) -> None:
    tx.execute(
        "INSERT INTO subjects (id, preferences, created_at) VALUES (?, NULL, ?) "
        "ON CONFLICT (id) DO NOTHING",
        (subject, now),
    )


def preferences(tx: Tx, subject: str) -> dict[str, Any] | None:
    """The subject's preferences ({} when it has none yet), or None: no such subject."""
    row = tx.one("SELECT preferences FROM subjects WHERE id=?", (subject,))
    if row is None:
        return None
    if row[0] is None:
        return {}
    prefs: dict[str, Any] = loads(tx.codec.decode(row[0], subject))
    return prefs


def set_preferences(tx: Tx, subject: str, prefs: dict[str, Any], now: float) -> None:
    stored = tx.codec.encode(dumps(prefs), subject)
    tx.execute(
        "INSERT INTO subjects (id, preferences, created_at) VALUES (?, ?, ?) "
        "ON CONFLICT (id) DO UPDATE SET preferences=excluded.preferences",
        (subject, stored, now),
    )


LIST_SUBJECTS = "SELECT id FROM subjects UNION SELECT DISTINCT subject FROM memories ORDER BY 1"


# -- pgvector (optional, PostgreSQL) -------------------------------------------------------------
# Where ``CREATE EXTENSION vector`` succeeds, the store keeps a second copy of each vector in
# ``memory_pgvectors`` with an HNSW index, and a search asks it for the nearest items instead
# of scanning the subject's vectors. Debian's PostgreSQL here has no pgvector: the attempt
# fails inside a savepoint, the transaction goes on, and the exact scan stays the path.
def enable_pgvector(tx: Tx, dimension: int) -> bool:
    """Set up the pgvector table (once); False where the extension cannot be created."""
    if tx.d.name != "postgres":
        return False
    import psycopg

    try:
        with tx.conn.transaction():  # a savepoint: a failure leaves the transaction usable
            tx.conn.execute("CREATE EXTENSION IF NOT EXISTS vector")
    except psycopg.Error:
        return False
    tx.conn.execute(
        "CREATE TABLE IF NOT EXISTS memory_pgvectors (memory_seq BIGINT PRIMARY KEY "
        "REFERENCES memories (seq) ON DELETE CASCADE, subject TEXT NOT NULL, model TEXT NOT "
        f"NULL, embedding vector({int(dimension)}) NOT NULL)"
    )
    tx.conn.execute(
        "CREATE INDEX IF NOT EXISTS memory_pgvectors_hnsw ON memory_pgvectors "
        "USING hnsw (embedding vector_cosine_ops)"
    )
    return True


def _pg_literal(vector: bytes) -> str:
    import array

    values = array.array("f")
    values.frombytes(vector)
    return "[" + ",".join(f"{v:.7g}" for v in values) + "]"


def pgvector_put(tx: Tx, seq: int, subject: str, model: str, vector: bytes) -> None:
    tx.execute(
        "INSERT INTO memory_pgvectors (memory_seq, subject, model, embedding) "
        "VALUES (?, ?, ?, ?::vector) ON CONFLICT (memory_seq) DO UPDATE SET "
        "model=excluded.model, embedding=excluded.embedding",
        (seq, subject, model, _pg_literal(vector)),
    )


def pgvector_nearest(
    tx: Tx, subject: str, model: str, query: bytes, limit: int
) -> list[tuple[str, float]]:
    """(id, cosine) of the subject's ``limit`` nearest current items, from the HNSW index
    (iterative scans, pgvector 0.8+, keep the subject filter from starving the result)."""
    tx.execute("SET LOCAL hnsw.iterative_scan = relaxed_order")
    literal = _pg_literal(query)
    rows = tx.all(
        "SELECT m.id, 1 - (p.embedding <=> ?::vector) FROM memory_pgvectors p "
        "JOIN memories m ON m.seq = p.memory_seq WHERE p.subject=? AND p.model=? "
        "AND m.superseded_at IS NULL ORDER BY p.embedding <=> ?::vector LIMIT ?",
        (literal, subject, model, literal, limit),
    )
    return [(r[0], float(r[1])) for r in rows]
