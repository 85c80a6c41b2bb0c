-- Up Migration

-- Why a queued run has not started yet (no text vectors of the encoder, an embedding backlog),
-- as the trainer last found; cleared when a trainer claims the run.
ALTER TABLE training_runs ADD COLUMN waiting_for text;

-- Down Migration

ALTER TABLE training_runs DROP COLUMN waiting_for;
