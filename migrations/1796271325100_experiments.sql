-- Up Migration

-- Online experiments (docs/experiments.md): named splits of users into arms, each serving a model
-- version (null: whichever is active) with a profile (null: the one the request names). Users
-- are assigned by a hash of salt and user id, so the split is sticky across replicas and
-- restarts. A canary is an experiment of kind 'canary' whose second arm is the new version; its
-- judge promotes or rolls it back. `arms` is a JSON array of {name, modelVersion, profile, share}
-- with shares in percent summing to 100; the first arm is the control the others are compared to.
CREATE TABLE experiments (
  id                  bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  name                text NOT NULL UNIQUE,
  kind                text NOT NULL CHECK (kind IN ('ab', 'canary')),
  status              text NOT NULL CHECK (status IN ('draft', 'running', 'stopped')),
  salt                text NOT NULL,
  arms                jsonb NOT NULL,
  -- What the report and the canary judge need: impressions before a verdict, the lift the
  -- sample-size figure is sized for, and the test's confidence and power.
  min_impressions     integer NOT NULL CHECK (min_impressions > 0),
  min_detectable_lift double precision NOT NULL CHECK (min_detectable_lift > 0),
  confidence          double precision NOT NULL CHECK (confidence > 0.5 AND confidence < 1),
  power               double precision NOT NULL CHECK (power > 0.5 AND power < 1),
  -- How it ended: 'stopped', 'promoted <arm>', 'rolled back'; and why.
  outcome             text,
  outcome_reason      text,
  created_by          text NOT NULL,
  created_at          timestamptz NOT NULL DEFAULT now(),
  started_at          timestamptz,
  stopped_at          timestamptz,
  CHECK ((status = 'draft') = (started_at IS NULL)),
  CHECK ((status = 'stopped') = (stopped_at IS NOT NULL))
);
-- One traffic layer: at most one experiment (or canary) runs at a time.
CREATE UNIQUE INDEX experiments_one_running_idx ON experiments ((true)) WHERE status = 'running';

-- Which experiment and arm served a slate; null outside any experiment.
ALTER TABLE served_slates
  ADD COLUMN experiment_id bigint,
  ADD COLUMN arm text,
  ADD CONSTRAINT served_slates_arm_check CHECK ((experiment_id IS NULL) = (arm IS NULL));
-- Online figures per arm, and per model version.
CREATE INDEX served_slates_experiment_idx ON served_slates (experiment_id, served_at)
  WHERE experiment_id IS NOT NULL;
CREATE INDEX served_slates_version_idx ON served_slates (model_version, served_at);

-- The activation log also records canaries: started, promoted, rolled back (with the reason).
ALTER TABLE model_activations DROP CONSTRAINT model_activations_action_check;
ALTER TABLE model_activations
  ADD CONSTRAINT model_activations_action_check CHECK (action IN (
    'promote', 'activate', 'rollback', 'canary_start', 'canary_promote', 'canary_rollback')),
  ADD COLUMN reason text,
  ADD COLUMN experiment_id bigint REFERENCES experiments (id);

-- Down Migration

DELETE FROM model_activations WHERE action IN ('canary_start', 'canary_rollback');
UPDATE model_activations SET action = 'promote' WHERE action = 'canary_promote';
ALTER TABLE model_activations
  DROP COLUMN experiment_id,
  DROP COLUMN reason,
  DROP CONSTRAINT model_activations_action_check;
ALTER TABLE model_activations
  ADD CONSTRAINT model_activations_action_check CHECK (action IN ('promote', 'activate', 'rollback'));
DROP INDEX served_slates_version_idx;
DROP INDEX served_slates_experiment_idx;
ALTER TABLE served_slates DROP CONSTRAINT served_slates_arm_check, DROP COLUMN arm, DROP COLUMN experiment_id;
DROP TABLE experiments;
