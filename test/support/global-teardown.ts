import { Client } from 'pg';
import { TEST_STACK } from './stack';

export default async function globalTeardown(): Promise<void> {
  const admin = new Client({ connectionString: TEST_STACK.postgresAdminUrl });
  await admin.connect();
  try {
    await admin.query(`DROP DATABASE IF EXISTS ${TEST_STACK.templateDatabase} WITH (FORCE)`);
  } finally {
    await admin.end();
  }
}
