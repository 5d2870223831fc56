-- tether schema: context windows (tether.context; ctx.context / th.context)
-- One row per window; its items are an append-only log (messages, tool results, pins,
-- summaries as range records, artifacts). ``summary_seq`` is the summary in force, swapped
-- in the transaction that appends it. ``generation`` counts clears, so a cached reader
-- knows its copy is gone. Payloads (the item's JSON) go through the store codec with the
-- window's subject; what SQL matches on (keys, handles, call ids) is not a payload.
CREATE TABLE IF NOT EXISTS windows (
    key TEXT PRIMARY KEY,
    subject TEXT,
    model TEXT,
    created_at {float} NOT NULL,
    updated_at {float} NOT NULL,
    last_seq {bigint} NOT NULL DEFAULT 0,
    generation {bigint} NOT NULL DEFAULT 0,
    summary_seq {bigint}
);
CREATE INDEX IF NOT EXISTS windows_subject ON windows (subject);
CREATE TABLE IF NOT EXISTS window_items (
    window_key TEXT NOT NULL,
    seq {bigint} NOT NULL,
    kind TEXT NOT NULL,
    handle TEXT,
    write_key TEXT,
    origin_run TEXT,
    origin_write {bigint},
    created_at {float} NOT NULL,
    payload TEXT NOT NULL,
    PRIMARY KEY (window_key, seq)
){rowid};
CREATE UNIQUE INDEX IF NOT EXISTS window_items_write_key ON window_items (window_key, write_key);
CREATE INDEX IF NOT EXISTS window_items_handle ON window_items (window_key, handle);
CREATE INDEX IF NOT EXISTS window_items_kind ON window_items (window_key, kind, seq);
CREATE INDEX IF NOT EXISTS window_items_origin ON window_items (origin_run);
CREATE TABLE IF NOT EXISTS window_calls (
    window_key TEXT NOT NULL,
    call_id TEXT NOT NULL,
    call_seq {bigint} NOT NULL,
    result_seq {bigint},
    PRIMARY KEY (window_key, call_id)
){rowid}
