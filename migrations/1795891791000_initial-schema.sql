-- Up Migration

-- Catalog. `source_ts` is the producer's timestamp: the newest write wins, whatever the arrival order.
CREATE TABLE items (
  item_id       text PRIMARY KEY,
  title         text NOT NULL,
  description   text,
  category      text,
  tags          text[] NOT NULL DEFAULT '{}',
  price         double precision CHECK (price >= 0),
  created_at    timestamptz,
  source_ts     timestamptz NOT NULL,
  deleted       boolean NOT NULL DEFAULT false,
  -- Hash of the text the encoder sees; a change marks the item for (re)embedding.
  text_hash     text NOT NULL,
  embed_pending boolean NOT NULL DEFAULT true,
  ingested_at   timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX items_embed_pending_idx ON items (item_id) WHERE embed_pending AND NOT deleted;
CREATE INDEX items_category_idx ON items (category) WHERE NOT deleted;

-- Behaviour. event_id makes storage idempotent; seq orders events by arrival for incremental training.
CREATE TABLE events (
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
CREATE INDEX events_user_ts_idx ON events (user_id, ts DESC);
CREATE INDEX events_item_idx ON events (item_id);
CREATE INDEX events_ts_idx ON events (ts);
CREATE INDEX events_request_idx ON events (request_id) WHERE request_id IS NOT NULL;

-- Model registry. Ids only increase (identity, never reused); artifacts live elsewhere, keyed by id.
CREATE TABLE model_versions (
  id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  parent_id       bigint REFERENCES model_versions (id),
  status          text NOT NULL CHECK (status IN ('training', 'candidate', 'active', 'retired', 'failed')),
  encoder_id      text NOT NULL,
  backend         text,
  train_from      timestamptz,
  train_to        timestamptz,
  train_samples   integer,
  valid_samples   integer,
  hyperparameters jsonb NOT NULL DEFAULT '{}',
  metrics         jsonb NOT NULL DEFAULT '{}',
  status_reason   text,
  triggered_by    text NOT NULL,
  created_at      timestamptz NOT NULL DEFAULT now(),
  activated_at    timestamptz
);
-- At most one active version at a time.
CREATE UNIQUE INDEX model_versions_one_active_idx ON model_versions ((status)) WHERE status = 'active';

-- Down Migration

DROP TABLE model_versions;
DROP TABLE events;
DROP TABLE items;
