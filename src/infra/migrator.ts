import path from 'node:path';
import { Client } from 'pg';
import { Logger } from '../common/logger';

export const MIGRATIONS_DIR = path.resolve(__dirname, '../../migrations');

/** Creates the target database when it does not exist yet (local stacks, test templates). */
export async function ensureDatabase(databaseUrl: string): Promise<void> {
  const target = new URL(databaseUrl);
  const name = decodeURIComponent(target.pathname.slice(1));
  const admin = new URL(databaseUrl);
  admin.pathname = '/postgres';
  const client = new Client({ connectionString: admin.toString() });
  await client.connect();
  try {
    const found = await client.query('SELECT 1 FROM pg_database WHERE datname = $1', [name]);
    if (found.rowCount === 0) {
      await client.query(`CREATE DATABASE "${name.replaceAll('"', '""')}"`);
    }
  } finally {
    await client.end();
  }
}

/** Applies (or reverts) migrations with node-pg-migrate; run by the `migrate` role, never by serving pods. */
export async function migrate(
  databaseUrl: string,
  logger: Logger,
  direction: 'up' | 'down' = 'up',
  count = Infinity,
): Promise<string[]> {
  await ensureDatabase(databaseUrl);
  const { runner } = await import('node-pg-migrate');
  const applied = await runner({
    databaseUrl,
    dir: MIGRATIONS_DIR,
    direction,
    count,
    migrationsTable: 'pgmigrations',
    log: (message: string) => {
      logger.info({ component: 'migrate' }, message);
    },
  });
  return applied.map((migration) => migration.name);
}
