-- tether schema v1; timestamps are epoch seconds
CREATE TABLE IF NOT EXISTS tether_meta (
    key TEXT PRIMARY KEY,
    value TEXT NOT NULL
);

CREATE TABLE functions (
    id TEXT PRIMARY KEY,
    triggers TEXT NOT NULL,          -- JSON list of {"event": name, "where": expr|null}
    idempotency TEXT,                -- key path, when a string
    version TEXT,
    updated_at {float} NOT NULL
);

CREATE TABLE events (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    data TEXT NOT NULL,
    ts {float} NOT NULL,
    received_at {float} NOT NULL
);
CREATE INDEX events_name_ts ON events (name, ts);
CREATE INDEX events_received ON events (received_at);

CREATE TABLE runs (
    seq {seq},
    id TEXT NOT NULL UNIQUE,
    function_id TEXT NOT NULL,
    status TEXT NOT NULL,
    event_name TEXT NOT NULL,
    event_id TEXT,
    event_ts {float} NOT NULL,
    input TEXT NOT NULL,
    output TEXT,
    error TEXT,
    reason TEXT,
    created_at {float} NOT NULL,
    started_at {float},
    ended_at {float},
    due_at {float},                     -- claimable from: queued/sleeping/waiting wake time, running lease expiry
    lease_owner TEXT,
    lease_token {bigint} NOT NULL DEFAULT 0,
    cancel_requested INTEGER NOT NULL DEFAULT 0,
    timeout_s {float},
    deadline_at {float},
    parent_id TEXT,
    parent_step TEXT,
    replay_of TEXT,
    version TEXT,
    idempotency_key TEXT
);
CREATE INDEX runs_due ON runs (due_at) WHERE due_at IS NOT NULL;
CREATE INDEX runs_function ON runs (function_id, seq);
CREATE INDEX runs_idempotency ON runs (function_id, idempotency_key) WHERE idempotency_key IS NOT NULL;

CREATE TABLE steps (
    run_id TEXT NOT NULL,
    step_id TEXT NOT NULL,
    seq INTEGER NOT NULL,
    kind TEXT NOT NULL,
    status TEXT NOT NULL,
    output TEXT,
    error TEXT,
    started_at {float},
    ended_at {float},
    wake_at {float},
    wait_event TEXT,
    wait_match TEXT,
    wait_value TEXT,
    wait_if TEXT,
    child_id TEXT,
    PRIMARY KEY (run_id, step_id)
){rowid};
CREATE INDEX steps_waiting ON steps (wait_event, wait_match, wait_value) WHERE status = 'waiting';

CREATE TABLE attempts (
    run_id TEXT NOT NULL,
    step_id TEXT NOT NULL,
    number INTEGER NOT NULL,
    started_at {float} NOT NULL,
    ended_at {float} NOT NULL,
    error_type TEXT,
    error_message TEXT,
    traceback TEXT,
    PRIMARY KEY (run_id, step_id, number)
){rowid};

CREATE TABLE kv (
    key TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
