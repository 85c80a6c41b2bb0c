import { randomBytes } from 'node:crypto';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Pool } from 'pg';
import { PgBulkReader } from '../src/infra/pg-bulk-reader';
import { RetrievalIndexRepository } from '../src/modules/serving/retrieval-index.repository';
import type { IndexQuality } from '../src/modules/serving/retrieval-index.repository';
import { createTestContext, TestContext } from './support/test-context';

const SHAPE = { dimension: 4, m: 16, efConstruction: 200, withBias: false };
const FORMAT = 'norm-augmented-l2';

describe('stored ANN indexes in PostgreSQL (retention)', () => {
  let context: TestContext;
  let pool: Pool;
  let reader: PgBulkReader;
  let repository: RetrievalIndexRepository;
  let dir: string;

  beforeAll(async () => {
    context = await createTestContext();
    pool = new Pool({ connectionString: context.config.postgres.url, max: 2 });
    reader = new PgBulkReader(context.config.postgres);
    repository = new RetrievalIndexRepository(pool, reader);
    dir = await mkdtemp(path.join(tmpdir(), 'stored-index-'));
    await pool.query(
      `INSERT INTO model_versions (id, status, encoder_id, triggered_by) OVERRIDING SYSTEM VALUE
       VALUES (10, 'active', 'enc', 'test'), (11, 'candidate', 'enc', 'test'),
              (12, 'candidate', 'enc', 'test'), (13, 'candidate', 'enc', 'test'),
              (14, 'candidate', 'enc', 'test'), (15, 'candidate', 'enc', 'test')`,
    );
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
    await reader.close();
    await pool.end();
    await context.cleanup();
  });

  const built = (recall: number): IndexQuality => ({
    recall,
    graphRecall: recall,
    graphDrift: 0,
    adoptedFrom: undefined,
  });
  const store = async (
    versionId: string,
    quality = built(0.97),
    shape = SHAPE,
    keep = 2,
    bytes: Buffer | string = `the index of version ${versionId}`,
  ) => {
    const file = path.join(dir, `index-${versionId}`);
    await writeFile(file, bytes);
    const { signal } = new AbortController();
    await repository.save(versionId, shape, FORMAT, quality, 2, 'a\nb', file, keep, signal);
  };
  const storedVersions = async () =>
    (
      await pool.query<{ version_id: string }>(
        'SELECT DISTINCT version_id::text FROM retrieval_indexes ORDER BY 1',
      )
    ).rows.map((row) => row.version_id);

  it("tells served versions, and keeps the versions stored last and a served version's whatever was stored since", async () => {
    await pool.query(
      `INSERT INTO experiments (name, kind, status, salt, arms, min_impressions, min_detectable_lift,
                                confidence, power, created_by, started_at)
       VALUES ('arm test', 'ab', 'running', 's', $1, 100, 0.05, 0.95, 0.8, 'test', now())`,
      [
        JSON.stringify([
          { name: 'control', modelVersion: null, profile: null, share: 50 },
          { name: 'treatment', modelVersion: '11', profile: null, share: 50 },
        ]),
      ],
    );
    expect(await repository.served('10')).toBe(true);
    expect(await repository.served('11')).toBe(true);
    expect(await repository.served('12')).toBe(false);
    for (const versionId of ['10', '11', '12', '13', '14']) await store(versionId);
    // Two most recently stored (13, 14), the active version (10), the running arm's (11).
    expect(await storedVersions()).toEqual(['10', '11', '13', '14']);
    await pool.query(`UPDATE experiments SET status = 'stopped', stopped_at = now()`);
    expect(await repository.served('11')).toBe(false);
    await store('15');
    expect(await storedVersions()).toEqual(['10', '14', '15']);
    const state = await repository.state('10', 60_000);
    expect(state).toMatchObject({
      stored: { ...SHAPE, pointFormat: FORMAT, points: 2 },
      builder: undefined,
    });
  });

  it('offers the graph of a version built alike for adoption: a served version first, else the newest; never one of unknown recall', async () => {
    await pool.query('DELETE FROM retrieval_indexes');
    await store('10', built(0.95), SHAPE, 10);
    await store('12', built(0.96), SHAPE, 10);
    await store('13', built(0.9), { ...SHAPE, m: 32 }, 10);
    await store(
      '14',
      { recall: undefined, graphRecall: undefined, graphDrift: undefined, adoptedFrom: undefined },
      SHAPE,
      10,
    );
    // Version 10 is active: its graph, though 12's is newer.
    expect(await repository.adoptable('15', SHAPE)).toMatchObject({
      versionId: '10',
      recall: 0.95,
    });
    // Not its own; 13's was built with another M, 14's recall is unknown.
    expect(await repository.adoptable('10', SHAPE)).toMatchObject({ versionId: '12' });
    expect(await repository.adoptable('15', { ...SHAPE, m: 32 })).toMatchObject({
      versionId: '13',
    });
    expect(await repository.adoptable('15', { ...SHAPE, dimension: 8 })).toBeUndefined();

    const adopted = { recall: 0.94, graphRecall: 0.95, graphDrift: 4.5, adoptedFrom: '10' };
    await store('15', adopted, SHAPE, 10);
    expect(await repository.newest('15')).toMatchObject(adopted);
  });

  it('reads a stored file back whole, over more than one statement, and refuses one that lost or changed a slice', async () => {
    await pool.query('DELETE FROM retrieval_indexes');
    // 17.5 slices of 1 MiB: two read statements of 16 slices.
    const bytes = randomBytes(17.5 * (1 << 20));
    await store('12', built(0.97), SHAPE, 10, bytes);
    const stored = await repository.newest('12');
    if (stored === undefined) throw new Error('nothing stored');
    const copy = path.join(dir, 'read-12');
    expect(await repository.readTo(stored, copy)).toBe('a\nb');
    expect((await readFile(copy)).equals(bytes)).toBe(true);

    // Slices are never updated (a trigger): replaced, one byte changed.
    await pool.query(
      `WITH gone AS (DELETE FROM retrieval_index_chunks WHERE index_id = $1 AND seq = 3
                     RETURNING index_id, seq, bytes)
       INSERT INTO retrieval_index_chunks (index_id, seq, bytes)
       SELECT index_id, seq, set_byte(bytes, 0, 255 - get_byte(bytes, 0)) FROM gone`,
      [stored.indexId],
    );
    await expect(repository.readTo(stored, copy)).rejects.toMatchObject({
      code: 'CONFLICT',
      message: `stored index ${stored.indexId} fails its sha256 check`,
    });
    await pool.query('DELETE FROM retrieval_index_chunks WHERE index_id = $1 AND seq = 17', [
      stored.indexId,
    ]);
    await expect(repository.readTo(stored, copy)).rejects.toMatchObject({
      code: 'CONFLICT',
      message: `stored index ${stored.indexId} holds ${17 * (1 << 20)} of ${bytes.length} bytes`,
    });
  });
});
