-- Up Migration

-- What a version has seen and was judged on: the newest events.seq in its training data (the
-- scheduler counts events after it) and the validation window its metrics come from.
ALTER TABLE model_versions
  ADD COLUMN events_seq bigint,
  ADD COLUMN valid_from timestamptz,
  ADD COLUMN valid_to   timestamptz;

-- Artifacts are written once per version and never changed; the sha256 is verified on every load.
CREATE TABLE model_artifacts (
  version_id bigint PRIMARY KEY REFERENCES model_versions (id),
  sha256     text NOT NULL CHECK (sha256 ~ '^[0-9a-f]{64}$'),
  size       integer NOT NULL CHECK (size >= 0),
  bytes      bytea NOT NULL,
  created_at timestamptz NOT NULL DEFAULT now()
);
-- Float weights do not compress; skip the attempt.
ALTER TABLE model_artifacts ALTER COLUMN bytes SET STORAGE EXTERNAL;

CREATE FUNCTION model_artifacts_immutable() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  RAISE EXCEPTION 'model artifacts are immutable (version %)', OLD.version_id;
END;
$$;
CREATE TRIGGER model_artifacts_no_update BEFORE UPDATE ON model_artifacts
  FOR EACH ROW EXECUTE FUNCTION model_artifacts_immutable();

-- One row per training attempt (scheduled, CLI or GraphQL); ops poll it for progress.
CREATE TABLE training_runs (
  id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  mode         text NOT NULL CHECK (mode IN ('INCREMENTAL', 'FULL')),
  status       text NOT NULL CHECK (status IN ('queued', 'running', 'succeeded', 'failed')),
  progress     real NOT NULL DEFAULT 0 CHECK (progress >= 0 AND progress <= 1),
  version_id   bigint REFERENCES model_versions (id),
  outcome      text,
  error        text,
  triggered_by text NOT NULL,
  created_at   timestamptz NOT NULL DEFAULT now(),
  started_at   timestamptz,
  finished_at  timestamptz
);
-- At most one unfinished run; the advisory lock held while training is what excludes trainers,
-- this index keeps the table consistent with it.
CREATE UNIQUE INDEX training_runs_one_unfinished_idx ON training_runs ((true))
  WHERE status IN ('queued', 'running');

-- Every change of the active version; rollback follows previous_version_id back.
CREATE TABLE model_activations (
  id                  bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  version_id          bigint NOT NULL REFERENCES model_versions (id),
  previous_version_id bigint REFERENCES model_versions (id),
  action              text NOT NULL CHECK (action IN ('promote', 'activate', 'rollback')),
  triggered_by        text NOT NULL,
  created_at          timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX model_activations_version_idx ON model_activations (version_id, id DESC);

-- Down Migration

DROP TABLE model_activations;
DROP TABLE training_runs;
DROP TABLE model_artifacts;
DROP FUNCTION model_artifacts_immutable();
ALTER TABLE model_versions DROP COLUMN valid_to, DROP COLUMN valid_from, DROP COLUMN events_seq;
