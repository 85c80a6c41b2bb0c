import type { Pool } from 'pg';
import { itemText, itemTextHash } from '../../src/modules/embedding/item-text';
import { vectorToBytes } from '../../src/modules/embedding/vector-codec';
import { generateBehaviour, generateCatalog } from '../../src/synthetic';
import { HashingTextEncoder } from './fakes/hashing-encoder';

export interface TrainingDataOptions {
  /** The encoder the trainer reads vectors of (its `encoderId`). */
  readonly encoderId: string;
  /** Seeds the catalog and the behaviour: suites differ, runs of one suite do not. */
  readonly seed: string;
  readonly items?: number;
  readonly users?: number;
  readonly impressions?: number;
  /** Items still flagged for the embedding worker (their vectors stored all the same). */
  readonly embedPending?: boolean;
}

/**
 * What the trainer reads, stored straight in PostgreSQL: a synthetic catalog with hashing-encoder
 * text vectors under `encoderId`, and its users' impressions and clicks.
 */
export async function seedTrainingData(
  pool: Pool,
  {
    encoderId,
    seed,
    items = 150,
    users = 80,
    impressions = 12_000,
    embedPending = false,
  }: TrainingDataOptions,
): Promise<void> {
  const catalog = generateCatalog({ items, seed });
  const texts = catalog.items.map((item) => itemText(item));
  const hashes = texts.map((text) => itemTextHash(text));
  const vectors = await new HashingTextEncoder(384).encode(texts);
  await pool.query(
    `INSERT INTO items (item_id, title, description, category, tags, source_ts, text_hash, embed_pending)
     SELECT u.id, u.title, u.description, u.category,
            ARRAY(SELECT jsonb_array_elements_text(u.tags)), now(), u.hash, $7
       FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::jsonb[], $6::text[])
         AS u(id, title, description, category, tags, hash)`,
    [
      catalog.items.map((item) => item.itemId),
      catalog.items.map((item) => item.title),
      catalog.items.map((item) => item.description),
      catalog.items.map((item) => item.category),
      catalog.items.map((item) => JSON.stringify(item.tags)),
      hashes,
      embedPending,
    ],
  );
  await pool.query(
    `INSERT INTO item_embeddings (item_id, encoder_id, text_hash, dimension, vector)
     SELECT u.id, $2, u.hash, 384, u.vector FROM unnest($1::text[], $3::text[], $4::bytea[])
       AS u(id, hash, vector)`,
    [
      catalog.items.map((item) => item.itemId),
      encoderId,
      hashes,
      vectors.map((vector) => vectorToBytes(vector)),
    ],
  );
  const { events } = generateBehaviour({ catalog, users, impressions, seed });
  const rows = events.filter((e) => e.type === 'impression' || e.type === 'click');
  await pool.query(
    `INSERT INTO events (event_id, type, user_id, item_id, ts, request_id, position)
     SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::timestamptz[],
                          $6::text[], $7::int[])`,
    [
      rows.map((e) => e.eventId),
      rows.map((e) => e.type),
      rows.map((e) => e.userId),
      rows.map((e) => e.itemId),
      rows.map((e) => e.timestamp),
      rows.map((e) => e.requestId),
      rows.map((e) => e.position),
    ],
  );
}
