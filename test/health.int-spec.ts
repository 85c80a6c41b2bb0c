import { NestFastifyApplication } from '@nestjs/platform-fastify';
import { createLogger } from '../src/common/logger';
import { createServer } from '../src/server';
import { createTestContext, TestContext } from './support/test-context';

async function startApp(context: TestContext): Promise<NestFastifyApplication> {
  const app = await createServer(context.config, createLogger('error'));
  await app.init();
  await app.getHttpAdapter().getInstance().ready();
  return app;
}

describe('health on the real stack', () => {
  let context: TestContext;
  let app: NestFastifyApplication;

  beforeAll(async () => {
    context = await createTestContext();
    await context.createServiceTopics();
    app = await startApp(context);
  });
  afterAll(async () => {
    await app.close();
    await context.cleanup();
  });

  it('is live', async () => {
    const response = await app.inject({ method: 'GET', url: '/health/live' });
    expect(response.statusCode).toBe(200);
    expect(response.json()).toEqual({ status: 'ok' });
  });

  it('is ready when PostgreSQL, Redis and Kafka answer', async () => {
    const response = await app.inject({ method: 'GET', url: '/health/ready' });
    const body = response.json<{ status: string; checks: { name: string; ok: boolean }[] }>();
    // Modules add their own indicators (model, workers); these are the client connections.
    const clients = body.checks.filter((check) =>
      ['postgres', 'redis', 'kafka'].includes(check.name),
    );
    expect(clients.map((check) => [check.name, check.ok])).toEqual([
      ['postgres', true],
      ['redis', true],
      ['kafka', true],
    ]);
    expect(response.statusCode).toBe(200);
  });

  it('answers the GraphQL health query and echoes a request id', async () => {
    const response = await app.inject({
      method: 'POST',
      url: '/graphql',
      headers: { 'content-type': 'application/json', 'x-request-id': 'req-123' },
      payload: { query: '{ health { status checks { name ok } } }' },
    });
    expect(response.statusCode).toBe(200);
    expect(response.headers['x-request-id']).toBe('req-123');
    expect(response.json()).toMatchObject({ data: { health: { status: 'ok' } } });
  });

  it('exports process metrics and per-operation GraphQL latency', async () => {
    await app.inject({
      method: 'POST',
      url: '/graphql',
      payload: { query: 'query Probe { health { status } }' },
    });
    const response = await app.inject({ method: 'GET', url: '/metrics' });
    expect(response.statusCode).toBe(200);
    expect(response.body).toContain('process_cpu_user_seconds_total');
    expect(response.body).toMatch(
      /graphql_request_duration_seconds_count\{[^}]*operation="Probe"[^}]*\} 1/,
    );
  });

  it('rejects malformed GraphQL with a coded error', async () => {
    const response = await app.inject({
      method: 'POST',
      url: '/graphql',
      payload: { query: '{ nope }' },
    });
    expect(response.statusCode).toBe(400);
    const body = response.json<{ errors: { message: string; extensions: { code: string } }[] }>();
    expect(body.errors[0]?.message).toContain('nope');
    expect(body.errors[0]?.extensions.code).toBe('BAD_USER_INPUT');
  });

  it('refuses invalid variables with 400 naming the variable and path, before and after jit compiles', async () => {
    const query =
      'query Rank($u: ID!, $c: [CandidateInput!]!) { rank(userId: $u, candidates: $c) { requestId } }';
    const invalid: [unknown, string][] = [
      [
        { u: 'u1', c: [{ itemId: 'a', features: [{ name: 'x', value: 'high' }] }] },
        'Variable "$c" got invalid value "high" at "c[0].features[0].value"',
      ],
      [{ u: 'u1', c: [{ item: 'a' }] }, 'Variable "$c" got invalid value'],
      [{ c: [] }, 'Variable "$u" of required type "ID!" was not provided'],
    ];
    // Mercurius compiles a query with graphql-jit on its second use: three rounds cover both paths.
    for (let round = 0; round < 3; round++) {
      for (const [variables, message] of invalid) {
        const response = await app.inject({
          method: 'POST',
          url: '/graphql',
          payload: { query, variables },
        });
        expect(response.statusCode).toBe(400);
        const body = response.json<{
          data: unknown;
          errors: { message: string; extensions: { code: string } }[];
        }>();
        expect(body.data).toBeNull();
        expect(body.errors[0]?.message).toContain(message);
        expect(body.errors[0]?.extensions.code).toBe('BAD_USER_INPUT');
      }
    }
    const valid = await app.inject({
      method: 'POST',
      url: '/graphql',
      payload: { query, variables: { u: 'u1', c: [{ itemId: 'a' }] } },
    });
    expect(valid.statusCode).toBe(200);
    expect(valid.json<{ data: { rank: { requestId: string } } }>().data.rank.requestId).toBe(
      valid.headers['x-request-id'],
    );
  });
});

describe('readiness with a dependency down', () => {
  it.each([
    ['kafka', 'all', 503, { KAFKA_BROKERS: '127.0.0.1:1' }],
    ['kafka', 'api', 200, { KAFKA_BROKERS: '127.0.0.1:1' }],
    ['redis', 'all', 200, { REDIS_URL: 'redis://127.0.0.1:1' }],
    ['redis', 'all', 200, { REDIS_CLUSTER_NODES: '127.0.0.1:1,127.0.0.1:2' }],
    ['postgres', 'all', 503, { DATABASE_URL: 'postgres://postgres@127.0.0.1:1/none' }],
  ])('reports %s down (role %s) as failed, status %d', async (name, role, status, overrides) => {
    const context = await createTestContext({ ...overrides, ROLE: role });
    if (name !== 'kafka') await context.createServiceTopics();
    const app = await startApp(context);
    try {
      const started = Date.now();
      const response = await app.inject({ method: 'GET', url: '/health/ready' });
      expect(Date.now() - started).toBeLessThan(10_000);
      // Only what the role cannot work without makes it unready (ranking degrades without Redis).
      expect(response.statusCode).toBe(status);
      const body = response.json<{ checks: { name: string; ok: boolean; error?: string }[] }>();
      const failed = body.checks.filter((check) => !check.ok).map((check) => check.name);
      // The embedding worker cannot work without PostgreSQL either; whether its first pass has
      // failed by now is a matter of timing.
      expect(failed.filter((check) => check !== 'embedding-worker' || name !== 'postgres')).toEqual(
        [name],
      );
    } finally {
      await app.close();
      await context.cleanup();
    }
  });
});
