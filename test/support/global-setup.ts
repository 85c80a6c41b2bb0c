import { Client } from 'pg';
import { createLogger } from '../../src/common/logger';
import { migrate } from '../../src/infra/migrator';
import { processAlive } from './processes';
import { databaseUrl, STALE_AFTER_SECONDS, TEST_STACK } from './stack';

/** Leftovers of interrupted runs: old per-test databases, templates of runs no longer alive. */
function isStale(name: string, cutoff: number): boolean {
  const [, kind, number] = /^recsys_(t|tpl)_([0-9]+)/.exec(name) ?? [];
  if (kind === 't') return Number(number) < cutoff;
  return kind === 'tpl' && !processAlive(Number(number));
}

/** Migrates a template database once; every test file clones its own database from it. */
export default async function globalSetup(): Promise<void> {
  const admin = new Client({ connectionString: TEST_STACK.postgresAdminUrl });
  try {
    await admin.connect();
  } catch (error) {
    throw new Error(
      `integration tests need PostgreSQL at ${TEST_STACK.postgresAdminUrl} (run \`npm run stack up\`): ${String(error)}`,
    );
  }
  try {
    // Workers inherit the template name chosen here.
    process.env.RECSYS_TEST_TEMPLATE = TEST_STACK.templateDatabase;
    await admin.query(`DROP DATABASE IF EXISTS ${TEST_STACK.templateDatabase} WITH (FORCE)`);
    await admin.query(`CREATE DATABASE ${TEST_STACK.templateDatabase}`);
    const existing = await admin.query<{ datname: string }>(
      "SELECT datname FROM pg_database WHERE datname ~ '^recsys_(t_[0-9]+_|tpl_[0-9]+$)'",
    );
    const cutoff = Math.floor(Date.now() / 1000) - STALE_AFTER_SECONDS;
    for (const { datname } of existing.rows) {
      if (isStale(datname, cutoff)) {
        await admin.query(`DROP DATABASE IF EXISTS "${datname}" WITH (FORCE)`);
      }
    }
  } finally {
    await admin.end();
  }
  await migrate(databaseUrl(TEST_STACK.templateDatabase), createLogger('warn'));
}
