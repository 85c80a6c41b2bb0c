import { createHash } from 'node:crypto';
import { Pool } from 'pg';
import { createLogger } from '../src/common/logger';
import { ShutdownDeadline } from '../src/common/shutdown-deadline';
import { createDirectPgPool, createPgPool } from '../src/infra/postgres';
import { createPgListener, PgListener } from '../src/infra/pg-listener';
import { EmbeddingIndexer } from '../src/modules/embedding/embedding-indexer.service';
import { EmbeddingRepository } from '../src/modules/embedding/embedding.repository';
import { EmbeddingWorker } from '../src/modules/embedding/embedding.worker';
import { TextEncoderProvider } from '../src/modules/embedding/encoder.provider';
import { itemText } from '../src/modules/embedding/item-text';
import type { TextEncoder } from '../src/modules/embedding/text-encoder';
import type { HealthService } from '../src/modules/health/health.service';
import { latestItemWrites, toItemRow } from '../src/modules/ingest/ingest.batch';
import { IngestRepository } from '../src/modules/ingest/ingest.repository';
import { catalogItemSchema } from '../src/modules/ingest/ingest.schemas';
import { Metrics } from '../src/modules/metrics/metrics.registry';
import { catalogItem, CatalogItemInput } from './support/factories';
import { sleep } from './support/ingest-helpers';
import { createTestContext, TestContext } from './support/test-context';
import { eventually } from './support/poll';
import { POSTGRES_MODES } from './support/stack';

/** Deterministic 8-dim vectors from the text; records every text it is asked to encode. */
class CountingEncoder implements TextEncoder {
  readonly dimension = 8;
  readonly texts: string[] = [];
  /** Runs inside `encode`, after recording, before returning (to race an ingest write). */
  during: ((texts: readonly string[]) => Promise<void>) | undefined;
  /** Time each text takes, as a model's would. */
  msPerText = 0;
  /** The next answer lacks its first vector, as a broken encoder's might. */
  dropNext = false;

  constructor(readonly modelId: string) {}

  async encode(texts: readonly string[]): Promise<Float32Array[]> {
    this.texts.push(...texts);
    const hook = this.during;
    this.during = undefined;
    await hook?.(texts);
    if (this.msPerText > 0) await sleep(this.msPerText * texts.length);
    const vectors = texts.map((text) => {
      const digest = createHash('sha256').update(text).digest();
      const vector = Float32Array.from({ length: this.dimension }, (_, i) => digest[i] - 128);
      const norm = Math.hypot(...vector);
      return vector.map((value) => value / norm);
    });
    const dropped = this.dropNext;
    this.dropNext = false;
    return dropped ? vectors.slice(1) : vectors;
  }

  count(text: string): number {
    return this.texts.filter((seen) => seen === text).length;
  }
}

const textOf = (item: CatalogItemInput) =>
  itemText({
    title: item.title ?? '',
    category: item.category,
    tags: item.tags,
    description: item.description,
  });

describe.each(POSTGRES_MODES)('embedding worker on real PostgreSQL ($mode)', ({ env }) => {
  let context: TestContext;
  let pool: Pool;
  /** The work lock and LISTEN: a session of their own, never through the pooler. */
  let directPool: Pool;
  let ingest: IngestRepository;
  let repository: EmbeddingRepository;
  let listener: PgListener;
  const logger = createLogger('silent');
  const metrics = new Metrics({ role: 'test' });

  /** Publishes items through ingest's own row mapping and upsert (Kafka not involved). */
  async function publish(items: readonly CatalogItemInput[]): Promise<void> {
    const rows = items.map((item) => toItemRow(catalogItemSchema.parse(item), new Date()));
    await ingest.upsertItems(latestItemWrites(rows));
  }

  async function pendingCount(): Promise<number> {
    return repository.countPending();
  }

  function indexerFor(encoder: CountingEncoder): EmbeddingIndexer {
    const provider = new TextEncoderProvider(encoder.modelId, () => Promise.resolve(encoder));
    return new EmbeddingIndexer(repository, provider, logger, metrics);
  }

  beforeAll(async () => {
    context = await createTestContext({
      // Only notifications (or explicit wakes) trigger passes during the test.
      EMBEDDING_POLL_INTERVAL_MS: '3600000',
      EMBEDDING_WORKER_BATCH: '4',
      ...env,
    });
    pool = createPgPool(context.config.postgres, logger);
    directPool = createDirectPgPool(context.config.postgres, logger);
    ingest = new IngestRepository(pool);
    repository = new EmbeddingRepository(pool, directPool);
    listener = createPgListener(context.config.postgres, logger);
  });

  afterAll(async () => {
    await listener.close();
    await pool.end();
    await directPool.end();
    await context.cleanup();
  });

  it('encodes each changed item exactly once and an unchanged re-publish not at all', async () => {
    const encoder = new CountingEncoder('counting:1');
    const health = { register: jest.fn() } as unknown as HealthService;
    const worker = new EmbeddingWorker(
      indexerFor(encoder),
      repository,
      listener,
      context.config,
      logger,
      health,
      new Metrics({}),
      new ShutdownDeadline(context.config.shutdownTimeoutMs),
    );
    worker.start();
    try {
      const items = [
        catalogItem({ itemId: 'w-1', title: 'Trail shoe' }),
        catalogItem({ itemId: 'w-2', title: 'Chef knife', category: 'kitchen', tags: ['steel'] }),
        catalogItem({ itemId: 'w-3', title: 'Espresso machine', category: 'kitchen' }),
        // Same text as w-1: one model run serves both.
        catalogItem({ itemId: 'w-4', title: 'Trail shoe' }),
        catalogItem({ itemId: 'w-5', title: 'Yoga mat', category: 'fitness' }),
        catalogItem({ itemId: 'w-6', title: 'Camping tent', category: 'outdoor' }),
      ];
      // No explicit wake: the items trigger's NOTIFY must start the pass (batches of 4).
      await publish(items);
      await eventually(async () => (await pendingCount()) === 0, 15_000, {
        what: 'pending items embedded',
      });
      await worker.idle();
      const distinct = [...new Set(items.map(textOf))];
      expect(encoder.texts.sort()).toEqual(distinct.sort());

      const { rows: stored } = await pool.query<{ item_id: string; vector: Buffer }>(
        'SELECT item_id, vector FROM item_embeddings WHERE encoder_id = $1 ORDER BY item_id',
        [encoder.modelId],
      );
      expect(stored.map((row) => row.item_id)).toEqual(items.map((item) => item.itemId).sort());
      const vectorOf = (itemId: string) => stored.find((row) => row.item_id === itemId)?.vector;
      expect(vectorOf('w-4')).toEqual(vectorOf('w-1'));

      // Unchanged texts, newer timestamps: ingest updates the rows but marks nothing.
      const before = encoder.texts.length;
      await publish(items.map((item) => ({ ...item, updatedAt: '2025-02-01T00:00:00.000Z' })));
      worker.wake();
      await sleep(300);
      await worker.idle();
      expect(encoder.texts).toHaveLength(before);
      expect(await pendingCount()).toBe(0);

      // One changed description: that text, once.
      const changed = {
        ...items[2],
        description: 'Pump espresso with steam wand.',
        updatedAt: '2025-03-01T00:00:00.000Z',
      };
      await publish([changed]);
      await eventually(async () => (await pendingCount()) === 0, 15_000, {
        what: 'changed item embedded',
      });
      await worker.idle();
      expect(encoder.texts).toHaveLength(before + 1);
      expect(encoder.count(textOf(changed))).toBe(1);
    } finally {
      await worker.stop();
    }
  });

  it('leaves an item edited during its encoding pending and encodes the new text next', async () => {
    const encoder = new CountingEncoder('counting:race');
    const indexer = indexerFor(encoder);
    const original = catalogItem({ itemId: 'r-1', title: 'Desk lamp' });
    const edited = { ...original, title: 'LED desk lamp', updatedAt: '2025-06-01T00:00:00.000Z' };
    await publish([original]);
    encoder.during = () => publish([edited]);

    const first = await indexer.embedPending(10);
    expect(first).toMatchObject({ items: 1, encoded: 1, stored: 0, cleared: 0 });
    const second = await indexer.embedPending(10);
    expect(second).toMatchObject({ items: 1, encoded: 1, stored: 1, cleared: 1 });
    expect(encoder.texts).toEqual([textOf(original), textOf(edited)]);
    const rows = await pool.query<{ text_hash: string; current: string }>(
      `SELECT e.text_hash, i.text_hash AS current FROM item_embeddings e JOIN items i USING (item_id)
       WHERE e.item_id = 'r-1' AND e.encoder_id = $1`,
      [encoder.modelId],
    );
    expect(rows.rows).toHaveLength(1);
    expect(rows.rows[0].text_hash).toBe(rows.rows[0].current);
  });

  it('refuses an encoder answer without one vector per text and stores none of it', async () => {
    const encoder = new CountingEncoder('counting:short');
    const indexer = indexerFor(encoder);
    const items = ['Wool scarf', 'Silk scarf', 'Cotton scarf'].map((title, i) =>
      catalogItem({ itemId: `short-${i}`, title }),
    );
    await publish(items);
    encoder.dropNext = true;
    // Paired by position, the vectors of such an answer would be stored under other items' texts.
    await expect(indexer.embedPending(10)).rejects.toThrow(
      'encoder counting:short returned 2 vectors for 3 texts',
    );
    const stored = await pool.query<{ n: number }>(
      'SELECT count(*)::int AS n FROM item_embeddings WHERE encoder_id = $1',
      [encoder.modelId],
    );
    expect(stored.rows[0].n).toBe(0);
    expect(await indexer.embedPending(10)).toMatchObject({ items: 3, encoded: 3, stored: 3 });
  });

  it('backfills every item lacking a vector of a new encoder, reusing nothing across encoders', async () => {
    const encoder = new CountingEncoder('counting:backfill');
    const total = await pool.query<{ n: string }>(
      'SELECT count(*) AS n FROM items WHERE NOT deleted',
    );
    const progress: number[] = [];
    const result = await indexerFor(encoder).backfill('stale', 3, (step) => {
      progress.push(step.items);
    });
    expect(result.items).toBe(Number(total.rows[0].n));
    expect(result.total).toBe(result.items);
    expect(progress.at(-1)).toBe(result.items);
    expect(new Set(encoder.texts).size).toBe(encoder.texts.length);
    // A second run finds nothing stale.
    const again = await indexerFor(encoder).backfill('stale', 3);
    expect(again.items).toBe(0);
  });

  it('stops its pass between encoder calls: a stop waits for one call, the rest stays pending', async () => {
    const encoder = new CountingEncoder('counting:stop');
    encoder.msPerText = 10;
    const items = Array.from({ length: 100 }, (_, i) =>
      catalogItem({ itemId: `s-${i}`, title: `Stop item ${i}` }),
    );
    const worker = new EmbeddingWorker(
      indexerFor(encoder),
      repository,
      listener,
      { ...context.config, embedding: { ...context.config.embedding, workerBatch: 100 } },
      logger,
      { register: jest.fn() } as unknown as HealthService,
      new Metrics({}),
      new ShutdownDeadline(context.config.shutdownTimeoutMs),
    );
    const pendingOfTest = async () =>
      (
        await pool.query<{ n: number }>(
          "SELECT count(*)::int AS n FROM items WHERE item_id LIKE 's-%' AND embed_pending",
        )
      ).rows[0].n;
    await publish(items);
    worker.start();
    try {
      await eventually(async () => Promise.resolve(encoder.texts.length > 0), 5000, {
        what: 'the first encoder call',
      });
      const stopping = Date.now();
      await worker.stop();
      const stopMs = Date.now() - stopping;
      // One call of 32 texts (320 ms at most); before, the pass's one call of 100 texts (1 s).
      expect(stopMs).toBeLessThan(700);
      const encoded = encoder.texts.length;
      expect(encoded).toBe(32);
      const stored = await pool.query<{ n: number }>(
        'SELECT count(*)::int AS n FROM item_embeddings WHERE encoder_id = $1',
        [encoder.modelId],
      );
      expect(stored.rows[0].n).toBe(encoded);
      expect(await pendingOfTest()).toBe(items.length - encoded);
      // Nothing lost: started again, the worker embeds the rest.
      encoder.msPerText = 0;
      worker.start();
      await eventually(async () => (await pendingOfTest()) === 0, 15_000, {
        what: 'the rest embedded',
      });
      expect(new Set(encoder.texts).size).toBe(items.length);
    } finally {
      await worker.stop();
    }
  });

  it('lets one pass at a time hold the embedding lock', async () => {
    let inner: unknown;
    const outer = await repository.withWorkLock(async () => {
      inner = await repository.withWorkLock(() => Promise.resolve('second'));
      return 'first';
    });
    expect(outer).toEqual({ ran: true, value: 'first' });
    expect(inner).toEqual({ ran: false });
  });
});
