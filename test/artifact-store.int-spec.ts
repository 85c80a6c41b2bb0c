import { randomBytes } from 'node:crypto';
import { Pool } from 'pg';
import { PgArtifactStore, sha256 } from '../src/modules/registry/artifact.repository';
import { RegistryRepository } from '../src/modules/registry/registry.repository';
import { createTestContext, TestContext } from './support/test-context';

jest.setTimeout(30_000);

/** Artifacts are read back in 1 MiB slices: sizes around and across the slice boundary. */
describe('PgArtifactStore', () => {
  let context: TestContext;
  let pool: Pool;
  let store: PgArtifactStore;
  let versions: RegistryRepository;

  beforeAll(async () => {
    context = await createTestContext();
    pool = new Pool({ connectionString: context.config.postgres.url, max: 2 });
    store = new PgArtifactStore(pool);
    versions = new RegistryRepository(pool, pool);
  });

  afterAll(async () => {
    await pool.end();
    await context.cleanup();
  });

  const newVersion = () =>
    versions.insertTrainingVersion({ parentId: null, encoderId: 'test:fp32', triggeredBy: 'test' });

  it.each([0, 1, (1 << 20) - 1, 1 << 20, (1 << 20) + 1, 3 * (1 << 20) + 12_345])(
    'gives back the %i bytes it stored, unchanged',
    async (size) => {
      const id = await newVersion();
      const bytes = randomBytes(size);
      expect(await store.put(id, bytes)).toEqual({ sha256: sha256(bytes), size });
      const read = await store.get(id);
      expect(read.length).toBe(size);
      expect(read.equals(bytes)).toBe(true);
    },
  );

  it('refuses bytes that do not match their digest, whichever slice differs', async () => {
    const id = await newVersion();
    const bytes = randomBytes(2 * (1 << 20) + 7);
    const altered = Buffer.from(bytes);
    altered[(1 << 20) + 3] ^= 0xff;
    await pool.query(
      'INSERT INTO model_artifacts (version_id, sha256, size, bytes) VALUES ($1, $2, $3, $4)',
      [id, sha256(bytes), altered.length, altered],
    );
    await expect(store.get(id)).rejects.toMatchObject({
      code: 'CONFLICT',
      message: expect.stringContaining('fails its sha256 check') as unknown,
    });
  });

  it('says NOT_FOUND for a version without an artifact', async () => {
    const id = await newVersion();
    await expect(store.get(id)).rejects.toMatchObject({ code: 'NOT_FOUND' });
  });
});
