-- tether schema v3: the whole description of each registered function (register_functions'
-- row dict as given: ids, triggers, idempotency, version, flow settings, timeout, ...)
ALTER TABLE functions ADD COLUMN spec {json};
