-- Up Migration

-- `events` becomes range-partitioned by UTC day of `ts` (docs/operations/retention.md): the
-- ingest role creates the coming days' partitions ahead and drops those past
-- EVENTS_RETENTION_DAYS whole, which costs nothing like a DELETE would, and reads bounded in time
-- (training's window, validation windows) skip the other days. Existing rows move into one
-- partition per day they fall on. No foreign key or view refers to `events`
-- (`online_state_pending` holds seqs by value).
--
-- A unique index on a partitioned table must contain the partition key: duplicates are now
-- rejected on (event_id, ts). A redelivery or a producer's retry carries the same event, time
-- included, so it is still stored once; the same id sent again with another time is a second
-- event. `seq` stays unique through its identity sequence, indexed per partition.

-- The identity sequence's position carries over, so seqs only increase.
CREATE TEMP TABLE events_seq_carry ON COMMIT DROP AS
  SELECT last_value, is_called FROM events_seq_seq;
ALTER TABLE events ALTER COLUMN seq DROP IDENTITY;
ALTER TABLE events RENAME TO events_unpartitioned;
ALTER TABLE events_unpartitioned DROP CONSTRAINT events_pkey, DROP CONSTRAINT events_seq_key;
DROP INDEX events_item_idx, events_ts_brin_idx, events_user_interactions_idx;

CREATE TABLE events (
  event_id    text NOT NULL,
  seq         bigint GENERATED ALWAYS AS IDENTITY,
  type        text NOT NULL CHECK (type IN ('impression', 'click', 'add_to_cart', 'purchase')),
  user_id     text NOT NULL,
  item_id     text NOT NULL,
  ts          timestamptz NOT NULL,
  request_id  text,
  position    integer CHECK (position >= 0),
  context     jsonb,
  ingested_at timestamptz NOT NULL DEFAULT now()
) PARTITION BY RANGE (ts);
SELECT setval(pg_get_serial_sequence('events', 'seq'), last_value, is_called)
  FROM events_seq_carry;

-- Rows no daily partition takes (maintenance behind, a late event for a day never created) land
-- here instead of failing their batch; maintenance moves them into their day's partition.
CREATE TABLE events_default PARTITION OF events DEFAULT;

-- One partition per day with rows, and today's and tomorrow's (maintenance adds the rest).
DO $$
DECLARE
  day timestamptz;
BEGIN
  FOR day IN
    SELECT DISTINCT date_trunc('day', ts, 'UTC') FROM events_unpartitioned
    UNION
    SELECT date_trunc('day', now(), 'UTC') + make_interval(days => n) FROM generate_series(0, 1) n
  LOOP
    EXECUTE format(
      'CREATE TABLE %I PARTITION OF events FOR VALUES FROM (%L) TO (%L)',
      'events_p' || to_char(day AT TIME ZONE 'UTC', 'YYYYMMDD'),
      day,
      day + interval '1 day');
  END LOOP;
END $$;

INSERT INTO events OVERRIDING SYSTEM VALUE
  SELECT event_id, seq, type, user_id, item_id, ts, request_id, position, context, ingested_at
    FROM events_unpartitioned;
DROP TABLE events_unpartitioned;

-- Built after the copy (faster than maintaining them row by row); each partition gets its own.
ALTER TABLE events ADD PRIMARY KEY (event_id, ts);
-- Arrival order: incremental training, the write-ahead drain and the online-state rebuild.
CREATE INDEX events_seq_idx ON events (seq);
CREATE INDEX events_item_idx ON events (item_id);
CREATE INDEX events_ts_brin_idx ON events USING brin (ts);
CREATE INDEX events_user_interactions_idx ON events (user_id, ts DESC) WHERE type <> 'impression';

-- Down Migration

-- Back to one table keyed by event_id: where the same id was stored at two times, the first
-- stored (lowest seq) is kept.
CREATE TABLE events_unpartitioned (
  event_id    text PRIMARY KEY,
  seq         bigint GENERATED ALWAYS AS IDENTITY UNIQUE,
  type        text NOT NULL CHECK (type IN ('impression', 'click', 'add_to_cart', 'purchase')),
  user_id     text NOT NULL,
  item_id     text NOT NULL,
  ts          timestamptz NOT NULL,
  request_id  text,
  position    integer CHECK (position >= 0),
  context     jsonb,
  ingested_at timestamptz NOT NULL DEFAULT now()
);
SELECT setval(pg_get_serial_sequence('events_unpartitioned', 'seq'), last_value, is_called)
  FROM events_seq_seq;
INSERT INTO events_unpartitioned OVERRIDING SYSTEM VALUE
  SELECT event_id, seq, type, user_id, item_id, ts, request_id, position, context, ingested_at
    FROM events ORDER BY seq
  ON CONFLICT (event_id) DO NOTHING;
DROP TABLE events;

ALTER TABLE events_unpartitioned RENAME TO events;
ALTER TABLE events RENAME CONSTRAINT events_unpartitioned_pkey TO events_pkey;
ALTER TABLE events RENAME CONSTRAINT events_unpartitioned_seq_key TO events_seq_key;
ALTER TABLE events RENAME CONSTRAINT events_unpartitioned_type_check TO events_type_check;
ALTER TABLE events RENAME CONSTRAINT events_unpartitioned_position_check TO events_position_check;
ALTER SEQUENCE events_unpartitioned_seq_seq RENAME TO events_seq_seq;
CREATE INDEX events_item_idx ON events (item_id);
CREATE INDEX events_ts_brin_idx ON events USING brin (ts);
CREATE INDEX events_user_interactions_idx ON events (user_id, ts DESC) WHERE type <> 'impression';
