-- Up Migration

-- How well each stored index answers (recall@20 of recommend's candidates against the exact scan
-- on sampled users), and where its graph came from: a version's index may keep another version's
-- graph with its own vectors (adopted) when that costs at most a little recall against the fresh
-- build the graph descends from (graph_recall). Indexes stored before have none and are never
-- adopted.
ALTER TABLE retrieval_indexes
  ADD COLUMN recall real CHECK (recall BETWEEN 0 AND 1),
  ADD COLUMN graph_recall real CHECK (graph_recall BETWEEN 0 AND 1),
  ADD COLUMN adopted_from bigint;

-- Down Migration

ALTER TABLE retrieval_indexes
  DROP COLUMN adopted_from,
  DROP COLUMN graph_recall,
  DROP COLUMN recall;
