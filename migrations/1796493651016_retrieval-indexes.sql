-- Up Migration

-- A served version's ANN index as one replica built it, for the other replicas and restarts
-- serving the same version (a million items took 40 minutes to build here). Written once, never
-- updated; the newest per version is opened, older ones and those of long-unserved versions are
-- deleted. `label_item_ids`: the item id of each label of the index, one per line (ids have no
-- control characters; an empty line: no item).
CREATE TABLE retrieval_indexes (
  index_id        bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  version_id      bigint NOT NULL REFERENCES model_versions (id) ON DELETE CASCADE,
  dimension       integer NOT NULL CHECK (dimension > 0),
  m               integer NOT NULL CHECK (m > 0),
  ef_construction integer NOT NULL CHECK (ef_construction > 0),
  with_bias       boolean NOT NULL,
  points          integer NOT NULL CHECK (points >= 0),
  size            bigint NOT NULL CHECK (size >= 0),
  sha256          text NOT NULL CHECK (sha256 ~ '^[0-9a-f]{64}$'),
  label_item_ids  text NOT NULL,
  created_at      timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX retrieval_indexes_version_idx ON retrieval_indexes (version_id, index_id);

-- The index file in 1 MB slices (a bytea holds at most 1 GB; a million items make about 2 GB).
CREATE TABLE retrieval_index_chunks (
  index_id bigint NOT NULL REFERENCES retrieval_indexes (index_id) ON DELETE CASCADE,
  seq      integer NOT NULL CHECK (seq >= 0),
  bytes    bytea NOT NULL,
  PRIMARY KEY (index_id, seq)
);
-- Float vectors and graph links do not compress; skip the attempt.
ALTER TABLE retrieval_index_chunks ALTER COLUMN bytes SET STORAGE EXTERNAL;

CREATE FUNCTION retrieval_indexes_immutable() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  RAISE EXCEPTION 'stored retrieval indexes are immutable (index %)', OLD.index_id;
END;
$$;
CREATE TRIGGER retrieval_indexes_no_update BEFORE UPDATE ON retrieval_indexes
  FOR EACH ROW EXECUTE FUNCTION retrieval_indexes_immutable();
CREATE TRIGGER retrieval_index_chunks_no_update BEFORE UPDATE ON retrieval_index_chunks
  FOR EACH ROW EXECUTE FUNCTION retrieval_indexes_immutable();

-- Down Migration

DROP TABLE retrieval_index_chunks;
DROP TABLE retrieval_indexes;
DROP FUNCTION retrieval_indexes_immutable();
