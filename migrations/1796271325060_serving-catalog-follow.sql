-- Up Migration

-- Every api replica follows the catalog every RANK_CATALOG_REFRESH_MS: items changed since its
-- last read (features, deletions) and text vectors stored since (items embedded after a swap).
CREATE INDEX items_ingested_at_idx ON items (ingested_at);
CREATE INDEX item_embeddings_updated_idx ON item_embeddings (encoder_id, updated_at);

-- Down Migration

DROP INDEX item_embeddings_updated_idx;
DROP INDEX items_ingested_at_idx;
