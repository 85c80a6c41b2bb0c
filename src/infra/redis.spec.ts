import { createLogger } from '../common/logger';
import { loadConfig } from '../config/config';
import { RedisClient } from './redis';

describe('RedisClient on a server that does not answer', () => {
  it('fails a ping or scan of a cluster still discovering its topology (no master known)', async () => {
    // Nothing listens on ports 1 and 2: discovery is under way, then keeps failing.
    const config = loadConfig({ REDIS_CLUSTER_NODES: '127.0.0.1:1,127.0.0.1:2' }).redis;
    const logger = createLogger('error');
    const redis = RedisClient.create(config, logger);
    const connecting = redis.connect().catch((error: unknown) => error);
    try {
      expect(redis.isOpen).toBe(true);
      await expect(redis.ping()).rejects.toThrow('redis cluster not connected');
      const scan = redis.scan('k:*', { count: 10 })[Symbol.asyncIterator]();
      await expect(scan.next()).rejects.toThrow('redis cluster not connected');
    } finally {
      redis.destroy();
      await connecting;
    }
  });

  it('fails a ping of a standalone server', async () => {
    const config = loadConfig({ REDIS_URL: 'redis://127.0.0.1:1' }).redis;
    const redis = RedisClient.create(config, createLogger('error'));
    const connecting = redis.connect().catch((error: unknown) => error);
    try {
      await expect(redis.ping()).rejects.toThrow();
    } finally {
      redis.destroy();
      await connecting;
    }
  });
});
