-- Up Migration

-- The write-ahead for the Redis online state becomes one row per stored batch instead of one per
-- event: the token is chosen with the insert, so no claim step is needed, and the Redis guard keyed
-- by the token still applies each batch at most once. Three writes per event become one per batch.
CREATE TABLE online_state_pending (
  token     uuid PRIMARY KEY,
  seqs      bigint[] NOT NULL,
  max_seq   bigint NOT NULL,
  queued_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX online_state_pending_max_seq_idx ON online_state_pending (max_seq);

-- Owed updates carry over: a claimed group keeps its token (it may be half applied in Redis).
INSERT INTO online_state_pending (token, seqs, max_seq)
SELECT COALESCE(claim_token::uuid, gen_random_uuid()), array_agg(seq ORDER BY seq), max(seq)
FROM online_state_backlog
GROUP BY claim_token;

DROP TABLE online_state_backlog;

-- Insert cost of events, the hottest table. No query looks events up by request id; time-range reads (validation windows) are rare and
-- arrival order follows time, so a BRIN index serves them at almost no insert cost.
DROP INDEX events_request_idx;
DROP INDEX events_ts_idx;
CREATE INDEX events_ts_brin_idx ON events USING brin (ts);
-- Per-user reads (recent interactions, click histories) never want impressions, which are most of
-- the rows: a partial index does a fraction of the maintenance on every insert.
DROP INDEX events_user_ts_idx;
CREATE INDEX events_user_interactions_idx ON events (user_id, ts DESC) WHERE type <> 'impression';

-- Down Migration

DROP INDEX events_user_interactions_idx;
CREATE INDEX events_user_ts_idx ON events (user_id, ts DESC);
DROP INDEX events_ts_brin_idx;
CREATE INDEX events_ts_idx ON events (ts);
CREATE INDEX events_request_idx ON events (request_id) WHERE request_id IS NOT NULL;

CREATE TABLE online_state_backlog (
  event_id    text PRIMARY KEY REFERENCES events (event_id) ON DELETE CASCADE,
  seq         bigint NOT NULL,
  queued_at   timestamptz NOT NULL DEFAULT now(),
  claim_token text
);
CREATE INDEX online_state_backlog_seq_idx ON online_state_backlog (seq);
CREATE INDEX online_state_backlog_claim_idx ON online_state_backlog (claim_token)
  WHERE claim_token IS NOT NULL;
INSERT INTO online_state_backlog (event_id, seq, claim_token)
SELECT e.event_id, e.seq, p.token::text
FROM online_state_pending p JOIN events e ON e.seq = ANY (p.seqs);

DROP TABLE online_state_pending;
