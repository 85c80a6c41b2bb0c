import { Client } from 'pg';
import { createLogger } from '../src/common/logger';
import { PgListener } from '../src/infra/pg-listener';
import { startApp } from './support/app';
import { eventually } from './support/poll';
import { TcpProxy } from './support/tcp-proxy';
import { createTestContext, TestContext } from './support/test-context';

jest.setTimeout(60_000);

describe('the LISTEN connection', () => {
  let context: TestContext;
  let notifier: Client;
  const proxy = new TcpProxy('127.0.0.1', 5432);

  beforeAll(async () => {
    context = await createTestContext();
    notifier = new Client({ connectionString: context.config.postgres.directUrl });
    await notifier.connect();
    await proxy.start();
  });
  afterAll(async () => {
    await notifier.end();
    await proxy.cut();
    await context.cleanup();
  });

  // A server host gone without a reset leaves the connection open and silent: nothing says it is
  // gone, and notifications would be lost until TCP keepalive (two hours) noticed.
  it('reconnects when its connection goes silent, says so, and receives again', async () => {
    const viaProxy = new URL(context.config.postgres.directUrl);
    viaProxy.port = String(proxy.port);
    const listener = new PgListener(
      { ...context.config.postgres, directUrl: viaProxy.toString() },
      createLogger('silent'),
      500,
    );
    const received: string[] = [];
    let reconnects = 0;
    listener.onReconnect(() => {
      reconnects++;
    });
    try {
      await listener.listen('listener_test', (payload) => received.push(payload));
      await notifier.query("NOTIFY listener_test, 'before'");
      await eventually(async () => Promise.resolve(received.includes('before')), 5000, {
        what: 'a notification before the silence',
      });
      proxy.silence();
      await eventually(async () => Promise.resolve(reconnects === 1), 10_000, {
        what: 'the reconnect',
      });
      await notifier.query("NOTIFY listener_test, 'after'");
      await eventually(async () => Promise.resolve(received.includes('after')), 5000, {
        what: 'a notification over the new connection',
      });
    } finally {
      await listener.close();
    }
  });
});

describe('the LISTEN connection of a process', () => {
  let context: TestContext;
  let pg: Client;

  beforeAll(async () => {
    context = await createTestContext({ AUTH_MODE: 'api-key' });
    await context.createServiceTopics();
    pg = new Client({ connectionString: context.config.postgres.directUrl });
    await pg.connect();
  });
  afterAll(async () => {
    await pg.end();
    await context.cleanup();
  });

  // Each is a direct connection (LISTEN does not pass a transaction pooler), held for good.
  it('is one per process, whatever its modules listen for (role all: activations, API-key changes, queued runs, items to embed)', async () => {
    const app = await startApp({ ...context.config, role: 'all' });
    try {
      const { rows } = await pg.query<{ count: number }>(
        `SELECT count(*)::int AS count FROM pg_stat_activity
          WHERE datname = current_database() AND application_name = 'recsys-listener'`,
      );
      // Before: three, one per module, and the embedding worker's on a pooled direct connection.
      expect(rows[0].count).toBe(1);
    } finally {
      await app.close();
    }
  });
});
