-- tether schema (SQLite): long-term memory (DESIGN 4) and the subjects it belongs to (4b).
-- Payload columns (subjects.preferences, memories.text, memories.source) go through the
-- store's codec with the subject as key owner. What the indexes hold is NOT encoded:
-- memories_fts holds the words of every current memory (a full-text index is plaintext by
-- nature), memory_vectors holds embeddings (from which a text can be approximated) and
-- memories.text_hash a SHA-256 of (subject, text) that finds an exact duplicate.
CREATE TABLE subjects (
    id TEXT PRIMARY KEY,
    preferences TEXT,                -- payload: a JSON object (codec, subject = id)
    created_at REAL NOT NULL
) WITHOUT ROWID;
CREATE TABLE memories (
    seq INTEGER PRIMARY KEY,         -- the memories_fts rowid
    id TEXT NOT NULL UNIQUE,
    subject TEXT NOT NULL,
    text TEXT NOT NULL,              -- payload (codec, subject)
    text_hash TEXT NOT NULL,
    source TEXT,                     -- payload (codec, subject)
    tags TEXT NOT NULL DEFAULT '[]', -- a JSON list of strings
    created_at REAL NOT NULL,
    supersedes TEXT,                 -- the id of the version this one replaced
    superseded_at REAL,              -- NULL: current; else when a newer version replaced it
    write_key TEXT UNIQUE            -- (run, write number) of a write made in a durable function
);
CREATE INDEX memories_subject ON memories (subject, superseded_at, created_at);
CREATE INDEX memories_hash ON memories (subject, text_hash);
-- Contentless: the store inserts (and deletes, giving the same values) each current memory's
-- subject token and text; the text itself is never stored here, only its terms.
CREATE VIRTUAL TABLE memories_fts USING fts5(subject_token, text, content='', tokenize='porter unicode61 remove_diacritics 2');
CREATE TABLE memory_vectors (
    memory_seq INTEGER PRIMARY KEY,  -- memories.seq
    subject TEXT NOT NULL,
    model TEXT NOT NULL,
    dimension INTEGER NOT NULL,
    vector BLOB NOT NULL             -- float32, little-endian, L2-normalised
);
CREATE INDEX memory_vectors_subject ON memory_vectors (subject, model);
CREATE TABLE memory_index (
    name TEXT PRIMARY KEY,           -- 'default'
    model TEXT NOT NULL,             -- the embedder every vector was made with
    dimension INTEGER NOT NULL,
    updated_at REAL NOT NULL
) WITHOUT ROWID;
-- Writes made inside durable functions, by (run, write number): a replayed add, update or
-- delete finds its key here and is not applied again (ids only, no text).
CREATE TABLE memory_writes (
    write_key TEXT PRIMARY KEY,
    subject TEXT NOT NULL,
    op TEXT NOT NULL,                -- add | update | delete
    item TEXT,                       -- the memory the write made (or deleted)
    created_at REAL NOT NULL
) WITHOUT ROWID;
CREATE INDEX memory_writes_subject ON memory_writes (subject);
