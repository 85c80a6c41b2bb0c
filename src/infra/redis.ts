import { createClient } from 'redis';
import { AppConfig } from '../config/config';
import { Logger } from '../common/logger';

export type RedisClient = ReturnType<typeof createClient>;

export function createRedisClient(config: AppConfig['redis'], logger: Logger): RedisClient {
  const client = createClient({
    url: config.url,
    // Fail fast while disconnected so callers can degrade instead of queueing forever.
    disableOfflineQueue: true,
    socket: {
      connectTimeout: 2000,
      reconnectStrategy: (retries: number) => Math.min(100 * 2 ** retries, 2000),
    },
  });
  let lastLogged = 0;
  client.on('error', (error: unknown) => {
    const now = Date.now();
    if (now - lastLogged > 5000) {
      lastLogged = now;
      logger.warn({ err: error }, 'redis connection error');
    }
  });
  return client;
}
