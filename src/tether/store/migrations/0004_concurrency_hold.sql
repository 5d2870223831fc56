-- tether schema v4: Concurrency(hold=True) keeps a run's slots through sleeps and waits
ALTER TABLE runs ADD COLUMN chold INTEGER;
CREATE INDEX runs_held1 ON runs (ckey1) WHERE chold = 1 AND status IN ('queued', 'sleeping', 'waiting');
CREATE INDEX runs_held2 ON runs (ckey2) WHERE chold = 1 AND status IN ('queued', 'sleeping', 'waiting');
