-- Up Migration

-- How well each stored index answers (recall@20 of recommend's candidates against the exact scan
-- on sampled users), and where its graph came from: a version's index may keep another version's
-- graph with its own vectors (adopted) when that costs at most a little recall against the fresh
-- build the graph descends from (graph_recall) and its items moved little since that build
-- (graph_drift: the mean angle in degrees, adoptions in a row added up; 0 when built). Indexes
-- stored before have none and are never adopted.
ALTER TABLE retrieval_indexes
  ADD COLUMN recall real CHECK (recall BETWEEN 0 AND 1),
  ADD COLUMN graph_recall real CHECK (graph_recall BETWEEN 0 AND 1),
  ADD COLUMN graph_drift real CHECK (graph_drift >= 0),
  ADD COLUMN adopted_from bigint;

-- Down Migration

ALTER TABLE retrieval_indexes
  DROP COLUMN adopted_from,
  DROP COLUMN graph_drift,
  DROP COLUMN graph_recall,
  DROP COLUMN recall;
