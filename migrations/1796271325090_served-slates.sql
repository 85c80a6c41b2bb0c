-- Up Migration

-- The served-slate log: what each rank/recommend answer showed, in order, with the inputs every
-- item was scored with (docs/served-log.md). Partitioned by day of served_at: the ingest role
-- creates each day's partition before its first insert and drops whole partitions past
-- SERVED_LOG_RETENTION_DAYS, which costs nothing like a DELETE would. Arrays hold the items in
-- served order (position p is element p); feature_values is row-major, item by item, one value
-- per name in features, NaN where an item had none.
CREATE TABLE served_slates (
  served_at      timestamptz NOT NULL,
  request_id     text NOT NULL,
  user_id        text NOT NULL,
  operation      text NOT NULL CHECK (operation IN ('rank', 'recommend')),
  -- The registry's version id; no foreign key, so a log row never holds a version's deletion.
  model_version  bigint,
  profile        text NOT NULL,
  -- Candidates ranked; the logged items are the first SERVED_LOG_DEPTH of them.
  candidates     integer NOT NULL CHECK (candidates >= cardinality(item_ids)),
  features       text[] NOT NULL,
  item_ids       text[] NOT NULL,
  scores         real[] NOT NULL CHECK (cardinality(scores) = cardinality(item_ids)),
  feature_values real[] NOT NULL
    CHECK (cardinality(feature_values) = cardinality(item_ids) * cardinality(features)),
  ingested_at    timestamptz NOT NULL DEFAULT now(),
  -- Redeliveries of a slate are skipped (ON CONFLICT DO NOTHING); the partition key must be part.
  PRIMARY KEY (served_at, request_id)
) PARTITION BY RANGE (served_at);
-- Training joins clicks to their slate by request id; a user's slates by time for evaluation.
CREATE INDEX served_slates_request_idx ON served_slates (request_id);
CREATE INDEX served_slates_user_served_idx ON served_slates (user_id, served_at);

-- Down Migration

DROP TABLE served_slates;
