import { Inject, Injectable } from '@nestjs/common';
import { Pool } from 'pg';
import { inTransaction } from '../../infra/postgres';
import { PG_DIRECT_POOL, PG_POOL } from '../../infra/tokens';
import { itemText, ItemTextSource } from './item-text';
import { bytesToVector, vectorToBytes } from './vector-codec';

/** An item whose text needs (re-)encoding, with the hash ingest computed for that text. */
export interface ItemToEmbed extends ItemTextSource {
  readonly itemId: string;
  readonly textHash: string;
}

export interface EmbeddedItem {
  readonly itemId: string;
  readonly textHash: string;
  readonly vector: Float32Array;
}

export interface StoreCounts {
  /** Items whose vector was written (their text still had the encoded hash). */
  readonly storedIds: string[];
  /** Items whose `embed_pending` flag was cleared. */
  readonly cleared: number;
}

/** Notification channel raised by the items triggers of migration item-embeddings. */
export const EMBED_PENDING_CHANNEL = 'items_embed_pending';
/** Advisory lock key: one embedding pass at a time per database (worker replicas, CLI). */
const WORK_LOCK_KEY = 0x656d62; // 'emb'

interface ItemRecord {
  item_id: string;
  title: string;
  category: string | null;
  tags: string[];
  description: string | null;
  text_hash: string;
}

const ITEM_COLUMNS = 'i.item_id, i.title, i.category, i.tags, i.description, i.text_hash';

function toItem(record: ItemRecord): ItemToEmbed {
  return {
    itemId: record.item_id,
    title: record.title,
    category: record.category,
    tags: record.tags,
    description: record.description,
    textHash: record.text_hash,
  };
}

/** The encoder input text of each live item among `itemIds`; training reads them too. */
export async function readItemTexts(
  pool: Pool,
  itemIds: readonly string[],
): Promise<Map<string, string>> {
  if (itemIds.length === 0) return new Map();
  const result = await pool.query<ItemRecord>(
    `SELECT ${ITEM_COLUMNS} FROM items i WHERE i.item_id = ANY($1::text[]) AND NOT i.deleted`,
    [itemIds],
  );
  return new Map(result.rows.map((row) => [row.item_id, itemText(toItem(row))]));
}

@Injectable()
export class EmbeddingRepository {
  constructor(
    @Inject(PG_POOL) private readonly pool: Pool,
    /** The work lock is a session lock: a transaction-mode pooler would drop it. */
    @Inject(PG_DIRECT_POOL) private readonly directPool: Pool,
  ) {}

  /**
   * Runs `work` holding the database-wide embedding lock; returns `{ ran: false }` when another
   * pass holds it. Passes are short (one batch), so waiters retry rather than block.
   */
  async withWorkLock<T>(work: () => Promise<T>): Promise<{ ran: true; value: T } | { ran: false }> {
    const client = await this.directPool.connect();
    let broken = false;
    try {
      const locked = await client.query<{ ok: boolean }>('SELECT pg_try_advisory_lock($1) AS ok', [
        WORK_LOCK_KEY,
      ]);
      if (!locked.rows[0].ok) return { ran: false };
      try {
        return { ran: true, value: await work() };
      } finally {
        await client.query('SELECT pg_advisory_unlock($1)', [WORK_LOCK_KEY]).catch(() => {
          // A client that cannot unlock must not go back to the pool still holding the lock.
          broken = true;
        });
      }
    } finally {
      client.release(broken);
    }
  }

  /** Items marked by ingest, not deleted. */
  async pendingItems(limit: number): Promise<ItemToEmbed[]> {
    const result = await this.pool.query<ItemRecord>(
      `SELECT ${ITEM_COLUMNS} FROM items i
       WHERE i.embed_pending AND NOT i.deleted ORDER BY i.item_id LIMIT $1`,
      [limit],
    );
    return result.rows.map(toItem);
  }

  async countPending(): Promise<number> {
    const result = await this.pool.query<{ n: string }>(
      'SELECT count(*) AS n FROM items WHERE embed_pending AND NOT deleted',
    );
    return Number(result.rows[0]?.n ?? 0);
  }

  /**
   * Live items after `afterItemId` (keyset order) without a vector of this encoder for their
   * current text, whether marked pending or not (e.g. after switching models).
   */
  async staleItems(encoderId: string, afterItemId: string, limit: number): Promise<ItemToEmbed[]> {
    const result = await this.pool.query<ItemRecord>(
      `SELECT ${ITEM_COLUMNS} FROM items i
       LEFT JOIN item_embeddings e ON e.item_id = i.item_id AND e.encoder_id = $1
       WHERE NOT i.deleted AND i.item_id > $2 AND e.text_hash IS DISTINCT FROM i.text_hash
       ORDER BY i.item_id LIMIT $3`,
      [encoderId, afterItemId, limit],
    );
    return result.rows.map(toItem);
  }

  async countStale(encoderId: string): Promise<number> {
    const result = await this.pool.query<{ n: string }>(
      `SELECT count(*) AS n FROM items i
       LEFT JOIN item_embeddings e ON e.item_id = i.item_id AND e.encoder_id = $1
       WHERE NOT i.deleted AND e.text_hash IS DISTINCT FROM i.text_hash`,
      [encoderId],
    );
    return Number(result.rows[0]?.n ?? 0);
  }

  /** Stored vectors of this encoder for any of these text hashes (any item). */
  async vectorsByHash(
    encoderId: string,
    textHashes: readonly string[],
  ): Promise<Map<string, Float32Array>> {
    if (textHashes.length === 0) return new Map();
    const result = await this.pool.query<{ text_hash: string; vector: Buffer }>(
      `SELECT DISTINCT ON (text_hash) text_hash, vector FROM item_embeddings
       WHERE encoder_id = $1 AND text_hash = ANY($2::text[])`,
      [encoderId, textHashes],
    );
    return new Map(result.rows.map((row) => [row.text_hash, bytesToVector(row.vector)]));
  }

  /**
   * Stores vectors and clears `embed_pending`, both only where the item's text hash is still the
   * one that was encoded: an item edited meanwhile stays pending and is encoded again.
   */
  async store(encoderId: string, items: readonly EmbeddedItem[]): Promise<StoreCounts> {
    if (items.length === 0) return { storedIds: [], cleared: 0 };
    const ids = items.map((item) => item.itemId);
    const hashes = items.map((item) => item.textHash);
    return inTransaction(this.pool, async (client) => {
      const stored = await client.query<{ item_id: string }>(
        `INSERT INTO item_embeddings AS e (item_id, encoder_id, text_hash, dimension, vector)
         SELECT u.item_id, $1, u.text_hash, u.dimension, u.vector
         FROM unnest($2::text[], $3::text[], $4::int[], $5::bytea[])
              AS u(item_id, text_hash, dimension, vector)
         JOIN items i ON i.item_id = u.item_id AND i.text_hash = u.text_hash
         ON CONFLICT (item_id, encoder_id) DO UPDATE SET
           text_hash = EXCLUDED.text_hash, dimension = EXCLUDED.dimension,
           vector = EXCLUDED.vector, updated_at = now()
         RETURNING e.item_id`,
        [
          encoderId,
          ids,
          hashes,
          items.map((item) => item.vector.length),
          items.map((item) => vectorToBytes(item.vector)),
        ],
      );
      const cleared = await client.query(
        `UPDATE items i SET embed_pending = false
         FROM unnest($1::text[], $2::text[]) AS u(item_id, text_hash)
         WHERE i.item_id = u.item_id AND i.text_hash = u.text_hash AND i.embed_pending`,
        [ids, hashes],
      );
      return { storedIds: stored.rows.map((row) => row.item_id), cleared: cleared.rowCount ?? 0 };
    });
  }

  /** The encoder input text of each live item among `itemIds` (deleted and unknown ones absent). */
  itemTexts(itemIds: readonly string[]): Promise<Map<string, string>> {
    return readItemTexts(this.pool, itemIds);
  }
}
