-- Up Migration

-- Events stored while Redis was unreachable: their online-state update is still owed. The ingest
-- consumer drains this once Redis answers again; `rebuild-online-state` clears it. Non-empty = stale.
CREATE TABLE online_state_backlog (
  event_id  text PRIMARY KEY REFERENCES events (event_id) ON DELETE CASCADE,
  seq       bigint NOT NULL,
  queued_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX online_state_backlog_seq_idx ON online_state_backlog (seq);

-- Down Migration

DROP TABLE online_state_backlog;
