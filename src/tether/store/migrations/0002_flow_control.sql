-- tether schema v2: flow control
ALTER TABLE runs ADD COLUMN ckey1 TEXT;
ALTER TABLE runs ADD COLUMN climit1 INTEGER;
ALTER TABLE runs ADD COLUMN ckey2 TEXT;
ALTER TABLE runs ADD COLUMN climit2 INTEGER;
ALTER TABLE runs ADD COLUMN singleton_key TEXT;
ALTER TABLE runs ADD COLUMN throttle_key TEXT;
ALTER TABLE runs ADD COLUMN scheduled_at {float};
ALTER TABLE runs ADD COLUMN throttle_limit INTEGER;
ALTER TABLE runs ADD COLUMN throttle_period {float};
ALTER TABLE runs ADD COLUMN rate_key TEXT;
ALTER TABLE runs ADD COLUMN debounce_key TEXT;
ALTER TABLE runs ADD COLUMN debounce_until {float};
ALTER TABLE runs ADD COLUMN batch_key TEXT;
ALTER TABLE runs ADD COLUMN batch_events TEXT;
ALTER TABLE runs ADD COLUMN batch_size INTEGER;
ALTER TABLE events ADD COLUMN decisions TEXT;
CREATE INDEX runs_ckey1 ON runs (ckey1) WHERE status = 'running';
CREATE INDEX runs_ckey2 ON runs (ckey2) WHERE status = 'running';
CREATE INDEX runs_singleton ON runs (singleton_key, status) WHERE singleton_key IS NOT NULL;
CREATE INDEX runs_throttle ON runs (throttle_key, scheduled_at) WHERE throttle_key IS NOT NULL;
CREATE INDEX runs_throttle_started ON runs (throttle_key, started_at) WHERE throttle_key IS NOT NULL;
CREATE INDEX runs_rate ON runs (rate_key, created_at) WHERE rate_key IS NOT NULL;
CREATE INDEX runs_debounce ON runs (debounce_key, status) WHERE debounce_key IS NOT NULL;
CREATE INDEX runs_batch ON runs (batch_key, status) WHERE batch_key IS NOT NULL;
CREATE TABLE cancel_waits (
    run_id TEXT NOT NULL,
    event_name TEXT NOT NULL,
    match_path TEXT,
    match_value TEXT,
    expires_at {float},
    PRIMARY KEY (run_id, event_name)
){rowid};
CREATE INDEX cancel_waits_event ON cancel_waits (event_name, match_path, match_value);
