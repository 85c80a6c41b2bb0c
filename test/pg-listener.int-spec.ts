import { Client } from 'pg';
import { createLogger } from '../src/common/logger';
import { PgListener } from '../src/infra/pg-listener';
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
