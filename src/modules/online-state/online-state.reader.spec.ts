import { createLogger } from '../../common/logger';
import { loadConfig } from '../../config/config';
import { FakeOnlineStateStore } from '../../../test/support/fakes/online-state-store';
import { Metrics } from '../metrics/metrics.registry';
import type { OnlineStateRedisRepository } from './online-state-redis.repository';
import type { OnlineStatePostgresRepository } from './online-state-postgres.repository';
import { OnlineStateReader } from './online-state.reader';

const click = (itemId: string) => ({ type: 'click' as const, itemId, ts: 1 });

function setUp() {
  const redis = new FakeOnlineStateStore([click('from-redis')]);
  const postgres = new FakeOnlineStateStore([click('from-postgres')]);
  const reader = new OnlineStateReader(
    redis as unknown as OnlineStateRedisRepository,
    postgres as unknown as OnlineStatePostgresRepository,
    loadConfig({ REDIS_READ_TIMEOUT_MS: '100' }),
    createLogger('silent'),
    new Metrics({}),
  );
  return { redis, postgres, reader };
}

describe('OnlineStateReader', () => {
  beforeEach(() => {
    jest.useFakeTimers();
  });
  afterEach(() => {
    jest.useRealTimers();
  });

  it('reads PostgreSQL once Redis has not answered in REDIS_READ_TIMEOUT_MS, and skips Redis for a second after', async () => {
    const { redis, reader } = setUp();
    redis.stalled = true;
    const first = reader.recent('u', 5);
    await jest.advanceTimersByTimeAsync(100);
    expect(await first).toEqual({ value: [click('from-postgres')], fromPostgres: true });
    expect(redis.reads).toBe(1);

    // Within the second after: no Redis read at all, so no request waits for it again.
    await jest.advanceTimersByTimeAsync(900);
    expect(await reader.recent('u', 5)).toEqual({
      value: [click('from-postgres')],
      fromPostgres: true,
    });
    expect(await reader.interestVersion('u')).toBeUndefined();
    expect(redis.reads).toBe(1);

    // Past it, Redis is tried again.
    redis.stalled = false;
    redis.answer();
    await jest.advanceTimersByTimeAsync(100);
    expect(await reader.recent('u', 5)).toEqual({
      value: [click('from-redis')],
      fromPostgres: false,
    });
    expect(await reader.interestVersion('u')).toBe('1');
  });

  it("skips only the slow server: a cluster's other masters still answer their users and items", async () => {
    const { redis, reader } = setUp();
    redis.stalledServer = 'b';
    const slow = reader.recent('b-1', 5);
    await jest.advanceTimersByTimeAsync(100);
    expect(await slow).toEqual({ value: [click('from-postgres')], fromPostgres: true });

    expect(await reader.recent('a-1', 5)).toEqual({
      value: [click('from-redis')],
      fromPostgres: false,
    });
    expect(await reader.popularity(['i'], 0)).toEqual({ value: [undefined], fromPostgres: false });
    const readsBefore = redis.reads;
    expect(await reader.interestVersion('b-2')).toBeUndefined();
    expect(redis.reads).toBe(readsBefore);
  });

  it('waits for a Redis that answers within the timeout', async () => {
    const { redis, postgres, reader } = setUp();
    redis.stalled = true;
    const read = reader.recent('u', 5);
    await jest.advanceTimersByTimeAsync(99);
    redis.answer();
    expect(await read).toEqual({ value: [click('from-redis')], fromPostgres: false });
    expect(postgres.reads).toBe(0);
  });
});
