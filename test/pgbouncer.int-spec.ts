import { setTimeout as sleep } from 'node:timers/promises';
import { Client } from 'pg';
import pino from 'pino';
import { createPgPool } from '../src/infra/postgres';
import { startApp } from './support/app';
import { graphql } from './support/graphql';
import { eventually } from './support/poll';
import { databaseUrl, POSTGRES_MODES, TEST_STACK } from './support/stack';
import { createTestContext, TestContext } from './support/test-context';

const [, pooled] = POSTGRES_MODES;

/** Rows of a PgBouncer admin console command (`SHOW CLIENTS`, ...) on the stack's pooler. */
async function pgbouncerShow(command: string): Promise<Record<string, unknown>[]> {
  const admin = new Client({ connectionString: databaseUrl('pgbouncer', TEST_STACK.pgbouncerUrl) });
  await admin.connect();
  try {
    return (await admin.query<Record<string, unknown>>(command)).rows;
  } finally {
    await admin.end();
  }
}

const databaseOf = (url: string) => new URL(url).pathname.slice(1);

/** A logger whose warnings the test reads. */
function capturedLogger() {
  const lines: string[] = [];
  const logger = pino({ level: 'warn' }, { write: (line: string) => lines.push(line) });
  return { logger, text: () => lines.join('') };
}

/**
 * The service with DATABASE_URL through the stack's PgBouncer in transaction mode: what the
 * pooler changes (no session settings at connect, the timeout enforced by the client, readiness).
 * The whole lifecycle, embedding worker and ingest suites also run this way (POSTGRES_MODES).
 */
describe('PostgreSQL through PgBouncer in transaction mode (PG_POOLER=transaction)', () => {
  let context: TestContext;

  beforeAll(async () => {
    context = await createTestContext({ ...pooled.env, ROLE: 'api' });
    await context.createServiceTopics();
  });
  afterAll(async () => {
    await context.cleanup();
  });

  it('queries through the pooler, and readiness reports its path besides the direct one', async () => {
    const database = databaseOf(context.config.postgres.url);
    expect(context.config.postgres.url).not.toBe(context.config.postgres.directUrl);
    const app = await startApp(context.config);
    try {
      const profiles = await graphql<{ rankingProfiles: { name: string }[] }>(
        app,
        '{ rankingProfiles { name } }',
      );
      expect(profiles.errors).toBeUndefined();
      const clients = await pgbouncerShow('SHOW CLIENTS');
      expect(clients.filter((client) => client.database === database).length).toBeGreaterThan(0);

      const response = await app.inject({ method: 'GET', url: '/health/ready' });
      expect(response.statusCode).toBe(200);
      const { checks } = response.json<{
        checks: { name: string; ok: boolean; critical: boolean }[];
      }>();
      const clientChecks = checks
        .filter((check) => check.name.startsWith('postgres'))
        .map(({ name, ok, critical }) => ({ name, ok, critical }));
      expect(clientChecks).toEqual([
        { name: 'postgres', ok: true, critical: false },
        { name: 'postgres_pooler', ok: true, critical: false },
      ]);
    } finally {
      await app.close();
    }
  });

  it('gives up on a query past PG_STATEMENT_TIMEOUT_MS, keeps serving, and warns that PostgreSQL has no timeout of its own', async () => {
    const { logger, text } = capturedLogger();
    const pool = createPgPool({ ...context.config.postgres, statementTimeoutMs: 300 }, logger);
    try {
      const started = performance.now();
      await expect(pool.query('SELECT pg_sleep(3)')).rejects.toThrow('Query read timeout');
      expect(performance.now() - started).toBeLessThan(2000);
      expect((await pool.query<{ one: number }>('SELECT 1 AS one')).rows).toEqual([{ one: 1 }]);
      await eventually(() => {
        expect(text()).toContain(
          'the server-side statement_timeout through the pooler is unset; queries are abandoned after 300 ms',
        );
      }, 5000);
    } finally {
      await pool.end();
    }
  });

  it('with the timeout set server-side (as docs/operations/scaling.md says), PostgreSQL cancels the query and nothing warns', async () => {
    const timed = await createTestContext(pooled.env);
    try {
      // Before any connection to it: the pooler's server sessions start with the setting.
      const admin = new Client({ connectionString: timed.config.postgres.directUrl });
      await admin.connect();
      await admin.query(
        `ALTER DATABASE ${admin.escapeIdentifier(databaseOf(timed.config.postgres.directUrl))} SET statement_timeout = '250ms'`,
      );
      await admin.end();

      const { logger, text } = capturedLogger();
      const pool = createPgPool({ ...timed.config.postgres, statementTimeoutMs: 2000 }, logger);
      try {
        await expect(pool.query('SELECT pg_sleep(3)')).rejects.toMatchObject({ code: '57014' });
        // The start-up check is one short query; it has long finished.
        await sleep(200);
        expect(text()).toBe('');
      } finally {
        await pool.end();
      }
    } finally {
      await timed.cleanup();
    }
  });
});
