import { Client } from 'pg';
import { createLogger } from '../../src/common/logger';
import { migrate } from '../../src/infra/migrator';
import { databaseUrl, TEST_STACK } from './stack';

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
    await admin.query(`DROP DATABASE IF EXISTS ${TEST_STACK.templateDatabase} WITH (FORCE)`);
    await admin.query(`CREATE DATABASE ${TEST_STACK.templateDatabase}`);
    // Old per-test databases from interrupted runs.
    const stale = await admin.query<{ datname: string }>(
      "SELECT datname FROM pg_database WHERE datname LIKE 'recsys_t_%'",
    );
    for (const row of stale.rows) {
      await admin.query(`DROP DATABASE IF EXISTS "${row.datname}" WITH (FORCE)`);
    }
  } finally {
    await admin.end();
  }
  await migrate(databaseUrl(TEST_STACK.templateDatabase), createLogger('warn'));
}
