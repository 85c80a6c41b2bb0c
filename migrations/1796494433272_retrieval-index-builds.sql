-- Up Migration

-- Which replica builds a version's ANN index now (a lease it renews while building and storing):
-- the other replicas wait for the stored index instead of building the same one (an activation
-- otherwise starts one 40-minute build per replica at a million items). A lease not renewed
-- within its term (the builder died) is taken over.
CREATE TABLE retrieval_index_builds (
  version_id bigint PRIMARY KEY REFERENCES model_versions (id) ON DELETE CASCADE,
  builder    text NOT NULL,
  renewed_at timestamptz NOT NULL DEFAULT now()
);

-- Down Migration

DROP TABLE retrieval_index_builds;
