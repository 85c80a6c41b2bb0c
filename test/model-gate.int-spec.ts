import { NestFastifyApplication } from '@nestjs/platform-fastify';
import { Pool } from 'pg';
import { itemText, itemTextHash } from '../src/modules/embedding/item-text';
import { vectorToBytes } from '../src/modules/embedding/vector-codec';
import { RegistryService } from '../src/modules/registry/registry.service';
import { TrainingRunService } from '../src/modules/registry/training-run.service';
import { HashingTextEncoder } from '../src/modules/training/testing/hashing-encoder';
import { TrainingService } from '../src/modules/training/training.service';
import { generateBehaviour, generateCatalog } from '../src/synthetic';
import { startAppWith } from './support/model-fakes';
import { createTestContext, TestContext } from './support/test-context';

/**
 * The promotion gate with the real trainer: a model trained on shuffled click labels is scored
 * against the active one on the same (clean) validation window and is not promoted.
 */
describe('promotion gate with the real trainer', () => {
  let context: TestContext;
  let pool: Pool;
  let app: NestFastifyApplication;

  beforeAll(async () => {
    context = await createTestContext({
      ROLE: 'train',
      LOG_LEVEL: 'fatal',
      TRAIN_CRON: 'off',
      TRAIN_BACKEND: 'cpu',
      TRAIN_EPOCHS: '2',
      TRAIN_PROMOTION_TOLERANCE: '0.01',
    });
    pool = new Pool({ connectionString: context.config.postgres.url });
    app = await startAppWith(context.config, {});
    const encoderId = app.get(TrainingService).encoderId;
    const catalog = generateCatalog({ items: 150, seed: 'gate-int' });
    const vectors = await new HashingTextEncoder(384).encode(
      catalog.items.map((item) => itemText(item)),
    );
    for (const [i, item] of catalog.items.entries()) {
      const hash = itemTextHash(itemText(item));
      await pool.query(
        `INSERT INTO items (item_id, title, description, category, tags, source_ts, text_hash)
         VALUES ($1, $2, $3, $4, $5, now(), $6)`,
        [item.itemId, item.title, item.description, item.category, item.tags, hash],
      );
      await pool.query(
        `INSERT INTO item_embeddings (item_id, encoder_id, text_hash, dimension, vector)
         VALUES ($1, $2, $3, 384, $4)`,
        [item.itemId, encoderId, hash, vectorToBytes(vectors[i] ?? new Float32Array(384))],
      );
    }
    const { events } = generateBehaviour({
      catalog,
      users: 80,
      impressions: 12_000,
      seed: 'gate-int',
    });
    const rows = events.filter((e) => e.type === 'impression' || e.type === 'click');
    for (let start = 0; start < rows.length; start += 2000) {
      const chunk = rows.slice(start, start + 2000);
      await pool.query(
        `INSERT INTO events (event_id, type, user_id, item_id, ts, request_id, position)
         SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::timestamptz[],
                              $6::text[], $7::int[])`,
        [
          chunk.map((e) => e.eventId),
          chunk.map((e) => e.type),
          chunk.map((e) => e.userId),
          chunk.map((e) => e.itemId),
          chunk.map((e) => e.timestamp),
          chunk.map((e) => e.requestId),
          chunk.map((e) => e.position),
        ],
      );
    }
  }, 60_000);

  afterAll(async () => {
    await app.close();
    await pool.end();
    await context.cleanup();
  });

  it('keeps a model trained on shuffled labels as a candidate', async () => {
    const training = app.get(TrainingRunService);
    const registry = app.get(RegistryService);
    const clean = await training.run('FULL', 'test');
    expect(clean).toMatchObject({ status: 'succeeded', outcome: 'promoted' });
    const active = await registry.getVersion(clean.versionId ?? '');
    expect(active.metrics.auc).toBeGreaterThan(0.55);

    // Every click before the validation window moves to a random item of the same impression.
    await pool.query(
      `UPDATE events c SET item_id = (
         SELECT i.item_id FROM events i
          WHERE i.request_id = c.request_id AND i.type = 'impression' AND c.seq = c.seq
          ORDER BY random() LIMIT 1)
        WHERE c.type = 'click' AND c.ts < $1 AND c.request_id IS NOT NULL`,
      [active.validFrom],
    );
    const shuffled = await training.run('FULL', 'test');
    expect(shuffled).toMatchObject({ status: 'succeeded', outcome: 'candidate' });
    const candidate = await registry.getVersion(shuffled.versionId ?? '');
    // Judged on the same window as the active version.
    expect(candidate.validFrom).toEqual(active.validFrom);
    expect(candidate.status).toBe('candidate');
    expect(candidate.statusReason).toMatch(/^worse by /);
    expect((await registry.activeVersion())?.id).toBe(active.id);
  }, 180_000);
});
