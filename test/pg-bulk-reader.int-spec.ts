import { Pool } from 'pg';
import { PgBulkReader, PagedVectors } from '../src/infra/pg-bulk-reader';
import { createTestContext, TestContext } from './support/test-context';

interface StoredRow {
  readonly key: string;
  readonly vector: number[];
  readonly live: boolean;
}

const row = (key: string, vector: number[], live = true): StoredRow => ({ key, vector, live });

describe('the PostgreSQL bulk reader’s vector reads', () => {
  let context: TestContext;
  let pool: Pool;
  let reader: PgBulkReader;

  const store = async (rows: readonly StoredRow[]) => {
    for (const { key, vector, live } of rows) {
      await pool.query('INSERT INTO stored_vectors VALUES ($1, $2, $3, $4)', [
        key,
        vector.length,
        Buffer.from(Float32Array.from(vector).buffer),
        live,
      ]);
    }
  };
  beforeAll(async () => {
    context = await createTestContext();
    pool = new Pool({ connectionString: context.config.postgres.url, max: 2 });
    reader = new PgBulkReader(context.config.postgres);
    await pool.query(
      `CREATE TABLE stored_vectors (key text PRIMARY KEY, dimension int, vector bytea, live boolean)`,
    );
    // Not live (the first row: the dimension is the first live row's), and another dimension.
    await store([
      row('k00', [9, 9, 9], false),
      ...Array.from({ length: 10 }, (_, i) =>
        row(`k${String(i + 1).padStart(2, '0')}`, [i, i + 0.5, -i, 1 / (i + 1)]),
      ),
      row('k04a', [7, 7, 7, 7], false),
      row('k07a', [1, 2, 3]),
    ]);
  });
  afterAll(async () => {
    await reader.close();
    await pool.end();
    await context.cleanup();
  });

  const paged = (overrides: Partial<PagedVectors> = {}): PagedVectors => ({
    sql: `SELECT key, dimension, encode(vector, 'base64') AS base64, live FROM stored_vectors
           WHERE key > $1 ORDER BY key LIMIT $2`,
    params: [],
    pageRows: 3,
    expectedRows: 2,
    ...overrides,
  });

  it('reads the live rows of every page into one matrix in shared memory, in key order', async () => {
    // Three rows a page and room for two: more than one statement, and the matrix grown.
    const read = await reader.vectors(paged());
    const expected = Array.from({ length: 10 }, (_, i) => [i, i + 0.5, -i, 1 / (i + 1)]);
    expect(read.keys).toEqual(expected.map((_, i) => `k${String(i + 1).padStart(2, '0')}`));
    expect(read.dimension).toBe(4);
    expect(read.matrix.buffer).toBeInstanceOf(SharedArrayBuffer);
    expect(Array.from(read.matrix)).toEqual(Array.from(Float32Array.from(expected.flat())));
  });

  it('reads nothing from an empty result, and fails a bad statement with PostgreSQL’s reason, then reads on', async () => {
    const none = await reader.vectors(
      paged({ sql: paged().sql.replace('key > $1', 'key > $1 AND false') }),
    );
    expect(none).toMatchObject({ keys: [], dimension: 0 });
    expect(none.matrix).toHaveLength(0);
    await expect(
      reader.vectors(
        paged({ sql: 'SELECT no_such_column FROM stored_vectors WHERE $1 < $2::text' }),
      ),
    ).rejects.toThrow(/no_such_column/);
    const again = await reader.vectors(paged({ pageRows: 100, expectedRows: 1000 }));
    expect(again.keys).toHaveLength(10);
  });
});
