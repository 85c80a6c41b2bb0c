import { createLogger } from '../../src/common/logger';
import { loadConfig } from '../../src/config/config';
import { createPgPool } from '../../src/infra/postgres';
import type { ApiKeyRole } from '../../src/modules/auth/api-key';
import { ApiKeyRepository } from '../../src/modules/auth/api-key.repository';
import { ApiKeyService } from '../../src/modules/auth/api-key.service';

/**
 * A key for a benchmark's requests, so servers are measured with authentication on. Its rate
 * limit is the highest allowed: the bench measures the service, not the limiter refusing it.
 */
export async function createBenchApiKey(databaseUrl: string, role: ApiKeyRole): Promise<string> {
  const config = loadConfig({ DATABASE_URL: databaseUrl });
  const pool = createPgPool(config.postgres, createLogger('warn'));
  try {
    const service = new ApiKeyService(new ApiKeyRepository(pool), config);
    const { key } = await service.create({
      name: `bench-${role}-${String(Date.now())}`,
      role,
      rateLimitPerSecond: 1_000_000_000,
    });
    return key;
  } finally {
    await pool.end();
  }
}
