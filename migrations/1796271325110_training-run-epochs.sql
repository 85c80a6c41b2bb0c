-- Up Migration

-- Each finished epoch of a run, in order: {epoch, loss, validationAuc, seconds}; the console
-- charts them while the run goes on.
ALTER TABLE training_runs ADD COLUMN epochs jsonb NOT NULL DEFAULT '[]';

-- Down Migration

ALTER TABLE training_runs DROP COLUMN epochs;
