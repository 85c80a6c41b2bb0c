-- Up Migration

-- A claim token per Redis update: the update is applied under a Redis guard keyed by the token, so
-- re-applying a claimed-but-unfinished batch after a crash is a no-op instead of a double count.
ALTER TABLE online_state_backlog ADD COLUMN claim_token text;
CREATE INDEX online_state_backlog_claim_idx ON online_state_backlog (claim_token)
  WHERE claim_token IS NOT NULL;

-- Down Migration

DROP INDEX online_state_backlog_claim_idx;
ALTER TABLE online_state_backlog DROP COLUMN claim_token;
