-- tether schema (PostgreSQL): long-term memory and subjects; see the SQLite file of the same
-- number. The full-text index is a tsvector column (plaintext terms by nature) with a GIN
-- index; vectors are float32 bytea scanned exactly per subject, unless pgvector is installed
-- (then the store adds memory_pgvectors with an HNSW index the first time it is used).
CREATE TABLE subjects (
    id TEXT PRIMARY KEY,
    preferences TEXT,
    created_at DOUBLE PRECISION NOT NULL
);
CREATE TABLE memories (
    seq BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    id TEXT NOT NULL UNIQUE,
    subject TEXT NOT NULL,
    text TEXT NOT NULL,
    text_hash TEXT NOT NULL,
    source TEXT,
    tags TEXT NOT NULL DEFAULT '[]',
    created_at DOUBLE PRECISION NOT NULL,
    supersedes TEXT,
    superseded_at DOUBLE PRECISION,
    write_key TEXT UNIQUE,
    tsv tsvector                     -- NULL once superseded: old versions leave the index
);
CREATE INDEX memories_subject ON memories (subject, superseded_at, created_at);
CREATE INDEX memories_hash ON memories (subject, text_hash);
CREATE INDEX memories_tsv ON memories USING GIN (tsv);
CREATE TABLE memory_vectors (
    memory_seq BIGINT PRIMARY KEY,
    subject TEXT NOT NULL,
    model TEXT NOT NULL,
    dimension INTEGER NOT NULL,
    vector BYTEA NOT NULL
);
CREATE INDEX memory_vectors_subject ON memory_vectors (subject, model);
CREATE TABLE memory_index (
    name TEXT PRIMARY KEY,
    model TEXT NOT NULL,
    dimension INTEGER NOT NULL,
    updated_at DOUBLE PRECISION NOT NULL
);
CREATE TABLE memory_writes (
    write_key TEXT PRIMARY KEY,
    subject TEXT NOT NULL,
    op TEXT NOT NULL,
    item TEXT,
    created_at DOUBLE PRECISION NOT NULL
);
CREATE INDEX memory_writes_subject ON memory_writes (subject);
