import { INestApplicationContext } from '@nestjs/common';
import { createLogger } from '../src/common/logger';
import { DLQ_HEADERS } from '../src/modules/ingest/ingest.service';
import { createServer } from '../src/server';
import { catalogItem, eventMessage, userEvent } from './support/factories';
import { countEvents, produceRaw, query, readTopic, startIngest } from './support/ingest-helpers';
import { createTestContext, TestContext } from './support/test-context';
import { eventually } from './support/poll';

jest.setTimeout(60_000);

const TS = '2025-01-01T00:00:00.000Z';
/**
 * Valid JSON that passes validation but that PostgreSQL refuses: a lone UTF-16 surrogate, which
 * JSON.stringify writes as `\ud800` and jsonb cannot hold.
 */
const LONE_SURROGATE = '\ud800';

/** Data the database itself refuses must not hold the partition: it is isolated and dead-lettered. */
describe('rows PostgreSQL refuses', () => {
  let context: TestContext;
  let app: INestApplicationContext | undefined;

  beforeAll(async () => {
    context = await createTestContext({
      INGEST_RETRY_INITIAL_MS: '50',
      INGEST_RETRY_MAX_MS: '200',
    });
    await context.createTopics([
      { name: 'user.events' },
      { name: 'catalog.items' },
      { name: 'user.events.dlq' },
      { name: 'catalog.items.dlq' },
    ]);
    app = await startIngest(context.config);
  });
  afterAll(async () => {
    await app?.close();
    await context.cleanup();
  });

  it('dead-letters the refused event and stores the rest of its batch', async () => {
    const { config } = context;
    const valid = Array.from({ length: 30 }, (_, i) =>
      userEvent({ userId: `r-user-${String(i % 3)}`, itemId: 'r-item', timestamp: TS }),
    );
    const refused = userEvent({ context: { note: `a${LONE_SURROGATE}b` }, timestamp: TS });
    await produceRaw(config, 'user.events', [
      ...valid.slice(0, 15).map(eventMessage),
      eventMessage(refused),
      ...valid.slice(15).map(eventMessage),
    ]);

    await eventually(async () => (await countEvents(config.postgres.url)).rows >= 30, 30_000, {
      what: 'rows',
    });
    const [letter] = await readTopic(config, 'user.events.dlq', 1);
    expect(letter.headers[DLQ_HEADERS.reason]).toMatch(/^refused by PostgreSQL: /);
    expect(letter.headers[DLQ_HEADERS.field]).toBe('value');
    expect(letter.value?.toString()).toBe(JSON.stringify(refused));
    const stored = await query<{ event_id: string }>(
      config.postgres.url,
      'SELECT event_id FROM events',
    );
    expect(new Set(stored.map((row) => row.event_id))).toEqual(
      new Set(valid.map((event) => event.eventId)),
    );

    // The consumer carries on with the partition.
    const later = userEvent({ timestamp: TS });
    await produceRaw(config, 'user.events', [eventMessage(later)]);
    await eventually(
      async () =>
        (
          await query(config.postgres.url, 'SELECT 1 FROM events WHERE event_id = $1', [
            later.eventId,
          ])
        ).length === 1,
      30_000,
      { what: 'the next event' },
    );
  });

  it('dead-letters a refused item and stores the others', async () => {
    const { config } = context;
    const good = [catalogItem(), catalogItem(), catalogItem()];
    const bad = catalogItem({ tags: ['ok', `x${LONE_SURROGATE}`] });
    await produceRaw(
      config,
      'catalog.items',
      [good[0], bad, good[1], good[2]].map((item) => ({
        key: item.itemId,
        value: JSON.stringify(item),
      })),
    );
    const [letter] = await readTopic(config, 'catalog.items.dlq', 1);
    expect(letter.headers[DLQ_HEADERS.reason]).toMatch(/^refused by PostgreSQL: /);
    expect(letter.key).toBe(bad.itemId);
    await eventually(
      async () => (await query(config.postgres.url, 'SELECT 1 FROM items')).length === 3,
      30_000,
      { what: 'items' },
    );
    const items = await query<{ item_id: string }>(
      config.postgres.url,
      'SELECT item_id FROM items',
    );
    expect(new Set(items.map((row) => row.item_id))).toEqual(
      new Set(good.map((item) => item.itemId)),
    );
  });

  it('answers upsertItems with BAD_USER_INPUT naming items when PostgreSQL refuses them', async () => {
    const server = await createServer({ ...context.config, role: 'api' }, createLogger('silent'));
    await server.init();
    await server.getHttpAdapter().getInstance().ready();
    try {
      const response = await server.inject({
        method: 'POST',
        url: '/graphql',
        payload: {
          query: `mutation($items: [ItemInput!]!) { upsertItems(items: $items) { received } }`,
          variables: { items: [{ itemId: 'gql-refused', title: 'Lamp', tags: [LONE_SURROGATE] }] },
        },
      });
      const body = response.json<{
        errors?: { message: string; extensions: { code: string; field: string } }[];
      }>();
      expect(body.errors?.[0]?.extensions).toMatchObject({
        code: 'BAD_USER_INPUT',
        field: 'items',
      });
      expect(body.errors?.[0]?.message).toMatch(/refused by PostgreSQL/);
    } finally {
      await server.close();
    }
  });
});
