-- tether schema (SQLite): what the run audit (tether audit runs) needs beyond the runs' own rows.
-- claimed_at: when the run's current lease was taken. takeovers: one row each time a run
-- whose lease was still held (status running, an owner) is claimed again after the lease
-- ran out (its worker died or stalled), written by the trigger in the claiming statement.
-- Released leases (lease_owner NULL) are not takeovers.
ALTER TABLE runs ADD COLUMN claimed_at REAL;
CREATE TABLE takeovers (
    run_id TEXT NOT NULL,
    token INTEGER NOT NULL,          -- the new lease's token
    at REAL,                         -- when the new lease was taken
    lost_owner TEXT,                 -- the worker whose lease ran out
    lost_claimed_at REAL,            -- when that lease was taken
    lost_until REAL,                 -- when it ran out
    PRIMARY KEY (run_id, token)
) WITHOUT ROWID;
CREATE TRIGGER runs_takeover AFTER UPDATE OF lease_token ON runs WHEN OLD.status = 'running' AND NEW.status = 'running' AND OLD.lease_owner IS NOT NULL AND NEW.lease_token <> OLD.lease_token BEGIN INSERT OR IGNORE INTO takeovers (run_id, token, at, lost_owner, lost_claimed_at, lost_until) VALUES (NEW.id, NEW.lease_token, NEW.claimed_at, OLD.lease_owner, OLD.claimed_at, OLD.due_at); END;
CREATE TRIGGER runs_takeovers_gone AFTER DELETE ON runs BEGIN DELETE FROM takeovers WHERE run_id = OLD.id; END;
