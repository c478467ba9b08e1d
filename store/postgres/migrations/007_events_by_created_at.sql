-- `read_batches(created_since=…)` (GET /events?since=): a `created_at` range read
-- from the index, not by scanning the log. Same as SQLite's m012.
CREATE INDEX events_created_at ON events (created_at, position);
