import { OperationTypeNode } from 'graphql';
import { createLogger } from '../../common/logger';
import { ShutdownDeadline } from '../../common/shutdown-deadline';
import { loadConfig } from '../../config/config';
import type { PgListener } from '../../infra/pg-listener';
import { Metrics } from '../metrics/metrics.registry';
import { AuthError } from './access';
import { generateApiKey } from './api-key';
import { ApiKeyAuthService, Principal } from './api-key-auth.service';
import { FakeKeys } from '../../../test/support/fakes/api-keys';

/** One request as the guard makes it: authenticate, then pay one unit. */
async function request(
  service: ApiKeyAuthService,
  key: string | undefined,
  now: number,
): Promise<Principal> {
  const principal = await service.authenticate(key, now);
  service.charge(principal, 1, now);
  return principal;
}

type KeyListener = Pick<PgListener, 'listen' | 'onReconnect'>;

const noListener: KeyListener = {
  listen: () => Promise.resolve(),
  onReconnect: () => undefined,
};

function setup(env: Record<string, string> = {}, listener: KeyListener = noListener) {
  const keys = new FakeKeys();
  const config = loadConfig(env);
  const service = new ApiKeyAuthService(
    keys,
    listener,
    config,
    createLogger('silent'),
    new Metrics({}),
    new ShutdownDeadline(config.shutdownTimeoutMs),
  );
  return { keys, service };
}

async function codeOf(promise: Promise<unknown>): Promise<string> {
  try {
    await promise;
    return 'ok';
  } catch (error) {
    if (error instanceof AuthError) return error.code;
    throw error;
  }
}

describe('ApiKeyAuthService', () => {
  it('refuses a missing, malformed or unknown key with UNAUTHENTICATED and a clear message', async () => {
    const { service } = setup();
    await expect(request(service, undefined, 0)).rejects.toThrow(/missing API key: send x-api-key/);
    await expect(request(service, 'secret', 0)).rejects.toThrow(/malformed API key: expected rk_/);
    await expect(request(service, generateApiKey().key, 0)).rejects.toMatchObject({
      code: 'UNAUTHENTICATED',
      message: 'unknown or revoked API key',
    });
  });

  it('reads PostgreSQL once per key per TTL, and remembers unknown keys briefly', async () => {
    const { keys, service } = setup();
    const { key } = keys.add('read');
    for (let i = 0; i < 100; i++) await request(service, key, i);
    expect(keys.lookups).toBe(1);
    await request(service, key, 31_000);
    expect(keys.lookups).toBe(2);

    const stranger = generateApiKey().key;
    for (let i = 0; i < 10; i++)
      expect(await codeOf(request(service, stranger, 40_000 + i))).toBe('UNAUTHENTICATED');
    expect(keys.lookups).toBe(3);
    expect(await codeOf(request(service, stranger, 43_000))).toBe('UNAUTHENTICATED');
    expect(keys.lookups).toBe(4);
  });

  it('shares one lookup between concurrent requests with the same new key', async () => {
    const { keys, service } = setup();
    const { key } = keys.add('read');
    await Promise.all(Array.from({ length: 20 }, () => request(service, key, 0)));
    expect(keys.lookups).toBe(1);
  });

  it('refuses a forgotten (revoked) key at once, before its TTL', async () => {
    const { keys, service } = setup();
    const { key, hash } = keys.add('ops');
    await request(service, key, 0);
    keys.rows.delete(hash);
    expect(await codeOf(request(service, key, 1))).toBe('ok');
    service.forget(hash);
    expect(await codeOf(request(service, key, 2))).toBe('UNAUTHENTICATED');
  });

  it('does not cache a lookup that raced a revocation', async () => {
    const { keys, service } = setup();
    const { key, hash } = keys.add('read');
    const first = request(service, key, 0);
    // The NOTIFY arrives while the lookup is in flight (it read the row before the revoke).
    keys.rows.delete(hash);
    service.forget(hash);
    await first;
    expect(await codeOf(request(service, key, 1))).toBe('UNAUTHENTICATED');
  });

  it('rate-limits per key at the role default with a burst of twice the rate', async () => {
    const { keys, service } = setup({ AUTH_RATE_LIMIT_OPS_PER_SECOND: '5' });
    const ops = keys.add('ops');
    const other = keys.add('ops');
    const outcomes = await Promise.all(
      Array.from({ length: 12 }, () => codeOf(request(service, ops.key, 0))),
    );
    expect(outcomes.filter((code) => code === 'ok')).toHaveLength(10);
    expect(outcomes.filter((code) => code === 'RATE_LIMITED')).toHaveLength(2);
    // Other keys have their own bucket.
    expect(await codeOf(request(service, other.key, 0))).toBe('ok');
    const refused = await request(service, ops.key, 0).catch((error: unknown) => error);
    expect(refused).toMatchObject({
      code: 'RATE_LIMITED',
      details: { retryAfterSeconds: 1, limitPerSecond: 5 },
    });
    expect((refused as Error).message).toMatch(/rate limit of 5 units\/s on this replica/);
    // 200 ms later at 5/s: one more request.
    expect(await codeOf(request(service, ops.key, 200))).toBe('ok');
    expect(await codeOf(request(service, ops.key, 200))).toBe('RATE_LIMITED');
  });

  it('keeps a key’s spent rate limit when the key is reloaded after a change notification', async () => {
    const { keys, service } = setup();
    const { key, hash } = keys.add('read', 1);
    expect(await codeOf(request(service, key, 0))).toBe('ok');
    expect(await codeOf(request(service, key, 0))).toBe('ok');
    expect(await codeOf(request(service, key, 0))).toBe('RATE_LIMITED');
    // Any change to the key (or the NOTIFY of its own creation, arriving late) reloads it.
    service.forget(hash);
    expect(await codeOf(request(service, key, 0))).toBe('RATE_LIMITED');
    expect(await codeOf(request(service, key, 1000))).toBe('ok');
  });

  it('uses the per-key override of the rate limit', async () => {
    const { keys, service } = setup();
    const { key } = keys.add('read', 1);
    const outcomes = await Promise.all(
      Array.from({ length: 3 }, () => codeOf(request(service, key, 0))),
    );
    expect(outcomes).toEqual(['ok', 'ok', 'RATE_LIMITED']);
  });

  it('bounds PostgreSQL lookups of never-seen keys', async () => {
    const { keys, service } = setup();
    const codes = [];
    for (let i = 0; i < 80; i++)
      codes.push(await codeOf(request(service, generateApiKey().key, 0)));
    expect(codes.filter((code) => code === 'UNAUTHENTICATED')).toHaveLength(50);
    expect(codes.filter((code) => code === 'RATE_LIMITED')).toHaveLength(30);
    expect(keys.lookups).toBe(50);
  });

  it('serves every key that existed at start during a flood of random keys, without a lookup', async () => {
    const { keys, service } = setup();
    const real = keys.add('read');
    await service.onApplicationBootstrap();
    for (let i = 0; i < 200; i++) await codeOf(request(service, generateApiKey().key, 0));
    expect(keys.lookups).toBe(50);
    expect(await codeOf(request(service, real.key, 0))).toBe('ok');
    expect(keys.lookups).toBe(50);
    await service.beforeApplicationShutdown();
  });

  it('reloads the keys when its LISTEN connection comes back, and no longer once shutting down', async () => {
    let reconnected: () => void = () => undefined;
    const listener: KeyListener = {
      listen: () => Promise.resolve(),
      onReconnect: (callback: () => void) => {
        reconnected = callback;
      },
    };
    const { keys, service } = setup({}, listener);
    const loads = jest.spyOn(keys, 'allLive');
    await service.onApplicationBootstrap();
    reconnected();
    expect(loads).toHaveBeenCalledTimes(2);
    service.onModuleDestroy();
    await service.beforeApplicationShutdown();
    // The shared listener closes after the modules' stops, with the pool: a reload then would
    // read from a closing pool and leave a retry timer behind.
    reconnected();
    expect(loads).toHaveBeenCalledTimes(2);
  });

  it('keeps serving a known key while PostgreSQL is down, and says UNAVAILABLE for a new one', async () => {
    const { keys, service } = setup();
    const known = keys.add('read');
    const fresh = keys.add('read');
    await request(service, known.key, 0);
    keys.down = true;
    expect(await codeOf(request(service, known.key, 31_000))).toBe('ok');
    expect(await codeOf(request(service, fresh.key, 31_000))).toBe('UNAVAILABLE');
  });

  it('names the operation, the role it needs and the key role when forbidden', async () => {
    const { keys, service } = setup();
    const principal = await request(service, keys.add('read').key, 0);
    expect(() => {
      service.authorize(principal, 'ops', OperationTypeNode.MUTATION, 'activateModelVersion');
    }).toThrow('mutation activateModelVersion requires role ops; this key has role read');
    expect(() => {
      service.authorize(principal, 'read', OperationTypeNode.QUERY, 'rank');
    }).not.toThrow();
  });

  it('records which keys were used, in one write per flush', async () => {
    const { keys, service } = setup();
    const a = keys.add('read');
    const b = keys.add('ops');
    for (let i = 0; i < 5; i++) await request(service, a.key, i);
    await request(service, b.key, 0);
    await service.flushUsage();
    expect(keys.marked.sort()).toEqual(['1', '2']);
    await service.flushUsage();
    expect(keys.marked).toHaveLength(2);
  });
});
