-- Up Migration

-- How a stored index's points are laid out, and so what its graph compares (hnsw-graph.ts):
-- 'inner-product' (every index stored before) or 'norm-augmented-l2', built too where the
-- inner-product graph samples a low recall. A replica opens or adopts a stored index in its own
-- format.
ALTER TABLE retrieval_indexes ADD COLUMN point_format text NOT NULL DEFAULT 'inner-product';
ALTER TABLE retrieval_indexes ALTER COLUMN point_format DROP DEFAULT;

-- Down Migration

-- The code before reads every stored index as inner-product points: the others must go.
DELETE FROM retrieval_indexes WHERE point_format <> 'inner-product';
ALTER TABLE retrieval_indexes DROP COLUMN point_format;
