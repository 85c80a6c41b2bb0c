-- Up Migration

-- The event times an owed online-state update spans. The catch-up reads its events by seq; with
-- `events` partitioned by day, a read by seq alone is planned and probed in every retained day's
-- partition (with a batch's thousands of seqs, in each), while one bounded by these times as
-- values reads only the days the batch holds. Rows queued before (NULL) are read unbounded.
ALTER TABLE online_state_pending ADD COLUMN min_ts timestamptz, ADD COLUMN max_ts timestamptz;

-- Down Migration

ALTER TABLE online_state_pending DROP COLUMN min_ts, DROP COLUMN max_ts;
