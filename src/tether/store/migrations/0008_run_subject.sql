-- tether schema: whose data a run and an event are (DESIGN 4b, ``@th.function(subject=...)``).
-- runs.subject: the subject the function's subject key named (children, replays and
-- on_failure runs inherit it). events.subject: the subject of a run the event started.
-- th.subject(id).forget() deletes both through these indexes.
ALTER TABLE runs ADD COLUMN subject TEXT;
CREATE INDEX runs_subject ON runs (subject) WHERE subject IS NOT NULL;
ALTER TABLE events ADD COLUMN subject TEXT;
CREATE INDEX events_subject ON events (subject) WHERE subject IS NOT NULL;
