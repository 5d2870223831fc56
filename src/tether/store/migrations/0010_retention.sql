-- tether schema: what retention (tether prune, Harness(retention=...)) needs.
-- runs_event: an event is kept while a run it triggered is still live, found through this index.
-- langgraph_checkpoints.created_at: when TetherSaver wrote the checkpoint (older rows are
-- dated by their time-ordered LangGraph id when pruned).
-- windows.ttl: a window's own retention age in seconds (NULL: the prune's age).
CREATE INDEX runs_event ON runs (event_id) WHERE event_id IS NOT NULL;
ALTER TABLE langgraph_checkpoints ADD COLUMN created_at {float};
ALTER TABLE windows ADD COLUMN ttl {float}
