import { Client, Pool } from 'pg';
import { createClient } from 'redis';
import { createLogger } from '../../src/common/logger';
import { ensureDatabase, migrate } from '../../src/infra/migrator';
import { generateBehaviour, generateCatalog } from '../../src/synthetic';
import type { SyntheticEvent, SyntheticItem } from '../../src/synthetic';

const ITEM_CHUNK = 5000;
const EVENT_CHUNK = 20_000;

/** Runs `sql` on the server's `postgres` database (for statements about `databaseUrl`'s own). */
async function onServer(databaseUrl: string, sql: (name: string) => string): Promise<void> {
  const admin = new URL(databaseUrl);
  const name = admin.pathname.slice(1);
  admin.pathname = '/postgres';
  const client = new Client({ connectionString: admin.toString() });
  await client.connect();
  try {
    await client.query(sql(name));
  } finally {
    await client.end();
  }
}

/** `postgresUrl` naming the database `name` instead of its own. */
export function databaseUrlFor(postgresUrl: string, name: string): string {
  const url = new URL(postgresUrl);
  url.pathname = `/${name}`;
  return url.toString();
}

export function dropDatabase(databaseUrl: string): Promise<void> {
  return onServer(databaseUrl, (name) => `DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
}

/** Catalog rows already embedded under `encoderId` (no embedding work pending), a vector each. */
export async function insertEmbeddedItems(
  pool: Pool,
  ids: readonly string[],
  encoderId: string,
  dimension: number,
  vector: () => Buffer,
): Promise<void> {
  await pool.query(
    `INSERT INTO items (item_id, title, text_hash, source_ts, embed_pending)
     SELECT id, 'Item ' || id, 'h-' || id, now(), false FROM unnest($1::text[]) id`,
    [ids],
  );
  await pool.query(
    `INSERT INTO item_embeddings (item_id, encoder_id, text_hash, dimension, vector)
     SELECT id, $2, 'h-' || id, $3, v FROM unnest($1::text[], $4::bytea[]) AS t(id, v)`,
    [ids, encoderId, dimension, ids.map(() => vector())],
  );
}

/** Drops `databaseUrl`'s database if it exists, creates it and migrates it. */
export async function freshDatabase(databaseUrl: string): Promise<void> {
  await dropDatabase(databaseUrl);
  await ensureDatabase(databaseUrl);
  await migrate(databaseUrl, createLogger('warn'));
}

/** Rows written in chunks of `size` over one connection. */
async function insertChunked<T>(
  databaseUrl: string,
  rows: readonly T[],
  size: number,
  insert: (db: Client, chunk: readonly T[]) => Promise<unknown>,
): Promise<void> {
  const db = new Client({ connectionString: databaseUrl });
  await db.connect();
  try {
    for (let i = 0; i < rows.length; i += size) await insert(db, rows.slice(i, i + size));
  } finally {
    await db.end();
  }
}

/** Catalog rows as ingest stores them, already embedded (no embedding work pending). */
export function insertCatalog(databaseUrl: string, items: readonly SyntheticItem[]): Promise<void> {
  return insertChunked(databaseUrl, items, ITEM_CHUNK, (db, chunk) =>
    db.query(
      `INSERT INTO items (item_id, title, description, category, tags, price, created_at, source_ts, text_hash, embed_pending)
       SELECT u.id, u.title, u.description, u.category, '{}', u.price, u.created_at, now(), 'bench', false
       FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::float8[], $6::timestamptz[])
         AS u(id, title, description, category, price, created_at)`,
      [
        chunk.map((item) => item.itemId),
        chunk.map((item) => item.title),
        chunk.map((item) => item.description),
        chunk.map((item) => item.category),
        chunk.map((item) => item.price),
        chunk.map((item) => item.createdAt),
      ],
    ),
  );
}

/** Behaviour rows as ingest stores them. */
export function insertEvents(
  databaseUrl: string,
  events: readonly SyntheticEvent[],
): Promise<void> {
  return insertChunked(databaseUrl, events, EVENT_CHUNK, (db, chunk) =>
    db.query(
      `INSERT INTO events (event_id, type, user_id, item_id, ts)
       SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::timestamptz[])`,
      [
        chunk.map((event) => event.eventId),
        chunk.map((event) => event.type),
        chunk.map((event) => event.userId),
        chunk.map((event) => event.itemId),
        chunk.map((event) => event.timestamp),
      ],
    ),
  );
}

/** Deletes every key under `prefix`. */
export async function clearRedis(url: string, prefix: string): Promise<void> {
  const redis = createClient({ url });
  await redis.connect();
  for await (const keys of redis.scanIterator({ MATCH: `${prefix}*`, COUNT: 1000 })) {
    if (keys.length > 0) await redis.unlink(keys);
  }
  await redis.close();
}

/**
 * A fresh database with a synthetic catalog and its behaviour over the last 7 days (so
 * popularity is live), as ingest would have stored them.
 */
export async function seedCatalogAndWeek(
  databaseUrl: string,
  options: { items: number; users: number; impressions: number; seed: string },
) {
  await freshDatabase(databaseUrl);
  const catalog = generateCatalog({ items: options.items, seed: options.seed });
  const to = new Date();
  const { events } = generateBehaviour({
    catalog,
    users: options.users,
    impressions: options.impressions,
    seed: options.seed,
    from: new Date(to.getTime() - 7 * 86_400_000),
    to,
  });
  await insertCatalog(databaseUrl, catalog.items);
  await insertEvents(databaseUrl, events);
  return { catalog, events };
}

/** Bytes of the newest ANN index stored for `versionId` (retrieval_indexes); undefined: none. */
export async function storedIndexBytes(
  databaseUrl: string,
  versionId: string,
): Promise<number | undefined> {
  const db = new Client({ connectionString: databaseUrl });
  await db.connect();
  try {
    const { rows } = await db.query<{ size: string }>(
      'SELECT size::text FROM retrieval_indexes WHERE version_id = $1 ORDER BY index_id DESC LIMIT 1',
      [versionId],
    );
    const size = rows.at(0)?.size;
    return size === undefined ? undefined : Number(size);
  } finally {
    await db.end();
  }
}

/** One stored ANN index: how well it answers (sampled by the service) and where its graph came from. */
export interface StoredIndexQuality {
  readonly versionId: string;
  readonly points: number;
  readonly recall: number | null;
  readonly graphRecall: number | null;
  readonly adoptedFrom: string | null;
}

/** Every stored ANN index of the database, oldest first. */
export async function storedIndexes(databaseUrl: string): Promise<StoredIndexQuality[]> {
  const db = new Client({ connectionString: databaseUrl });
  await db.connect();
  try {
    const { rows } = await db.query<StoredIndexQuality>(
      `SELECT version_id::text AS "versionId", points, recall, graph_recall AS "graphRecall",
              adopted_from::text AS "adoptedFrom"
         FROM retrieval_indexes ORDER BY index_id`,
    );
    return rows;
  } finally {
    await db.end();
  }
}
