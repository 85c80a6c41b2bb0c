-- Up Migration

-- One vector per item and encoder (model + precision). `text_hash` is the hash of the text that was
-- encoded (items.text_hash at the time): equal hash = up to date, and any item with the same hash
-- can reuse the vector. `vector` is little-endian float32, `dimension` values long.
CREATE TABLE item_embeddings (
  item_id    text NOT NULL REFERENCES items (item_id) ON DELETE CASCADE,
  encoder_id text NOT NULL,
  text_hash  text NOT NULL,
  dimension  integer NOT NULL CHECK (dimension > 0),
  vector     bytea NOT NULL CHECK (octet_length(vector) = 4 * dimension),
  updated_at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (item_id, encoder_id)
);
CREATE INDEX item_embeddings_hash_idx ON item_embeddings (encoder_id, text_hash);

-- Wakes the embedding worker (LISTEN items_embed_pending) once per statement that leaves an item
-- pending, so ingest needs no knowledge of the worker; the worker also polls as a safety net.
CREATE FUNCTION notify_items_embed_pending() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF EXISTS (SELECT 1 FROM changed_items WHERE embed_pending AND NOT deleted) THEN
    PERFORM pg_notify('items_embed_pending', '');
  END IF;
  RETURN NULL;
END;
$$;
CREATE TRIGGER items_embed_pending_insert AFTER INSERT ON items
  REFERENCING NEW TABLE AS changed_items
  FOR EACH STATEMENT EXECUTE FUNCTION notify_items_embed_pending();
CREATE TRIGGER items_embed_pending_update AFTER UPDATE ON items
  REFERENCING NEW TABLE AS changed_items
  FOR EACH STATEMENT EXECUTE FUNCTION notify_items_embed_pending();

-- Down Migration

DROP TRIGGER items_embed_pending_update ON items;
DROP TRIGGER items_embed_pending_insert ON items;
DROP FUNCTION notify_items_embed_pending();
DROP TABLE item_embeddings;
