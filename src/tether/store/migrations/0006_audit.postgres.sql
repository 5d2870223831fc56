-- tether schema (PostgreSQL): what the run audit (tether audit runs) needs beyond the runs'
-- own rows; see the SQLite file of the same number.
ALTER TABLE runs ADD COLUMN claimed_at DOUBLE PRECISION;
CREATE TABLE takeovers (
    run_id TEXT NOT NULL,
    token BIGINT NOT NULL,
    at DOUBLE PRECISION,
    lost_owner TEXT,
    lost_claimed_at DOUBLE PRECISION,
    lost_until DOUBLE PRECISION,
    PRIMARY KEY (run_id, token)
);
CREATE FUNCTION tether_record_takeover() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO takeovers (run_id, token, at, lost_owner, lost_claimed_at, lost_until)
    VALUES (NEW.id, NEW.lease_token, NEW.claimed_at, OLD.lease_owner, OLD.claimed_at, OLD.due_at)
    ON CONFLICT DO NOTHING;
    RETURN NEW;
END $$;
CREATE TRIGGER runs_takeover AFTER UPDATE OF lease_token ON runs FOR EACH ROW
    WHEN (OLD.status = 'running' AND NEW.status = 'running' AND OLD.lease_owner IS NOT NULL
          AND NEW.lease_token <> OLD.lease_token)
    EXECUTE FUNCTION tether_record_takeover();
CREATE FUNCTION tether_forget_takeovers() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM takeovers WHERE run_id = OLD.id;
    RETURN OLD;
END $$;
CREATE TRIGGER runs_takeovers_gone AFTER DELETE ON runs FOR EACH ROW
    EXECUTE FUNCTION tether_forget_takeovers();
