import { spawn } from 'node:child_process';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import { Writable } from 'node:stream';
import { GraphQLSchemaHost } from '@nestjs/graphql';
import { NestFastifyApplication } from '@nestjs/platform-fastify';
import { Client } from 'pg';
import pino from 'pino';
import { createLogger } from '../src/common/logger';
import type { AppConfig } from '../src/config/config';
import { ApiKeyService } from '../src/modules/auth/api-key.service';
import { createServer, opsListener } from '../src/server';
import { sleep } from './support/ingest-helpers';
import { startApp } from './support/app';
import { graphql, GraphqlResponse } from './support/graphql';
import { RANK_QUERY, RECOMMEND_QUERY } from './support/ranking-helpers';
import { createTestContext, TestContext } from './support/test-context';

type GraphqlReply = GraphqlResponse<Record<string, unknown>>;

type KeyHeader = Record<string, string>;

const withKey = (key: string): KeyHeader => ({ 'x-api-key': key });

const codes = (reply: GraphqlReply) => (reply.errors ?? []).map((error) => error.extensions.code);

const RANK_VARIABLES = { userId: 'auth-user', candidates: [{ itemId: 'a-1' }, { itemId: 'a-2' }] };

/** Every mutation of the schema, as a read key would call it (the test checks none is missing). */
const MUTATIONS: Record<string, { query: string; variables?: Record<string, unknown> }> = {
  upsertItems: {
    query: 'mutation($items: [ItemInput!]!) { upsertItems(items: $items) { received } }',
    variables: { items: [{ itemId: 'forbidden-item', title: 'Should not be stored' }] },
  },
  upsertRankingProfile: {
    query: `mutation { upsertRankingProfile(profile: { name: "forbidden", weights: [{ feature: "model", weight: 1 }] }) { name } }`,
  },
  activateModelVersion: { query: 'mutation { activateModelVersion(id: "1") { id } }' },
  rollbackModel: { query: 'mutation { rollbackModel { id } }' },
  trainModel: { query: 'mutation { trainModel(mode: FULL) { id } }' },
  createExperiment: {
    query: `mutation { createExperiment(experiment: { name: "forbidden", arms: [{ name: "a", share: 50 }, { name: "b", profile: "x", share: 50 }] }) { id } }`,
  },
  startExperiment: { query: 'mutation { startExperiment(id: "1") { id } }' },
  stopExperiment: { query: 'mutation { stopExperiment(id: "1") { id } }' },
  promoteArm: { query: 'mutation { promoteArm(experimentId: "1", arm: "a") { id } }' },
};

async function count(url: string, sql: string): Promise<number> {
  const client = new Client({ connectionString: url });
  await client.connect();
  try {
    const { rows } = await client.query<{ n: string }>(sql);
    return Number(rows[0]?.n);
  } finally {
    await client.end();
  }
}

/** `npm run cli -- api-key ...` as a child process against the test database. */
async function cli(
  config: AppConfig,
  args: readonly string[],
): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const root = path.resolve(__dirname, '..');
  const child = spawn(
    process.execPath,
    ['-r', 'ts-node/register', path.join(root, 'src/cli.ts'), 'api-key', ...args],
    {
      cwd: root,
      env: { ...process.env, DATABASE_URL: config.postgres.url, LOG_LEVEL: 'warn' },
      stdio: ['ignore', 'pipe', 'pipe'],
    },
  );
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
  child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  const code = await new Promise<number | null>((resolve) => child.once('exit', resolve));
  return { code, stdout, stderr };
}

/** Polls until `check` holds; returns the milliseconds it took. */
async function within(ms: number, check: () => Promise<boolean>): Promise<number> {
  const started = Date.now();
  while (!(await check())) {
    if (Date.now() - started > ms) throw new Error(`not within ${ms} ms`);
    await sleep(20);
  }
  return Date.now() - started;
}

describe('API keys on the real stack (AUTH_MODE=api-key)', () => {
  let context: TestContext;
  let app: NestFastifyApplication;
  let second: NestFastifyApplication;
  let keys: ApiKeyService;
  let readKey: string;
  let opsKey: string;

  beforeAll(async () => {
    context = await createTestContext({ AUTH_MODE: 'api-key' });
    await context.createServiceTopics();
    app = await startApp(context.config, { role: 'api' });
    second = await startApp(context.config, { role: 'api' });
    keys = app.get(ApiKeyService);
    readKey = (await keys.create({ name: 'storefront', role: 'read' })).key;
    opsKey = (await keys.create({ name: 'operator', role: 'ops' })).key;
  });
  afterAll(async () => {
    await second.close();
    await app.close();
    await context.cleanup();
  });

  it('serves no GraphiQL', async () => {
    expect((await app.inject({ method: 'GET', url: '/graphiql' })).statusCode).toBe(404);
  });

  it('answers the health query without a key', async () => {
    const reply = await graphql(app, '{ health { status } }', {}, {});
    expect(reply.errors).toBeUndefined();
    expect(reply.data).toEqual({ health: { status: 'ok' } });
  });

  it('refuses a query without a key: 401 UNAUTHENTICATED naming the header', async () => {
    const reply = await graphql(app, RANK_QUERY, RANK_VARIABLES, {});
    expect(reply.status).toBe(401);
    expect(codes(reply)).toEqual(['UNAUTHENTICATED']);
    expect(reply.errors?.[0]?.message).toBe(
      'missing API key: send x-api-key: <key> or authorization: Bearer <key>',
    );
  });

  it('refuses an unknown or malformed key', async () => {
    const unknown = `rk_00000000_${'A'.repeat(43)}`;
    for (const headers of [withKey(unknown), { authorization: `Bearer ${unknown}` }]) {
      const reply = await graphql(app, RANK_QUERY, RANK_VARIABLES, headers);
      expect(reply.status).toBe(401);
      expect(reply.errors?.[0]).toMatchObject({
        message: 'unknown or revoked API key',
        extensions: { code: 'UNAUTHENTICATED' },
      });
    }
    const malformed = await graphql(app, RANK_QUERY, RANK_VARIABLES, withKey('letmein'));
    expect(malformed.errors?.[0]?.message).toMatch(/^malformed API key: expected rk_/);
  });

  it('lets a read key rank, recommend and query (x-api-key or Bearer)', async () => {
    const rank = await graphql(app, RANK_QUERY, RANK_VARIABLES, withKey(readKey));
    expect(rank.errors).toBeUndefined();
    expect(rank.data?.rank).toMatchObject({ items: expect.any(Array) as unknown });
    const recommend = await graphql(
      app,
      RECOMMEND_QUERY,
      {
        userId: 'auth-user',
        first: 5,
      },
      { authorization: `Bearer ${readKey}` },
    );
    expect(recommend.errors).toBeUndefined();
    const reads = await graphql(app, '{ rankingProfiles { name } }', {}, withKey(readKey));
    expect(reads.errors).toBeUndefined();
    // The model lifecycle (load errors, hyperparameters) is ops detail.
    const opsDetail = '{ servingModel { versionId } modelVersions { id } activeModel { id } }';
    const refused = await graphql(app, opsDetail, {}, withKey(readKey));
    expect(refused.data).toBeUndefined();
    expect(codes(refused).length).toBeGreaterThan(0);
    expect(new Set(codes(refused))).toEqual(new Set(['FORBIDDEN']));
    const ops = await graphql(app, opsDetail, {}, withKey(opsKey));
    expect(ops.errors).toBeUndefined();
    expect(ops.data).toMatchObject({ modelVersions: [], activeModel: null });
  });

  it('answers introspection to ops keys only; health shows no dependency errors publicly', async () => {
    const introspection = '{ __schema { queryType { name } } }';
    expect((await graphql(app, introspection, {})).status).toBe(401);
    const read = await graphql(
      app,
      `
        query Q {
          ...F
        }
        fragment F on Query {
          __type(name: "Query") {
            name
          }
        }
      `,
      {},
      withKey(readKey),
    );
    expect(read.status).toBe(403);
    expect(codes(read)).toEqual(['FORBIDDEN']);
    const ops = await graphql(app, introspection, {}, withKey(opsKey));
    expect(ops.data).toEqual({ __schema: { queryType: { name: 'Query' } } });
    // __typename is not introspection.
    expect((await graphql(app, '{ __typename }', {}, withKey(readKey))).data).toEqual({
      __typename: 'Query',
    });
    const health = await graphql<{ health: { checks: { name: string; error: string | null }[] } }>(
      app,
      '{ health { checks { name error } } }',
    );
    expect(health.data?.health.checks.every((check) => check.error === null)).toBe(true);
    const ready = (await app.inject({ method: 'GET', url: '/health/ready' })).json<{
      checks: Record<string, unknown>[];
    }>();
    expect(ready.checks.every((check) => !('error' in check))).toBe(true);
  });

  it('refuses every mutation to a read key: 403 FORBIDDEN naming the role, nothing changed', async () => {
    const schema = app.get(GraphQLSchemaHost).schema;
    const schemaMutations = Object.keys(schema.getMutationType()?.getFields() ?? {}).sort();
    expect(Object.keys(MUTATIONS).sort()).toEqual(schemaMutations);
    for (const [name, call] of Object.entries(MUTATIONS)) {
      const reply = await graphql(app, call.query, call.variables, withKey(readKey));
      expect(reply.status).toBe(403);
      expect(reply.errors).toEqual([
        expect.objectContaining({
          message: `mutation ${name} requires role ops; this key has role read`,
          extensions: expect.objectContaining({
            code: 'FORBIDDEN',
            requiredRole: 'ops',
          }) as unknown,
        }),
      ]);
    }
    const url = context.config.postgres.url;
    expect(
      await count(url, `SELECT count(*) AS n FROM items WHERE item_id = 'forbidden-item'`),
    ).toBe(0);
    expect(
      await count(url, `SELECT count(*) AS n FROM ranking_profiles WHERE name = 'forbidden'`),
    ).toBe(0);
    expect(await count(url, 'SELECT count(*) AS n FROM training_runs')).toBe(0);
    expect(await count(url, 'SELECT count(*) AS n FROM experiments')).toBe(0);
  });

  it('lets only an ops key force an experiment arm', async () => {
    const forced = { ...RANK_VARIABLES, arm: 'treatment' };
    const query = RANK_QUERY.replace('$profile: String', '$profile: String, $arm: String').replace(
      'profile: $profile',
      'profile: $profile, arm: $arm',
    );
    const read = await graphql(app, query, forced, withKey(readKey));
    expect(read.errors).toEqual([
      expect.objectContaining({
        message: 'arm: forcing an experiment arm requires role ops',
        extensions: expect.objectContaining({ code: 'FORBIDDEN', field: 'arm' }) as unknown,
      }),
    ]);
    // An ops key passes the check and learns that no experiment runs.
    const ops = await graphql(app, query, forced, withKey(opsKey));
    expect(ops.errors).toEqual([
      expect.objectContaining({ message: 'arm: no experiment is running' }),
    ]);
  });

  it('lets an ops key mutate (and query)', async () => {
    const items = await graphql(
      app,
      MUTATIONS.upsertItems.query,
      {
        items: [{ itemId: 'ops-item', title: 'Stored by ops' }],
      },
      withKey(opsKey),
    );
    expect(items.errors).toBeUndefined();
    expect(items.data).toEqual({ upsertItems: { received: 1 } });
    const profile = await graphql(
      app,
      `
        mutation {
          upsertRankingProfile(
            profile: { name: "ops-profile", weights: [{ feature: "model", weight: 1 }] }
          ) {
            name
          }
        }
      `,
      {},
      withKey(opsKey),
    );
    expect(profile.data).toEqual({ upsertRankingProfile: { name: 'ops-profile' } });
    // Past the guard: the registry itself answers.
    const activate = await graphql(
      app,
      'mutation { activateModelVersion(id: "999") { id } }',
      {},
      withKey(opsKey),
    );
    expect(codes(activate)).toEqual(['NOT_FOUND']);
    const rollback = await graphql(app, MUTATIONS.rollbackModel.query, {}, withKey(opsKey));
    expect(codes(rollback)).toEqual(['CONFLICT']);
    const rank = await graphql(app, RANK_QUERY, RANK_VARIABLES, withKey(opsKey));
    expect(rank.errors).toBeUndefined();
  });

  it('refuses a revoked key on another running replica within a second (NOTIFY, not the 30 s TTL)', async () => {
    const { key } = await keys.create({ name: 'to-revoke', role: 'read' });
    // Both replicas have the key cached.
    for (const replica of [app, second]) {
      expect(
        (await graphql(replica, RANK_QUERY, RANK_VARIABLES, withKey(key))).errors,
      ).toBeUndefined();
    }
    await keys.revoke({ name: 'to-revoke' });
    const tookMs = await within(1000, async () => {
      const reply = await graphql(second, RANK_QUERY, RANK_VARIABLES, withKey(key));
      return codes(reply).includes('UNAUTHENTICATED');
    });
    expect(tookMs).toBeLessThan(1000);
    expect(codes(await graphql(app, RANK_QUERY, RANK_VARIABLES, withKey(key)))).toEqual([
      'UNAUTHENTICATED',
    ]);
  });

  it('rate-limits a key per replica with 429 RATE_LIMITED and Retry-After; the service stays healthy', async () => {
    const { key } = await keys.create({ name: 'slow', role: 'read', rateLimitPerSecond: 2 });
    const started = Date.now();
    let granted = 0;
    let limited: GraphqlReply | undefined;
    while (limited === undefined && granted < 50) {
      const reply = await graphql(app, '{ rankingProfiles { name } }', {}, withKey(key));
      if (reply.errors === undefined) granted++;
      else limited = reply;
    }
    // A burst of twice the rate, plus what refilled meanwhile at 2/s.
    expect(granted).toBeGreaterThanOrEqual(4);
    expect(granted).toBeLessThanOrEqual(4 + Math.ceil(((Date.now() - started) / 1000) * 2));
    expect(limited?.status).toBe(429);
    expect(limited?.headers['retry-after']).toBe('1');
    expect(limited?.errors?.[0]?.extensions).toMatchObject({
      code: 'RATE_LIMITED',
      retryAfterSeconds: 1,
      limitPerSecond: 2,
    });
    expect(limited?.errors?.[0]?.message).toMatch(/exceeded its rate limit of 2 units\/s/);
    // Other keys and the health endpoints are unaffected.
    expect(
      (await graphql(app, '{ rankingProfiles { name } }', {}, withKey(readKey))).errors,
    ).toBeUndefined();
    const ready = await app.inject({ method: 'GET', url: '/health/ready' });
    expect(ready.statusCode).toBe(200);
    await sleep(600);
    expect(
      (await graphql(app, '{ rankingProfiles { name } }', {}, withKey(key))).errors,
    ).toBeUndefined();
  });

  it('administers keys from the CLI: create prints the key once, list hides secrets, revoke refuses it', async () => {
    const created = await cli(context.config, [
      'create',
      '--name',
      'cli-key',
      '--role',
      'read',
      '--rate-limit',
      '50',
    ]);
    expect(created.code).toBe(0);
    const key = created.stdout.trim();
    expect(key).toMatch(/^rk_[0-9a-f]{8}_[A-Za-z0-9_-]{43}$/);
    expect(created.stderr).toContain('created API key "cli-key"');
    expect(
      (await graphql(second, RANK_QUERY, RANK_VARIABLES, withKey(key))).errors,
    ).toBeUndefined();

    const listed = await cli(context.config, ['list']);
    expect(listed.code).toBe(0);
    expect(listed.stdout).not.toContain(key);
    expect(listed.stdout).not.toContain(key.slice(12));
    const entries = JSON.parse(listed.stdout) as Record<string, unknown>[];
    expect(entries.find((entry) => entry.name === 'cli-key')).toMatchObject({
      role: 'read',
      prefix: key.slice(0, 11),
      rateLimitPerSecond: 50,
      rateLimitSource: 'key',
      revokedAt: null,
    });
    expect(entries.find((entry) => entry.name === 'to-revoke')?.revokedAt).toEqual(
      expect.any(String),
    );

    const revoked = await cli(context.config, ['revoke', '--name', 'cli-key']);
    expect(revoked.code).toBe(0);
    expect(revoked.stdout).toContain('revoked API key "cli-key"');
    await within(1000, async () =>
      codes(await graphql(second, RANK_QUERY, RANK_VARIABLES, withKey(key))).includes(
        'UNAUTHENTICATED',
      ),
    );
  });

  it('refuses bad CLI arguments naming the flag', async () => {
    const badRole = await cli(context.config, ['create', '--name', 'x', '--role', 'admin']);
    expect(badRole.code).toBe(1);
    expect(badRole.stderr).toContain('--role: must be one of read, ops');
    const noName = await cli(context.config, ['create', '--role', 'read', '--rate-limit', '0']);
    expect(noName.code).toBe(1);
    expect(noName.stderr).toContain('--name: 1-64 characters');
    const unknownKey = await cli(context.config, ['revoke', '--name', 'nobody']);
    expect(unknownKey.code).toBe(1);
    expect(unknownKey.stderr).toContain('no live API key named "nobody"');
  });
});

describe('OPS_PORT', () => {
  let context: TestContext;
  let app: NestFastifyApplication;
  let opsUrl: string;
  let opsKey: string;

  beforeAll(async () => {
    context = await createTestContext({ AUTH_MODE: 'api-key', OPS_PORT: '0' });
    await context.createServiceTopics();
    app = await createServer({ ...context.config, role: 'api' }, createLogger('silent'));
    await app.init();
    await app.getHttpAdapter().getInstance().ready();
    const address = opsListener(app)?.server.address() as AddressInfo;
    opsUrl = `http://127.0.0.1:${address.port}`;
    opsKey = (await app.get(ApiKeyService).create({ name: 'console', role: 'ops' })).key;
  });
  afterAll(async () => {
    await app.close();
    await context.cleanup();
  });

  it('serves metrics and health on the ops port without a key', async () => {
    const metrics = await fetch(`${opsUrl}/metrics`);
    expect(metrics.status).toBe(200);
    expect(metrics.headers.get('content-type')).toContain('text/plain');
    expect(await metrics.text()).toContain('process_cpu_user_seconds_total');
    const ready = await fetch(`${opsUrl}/health/ready`);
    expect(ready.status).toBe(200);
    expect(await ready.json()).toMatchObject({ status: 'ok' });
    expect((await fetch(`${opsUrl}/health/live`)).status).toBe(200);
  });

  it('serves the ops console there, its GraphQL calls answered by the app with the same keys', async () => {
    const page = await fetch(`${opsUrl}/console`);
    expect(page.status).toBe(200);
    expect(await page.text()).toContain('<title>recsys console</title>');
    expect((await fetch(`${opsUrl}/console/console.js`)).status).toBe(200);
    expect((await fetch(`${opsUrl}/console/secret.txt`)).status).toBe(404);
    const call = (headers: Record<string, string>) =>
      fetch(`${opsUrl}/graphql`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', ...headers },
        body: JSON.stringify({ query: '{ activeModel { id } }' }),
      });
    const refused = (await (await call({})).json()) as {
      errors?: { extensions: { code: string } }[];
    };
    expect(refused.errors?.map((error) => error.extensions.code)).toEqual(['UNAUTHENTICATED']);
    const answered = await call({ 'x-api-key': opsKey });
    expect(answered.status).toBe(200);
    expect(await answered.json()).toEqual({ data: { activeModel: null } });
  });

  it('answers 404 for metrics, health and the console on the main port, which still serves GraphQL', async () => {
    for (const url of [
      '/metrics',
      '/health/ready',
      '/health/live',
      '/console',
      '/console/console.js',
    ]) {
      expect((await app.inject({ method: 'GET', url })).statusCode).toBe(404);
    }
    const reply = await graphql(app, '{ health { status } }', {}, {});
    expect(reply.data).toEqual({ health: { status: 'ok' } });
  });

  it('closes the ops listener with the app', async () => {
    const extra = await createServer({ ...context.config, role: 'api' }, createLogger('silent'));
    await extra.init();
    await extra.getHttpAdapter().getInstance().ready();
    const { port } = opsListener(extra)?.server.address() as AddressInfo;
    await extra.close();
    await expect(fetch(`http://127.0.0.1:${port}/health/live`)).rejects.toThrow();
  });
});

describe('AUTH_MODE=off', () => {
  it('warns at start, serves every operation without a key, and GraphiQL', async () => {
    const context = await createTestContext({ AUTH_MODE: 'off' });
    await context.createServiceTopics();
    const lines: string[] = [];
    const sink = new Writable({
      write(chunk: Buffer, _encoding, done) {
        lines.push(chunk.toString());
        done();
      },
    });
    const app = await createServer(
      { ...context.config, role: 'api' },
      pino({ level: 'warn' }, sink),
    );
    try {
      await app.init();
      const warning = lines.find((line) => line.includes('AUTH_MODE=off'));
      expect(JSON.parse(warning ?? '{}')).toMatchObject({ level: 40 });
      const reply = await graphql(
        app,
        `
          mutation {
            upsertRankingProfile(
              profile: { name: "open", weights: [{ feature: "model", weight: 1 }] }
            ) {
              name
            }
          }
        `,
        {},
        {},
      );
      expect(reply.errors).toBeUndefined();
      expect(reply.data).toEqual({ upsertRankingProfile: { name: 'open' } });
      const ide = await app.inject({ method: 'GET', url: '/graphiql' });
      expect(ide.statusCode).toBe(200);
      expect(ide.headers['content-type']).toMatch(/^text\/html/);
      expect(ide.body).toContain('<title>GraphiQL</title>');
    } finally {
      await app.close();
      await context.cleanup();
    }
  });
});
