import { ChildProcess, spawn } from 'node:child_process';
import { NestFastifyApplication } from '@nestjs/platform-fastify';
import { Client } from 'pg';
import type { TextVectors } from '../../src/modules/serving/served-model';
import { graphql, GraphqlResponse } from './graphql';
import { freePort } from './processes';

export interface RankingItemRow {
  readonly itemId: string;
  readonly title: string;
  readonly category: string;
  readonly price?: number;
  readonly createdAt?: string;
}

/** Stores catalog rows directly (already embedded, so no embedding worker wakes up). */
export async function insertItems(url: string, items: readonly RankingItemRow[]): Promise<void> {
  const client = new Client({ connectionString: url });
  await client.connect();
  try {
    await client.query(
      `INSERT INTO items (item_id, title, category, price, created_at, source_ts, text_hash, embed_pending)
       SELECT u.id, u.title, u.category, u.price, u.created_at, now(), 'test', false
       FROM unnest($1::text[], $2::text[], $3::text[], $4::float8[], $5::timestamptz[])
         AS u(id, title, category, price, created_at)`,
      [
        items.map((item) => item.itemId),
        items.map((item) => item.title),
        items.map((item) => item.category),
        items.map((item) => item.price ?? null),
        items.map((item) => item.createdAt ?? null),
      ],
    );
  } finally {
    await client.end();
  }
}

/** Stores each catalog row's vector as the item's text vector of `encoderId` (item_embeddings). */
export async function insertItemVectors(
  url: string,
  encoderId: string,
  catalog: TextVectors,
): Promise<void> {
  const client = new Client({ connectionString: url });
  await client.connect();
  const { ids, dimension, matrix } = catalog;
  try {
    await client.query(
      `INSERT INTO item_embeddings (item_id, encoder_id, text_hash, dimension, vector)
       SELECT u.id, $2, 'test', $3, u.vector FROM unnest($1::text[], $4::bytea[]) AS u(id, vector)`,
      [
        ids,
        encoderId,
        dimension,
        ids.map((_, row) =>
          Buffer.from(matrix.buffer, matrix.byteOffset + row * dimension * 4, dimension * 4),
        ),
      ],
    );
  } finally {
    await client.end();
  }
}

export interface EventRow {
  readonly eventId: string;
  readonly type: 'impression' | 'click' | 'add_to_cart' | 'purchase';
  readonly userId: string;
  readonly itemId: string;
  readonly ts: Date;
}

/** Stores events directly in PostgreSQL (no online state): for the Redis-down fallback. */
export async function insertEvents(url: string, events: readonly EventRow[]): Promise<void> {
  const client = new Client({ connectionString: url });
  await client.connect();
  try {
    await client.query(
      `INSERT INTO events (event_id, type, user_id, item_id, ts)
       SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::timestamptz[])`,
      [
        events.map((event) => event.eventId),
        events.map((event) => event.type),
        events.map((event) => event.userId),
        events.map((event) => event.itemId),
        events.map((event) => event.ts),
      ],
    );
  } finally {
    await client.end();
  }
}

export async function rankCall(
  app: NestFastifyApplication,
  variables: Record<string, unknown>,
): Promise<GraphqlResponse<{ rank: RankResultView }>> {
  return graphql<{ rank: RankResultView }>(app, RANK_QUERY, variables);
}

export async function recommendCall(
  app: NestFastifyApplication,
  variables: Record<string, unknown>,
): Promise<GraphqlResponse<{ recommend: RankResultView }>> {
  return graphql<{ recommend: RankResultView }>(app, RECOMMEND_QUERY, variables);
}

export interface RankedItemView {
  itemId: string;
  rank: number;
  score: number;
  parts: { name: string; value: number; weight: number }[];
}

export interface RankResultView {
  items: RankedItemView[];
  modelVersion: string | null;
  requestId: string;
  degraded: string[];
}

export const RANK_QUERY = `query Rank($userId: ID!, $candidates: [CandidateInput!]!, $profile: String) {
  rank(userId: $userId, candidates: $candidates, profile: $profile) {
    items { itemId rank score parts { name value weight } }
    modelVersion requestId degraded
  }
}`;

export const RECOMMEND_QUERY = `query Recommend($userId: ID!, $first: Int, $exclude: [ID!], $category: String) {
  recommend(userId: $userId, first: $first, exclude: $exclude, category: $category) {
    items { itemId rank score parts { name value weight } }
    modelVersion requestId degraded
  }
}`;

/** A private, throwaway redis-server (never the shared one) that a test may kill. */
export class PrivateRedis {
  private child: ChildProcess | undefined;
  port = 0;

  get url(): string {
    return `redis://127.0.0.1:${this.port}`;
  }

  async start(): Promise<void> {
    this.port = await freePort();
    const child = spawn(
      'redis-server',
      ['--port', String(this.port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'],
      { stdio: ['ignore', 'pipe', 'ignore'] },
    );
    this.child = child;
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => {
        reject(new Error('redis-server did not start'));
      }, 10_000);
      child.stdout.on('data', (chunk: Buffer) => {
        if (chunk.toString().includes('Ready to accept connections')) {
          clearTimeout(timer);
          resolve();
        }
      });
      child.once('exit', (code) => {
        clearTimeout(timer);
        reject(new Error(`redis-server exited with ${String(code)}`));
      });
    });
  }

  async stop(): Promise<void> {
    const child = this.child;
    if (child?.exitCode !== null || child.signalCode !== null) return;
    const exited = new Promise<void>((resolve) => {
      child.once('exit', () => {
        resolve();
      });
    });
    child.kill('SIGKILL');
    await exited;
  }
}
