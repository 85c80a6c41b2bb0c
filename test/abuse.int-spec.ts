import { INestApplicationContext } from '@nestjs/common';
import { NestFastifyApplication } from '@nestjs/platform-fastify';
import { Consumer, Producer } from 'kafkajs';
import { DLQ_HEADERS } from '../src/modules/ingest/ingest.service';
import { MAX_OPERATION_LABELS } from '../src/modules/metrics/graphql-hooks';
import { catalogItem, userEvent } from './support/factories';
import { kafkaFor, query, startIngest } from './support/ingest-helpers';
import { startApp } from './support/app';
import { RANK_QUERY } from './support/ranking-helpers';
import { createTestContext, TestContext } from './support/test-context';
import { eventually } from './support/poll';

/**
 * Abuse on the real stack (issue #8): every hostile input is refused with a clear error naming the
 * field and the reason, quickly, and the service stays healthy afterwards. Covered elsewhere, not
 * repeated here: invalid UTF-8, bad JSON, missing and wrong fields, an oversized value on
 * `user.events` (test/ingest.int-spec.ts); more candidates than RANK_MAX_CANDIDATES, duplicate ids,
 * unknown profiles (test/ranking.int-spec.ts); mutations without a key or with a `read` key
 * (test/auth.int-spec.ts).
 */

jest.setTimeout(120_000);

const MiB = 1024 * 1024;
const MAX_VALUE_BYTES = 65_536;

interface Row {
  readonly surface: string;
  readonly input: string;
  readonly outcome: string;
  readonly ms: number;
}
const table: Row[] = [];

function printTable(): void {
  const lines = [
    '| surface | input | outcome | ms to reject |',
    '| --- | --- | --- | ---: |',
    ...table.map(
      (row) =>
        `| ${row.surface} | ${row.input} | ${row.outcome.replace(/\|/g, '\\|')} | ${row.ms.toFixed(1)} |`,
    ),
  ];
  console.log(`abuse cases (times measured in the jest process):\n${lines.join('\n')}`);
}

interface GraphqlErrorBody {
  readonly message: string;
  readonly extensions: { readonly code?: string; readonly field?: string };
}

interface Answer {
  readonly status: number;
  readonly errors: readonly GraphqlErrorBody[] | undefined;
  readonly ms: number;
}

let context: TestContext;
let api: NestFastifyApplication;
let ingest: INestApplicationContext | undefined;
let producer: Producer;
let deadLetterWatcher: Consumer;
const extraTopics: string[] = [];
/** Dead letters by key, with the time they arrived. */
const deadLetters = new Map<
  string,
  { headers: Record<string, string>; size: number; arrivedAt: number }
>();

async function post(body: string | object): Promise<Answer> {
  const payload = typeof body === 'string' ? body : JSON.stringify(body);
  const started = performance.now();
  const response = await api.inject({
    method: 'POST',
    url: '/graphql',
    headers: { 'content-type': 'application/json' },
    payload,
  });
  const ms = performance.now() - started;
  const parsed = response.json<{ errors?: GraphqlErrorBody[] }>();
  return { status: response.statusCode, errors: parsed.errors, ms };
}

/** Ready, and an ordinary rank query answers. */
async function expectHealthy(): Promise<void> {
  const ready = await api.inject({ method: 'GET', url: '/health/ready' });
  expect(ready.json<{ status: string }>().status).toBe('ok');
  const rank = await post({
    query: RANK_QUERY,
    variables: { userId: 'healthy-user', candidates: [{ itemId: 'item-a' }, { itemId: 'item-b' }] },
  });
  expect(rank.errors).toBeUndefined();
  expect(rank.status).toBe(200);
}

beforeAll(async () => {
  context = await createTestContext({
    AUTH_MODE: 'off',
    INGEST_MAX_VALUE_BYTES: String(MAX_VALUE_BYTES),
    INGEST_RETRY_INITIAL_MS: '50',
    INGEST_RETRY_MAX_MS: '500',
  });
  const { config } = context;
  const prefix = config.kafka.topicPrefix;
  // The source topics accept 4 MiB (an operator raised the limit); the dead-letter topics keep the
  // broker default (1 MiB), so a 2 MiB dead letter would not fit unless it is cut.
  const large = [{ name: 'max.message.bytes', value: String(4 * MiB) }];
  const topics = [
    { topic: `${prefix}user.events`, numPartitions: 1, configEntries: large },
    { topic: `${prefix}catalog.items`, numPartitions: 1, configEntries: large },
    { topic: `${prefix}user.events.dlq`, numPartitions: 1 },
    { topic: `${prefix}catalog.items.dlq`, numPartitions: 1 },
    { topic: `${prefix}default-limit`, numPartitions: 1 },
  ];
  const kafka = kafkaFor(config);
  const admin = kafka.admin();
  await admin.connect();
  await admin.createTopics({ topics, waitForLeaders: true });
  extraTopics.push(...topics.map((topic) => topic.topic));
  await admin.disconnect();
  // The rest with the broker's defaults (the served-slate log's).
  await context.createServiceTopics();

  producer = kafka.producer();
  await producer.connect();
  deadLetterWatcher = kafka.consumer({ groupId: `abuse-dlq-${context.id}` });
  await deadLetterWatcher.connect();
  await deadLetterWatcher.subscribe({
    topics: [`${prefix}user.events.dlq`, `${prefix}catalog.items.dlq`],
    fromBeginning: true,
  });
  await deadLetterWatcher.run({
    eachMessage: ({ message }) => {
      const headers: Record<string, string> = {};
      for (const [name, value] of Object.entries(message.headers ?? {})) {
        if (value !== undefined) headers[name] = value.toString();
      }
      deadLetters.set(message.key?.toString() ?? '', {
        headers,
        size: message.value?.length ?? 0,
        arrivedAt: performance.now(),
      });
      return Promise.resolve();
    },
  });

  api = await startApp(config, { role: 'api' });
  ingest = await startIngest(config);
});

afterAll(async () => {
  printTable();
  await ingest?.close();
  await api.close();
  await deadLetterWatcher.disconnect();
  await producer.disconnect();
  const admin = kafkaFor(context.config).admin();
  await admin.connect();
  await admin.deleteTopics({ topics: extraTopics }).catch(() => undefined);
  await admin.disconnect();
  await context.cleanup();
});

interface GraphqlCase {
  readonly input: string;
  readonly body: () => string | object;
  readonly status: number;
  readonly field?: string;
  readonly message: RegExp;
}

const RANK_ONE = 'rank(userId: "u", candidates: [{ itemId: "x" }]) { degraded }';
const rankWith = (variables: Record<string, unknown>) => ({
  query: RANK_QUERY,
  variables: { userId: 'u', candidates: [{ itemId: 'x' }], ...variables },
});
const fragmentChain = (count: number) => {
  let fragments = 'fragment F0 on Health { status }';
  for (let i = 1; i < count; i++) {
    fragments += ` fragment F${i} on Health { ...F${i - 1} ...F${i - 1} }`;
  }
  return `${fragments} { health { ...F${count - 1} } }`;
};

const graphqlCases: GraphqlCase[] = [
  {
    input: 'rank: 10,000 candidates with text and a feature (3.6 MB body)',
    body: () =>
      rankWith({
        candidates: Array.from({ length: 10_000 }, (_, i) => ({
          itemId: `item-${i}`,
          text: 'x'.repeat(300),
          features: [{ name: 'margin', value: 1 }],
        })),
      }),
    status: 400,
    field: 'candidates',
    message: /^candidates: at most 1000 list elements \(got 10000\)$/,
  },
  {
    input: 'rank: userId of 1 MiB',
    body: () => rankWith({ userId: 'u'.repeat(MiB) }),
    status: 200,
    field: 'userId',
    message: /^userId: must be 1-256 characters$/,
  },
  {
    input: 'rank: candidate text of 5 MiB (body limit 4 MiB)',
    body: () => rankWith({ candidates: [{ itemId: 'x', text: 't'.repeat(5 * MiB) }] }),
    status: 413,
    message: /too large/,
  },
  {
    input: 'rank: candidate text of 3 MiB',
    body: () => rankWith({ candidates: [{ itemId: 'x', text: 't'.repeat(3 * MiB) }] }),
    status: 200,
    field: 'candidates[0].text',
    message: /at most 10000 characters/,
  },
  {
    input: 'rank: profile name of 1 MiB',
    body: () => rankWith({ profile: 'p'.repeat(MiB) }),
    status: 200,
    field: 'profile',
    message: /^profile: must be 1-64 letters, digits, "_" or "-"$/,
  },
  {
    input: 'rank: userId with U+0000',
    body: () => rankWith({ userId: 'user\u0000' }),
    status: 200,
    field: 'userId',
    message: /must not contain control characters/,
  },
  {
    input: 'rank: candidate itemId with U+0007',
    body: () => rankWith({ candidates: [{ itemId: 'item\u0007' }] }),
    status: 200,
    field: 'candidates[0].itemId',
    message: /must not contain control characters/,
  },
  {
    input: 'recommend: userId with a newline',
    body: () => ({ query: '{ recommend(userId: "a\\nb") { degraded } }' }),
    status: 200,
    field: 'userId',
    message: /must not contain control characters/,
  },
  {
    input: 'upsertRankingProfile: boosted itemId with U+0000',
    body: () => ({
      query: `mutation { upsertRankingProfile(profile: { name: "p", weights: [{ feature: "model", weight: 1 }],
        boosts: [{ itemIds: ["a\\u0000"], value: 1 }] }) { name } }`,
    }),
    status: 200,
    field: 'boosts[0].itemIds[0]',
    message: /must not contain control characters/,
  },
  {
    input: 'upsertItems: 1,001 items',
    body: () => ({
      query: 'mutation($items: [ItemInput!]!) { upsertItems(items: $items) { received } }',
      variables: {
        items: Array.from({ length: 1001 }, (_, i) => ({ itemId: `i${i}`, title: 't' })),
      },
    }),
    status: 400,
    field: 'items',
    message: /^items: at most 1000 list elements \(got 1001\)$/,
  },
  {
    input: 'query depth 15 (introspection; limit 12)',
    body: () => ({
      query: `{ __schema { queryType { fields { type ${'{ ofType '.repeat(10)}{ name }${' }'.repeat(10)} } } } }`,
    }),
    status: 400,
    message: /query depth \(15\) exceeds the query depth limit of 12/,
  },
  {
    input: 'document nested 5,000 levels (15 KB)',
    body: () => ({ query: `{${'a{'.repeat(5000)}b${'}'.repeat(5000)}}` }),
    status: 400,
    message: /^Query document is nested too deeply to parse$/,
  },
  {
    input: '300 aliases of recommend (11 KB)',
    body: () => ({
      query: `{ ${Array.from({ length: 300 }, (_, i) => `a${i}: recommend(userId: "u") { degraded }`).join(' ')} }`,
    }),
    status: 400,
    message: /^Query uses more than 20 aliases$/,
  },
  {
    input: '500 aliases of rank (31 KB)',
    body: () => ({
      query: `{ ${Array.from({ length: 500 }, (_, i) => `a${i}: ${RANK_ONE}`).join(' ')} }`,
    }),
    status: 400,
    message: /^Query document is \d+ bytes; the limit is 16384/,
  },
  {
    input: '2,000 repeated fields',
    body: () => ({ query: `{ health { ${'status '.repeat(2000)}} }` }),
    status: 400,
    message: /^Query complexity exceeds the limit of 500 fields$/,
  },
  {
    input: '40 fragments, each spreading the previous twice (2^40 fields)',
    body: () => ({ query: fragmentChain(40) }),
    status: 400,
    message: /^Query complexity exceeds the limit of 500 fields$/,
  },
  {
    input: 'fragment cycle',
    body: () => ({
      query: 'fragment A on Health { ...B } fragment B on Health { ...A } { health { ...A } }',
    }),
    status: 400,
    message: /^Cannot spread fragment "A" within itself via "B"\.$/,
  },
  {
    input: '400 unused fragments',
    body: () => ({
      query: `${Array.from({ length: 400 }, (_, i) => `fragment F${i} on Health { status }`).join(' ')} { health { status } }`,
    }),
    status: 400,
    message: /^Fragment "F0" is never used\.$/,
  },
  {
    input: 'batch of 2 operations (JSON array; batching is off)',
    body: () => [{ query: '{ health { status } }' }, { query: '{ health { status } }' }],
    status: 400,
    message: /^body must be object$/,
  },
  {
    input: 'query document of 3 MiB',
    body: () => ({ query: `{ health { status } ${' '.repeat(3 * MiB)}}` }),
    status: 400,
    message: /^Query document is \d+ bytes; the limit is 16384/,
  },
  {
    input: 'a JSON AST instead of a document',
    body: () => ({ query: JSON.stringify({ kind: 'Document', definitions: [{ kind: 'Nope' }] }) }),
    status: 400,
    field: 'query',
    message: /^query: must be a GraphQL document, not JSON$/,
  },
  {
    input: 'malformed JSON body',
    body: () => '{"query": ',
    status: 400,
    message: /JSON/,
  },
];

describe('GraphQL abuse', () => {
  it.each(graphqlCases)('refuses $input', async ({ input, body, status, field, message }) => {
    const answer = await post(body());
    const first = answer.errors?.[0];
    table.push({
      surface: 'GraphQL',
      input,
      outcome: `${answer.status} ${first?.extensions.code ?? '-'}${field === undefined ? '' : ` field=${field}`}: ${first?.message.slice(0, 90) ?? ''}`,
      ms: answer.ms,
    });
    expect(answer.status).toBe(status);
    expect(first?.extensions.code).toBe('BAD_USER_INPUT');
    expect(first?.message).toMatch(message);
    if (field !== undefined) expect(first?.extensions.field).toBe(field);
    expect(answer.ms).toBeLessThan(2000);
    await expectHealthy();
  });

  it('keeps the per-operation metric bounded under 1,000 distinct operation names', async () => {
    const started = performance.now();
    for (let i = 0; i < 1000; i++) {
      const answer = await post({ query: `query Op${i} { health { status } }` });
      expect(answer.status).toBe(200);
    }
    const ms = (performance.now() - started) / 1000;
    const metrics = (await api.inject({ method: 'GET', url: '/metrics' })).body;
    const labels = new Set(
      [
        ...metrics.matchAll(/graphql_request_duration_seconds_count\{[^}]*operation="([^"]*)"/g),
      ].map((match) => match[1]),
    );
    table.push({
      surface: 'GraphQL',
      input: '1,000 distinct operation names (ms per request)',
      outcome: `200; ${labels.size} operation label values (bound ${MAX_OPERATION_LABELS} + other)`,
      ms,
    });
    expect(labels.has('other')).toBe(true);
    expect(labels.size).toBeLessThanOrEqual(MAX_OPERATION_LABELS + 1);
    await expectHealthy();
  });
});

type Topic = 'user.events' | 'catalog.items';

interface KafkaCase {
  readonly input: string;
  readonly topic: Topic;
  readonly value: () => Buffer | string | null;
  /** The expected `dlq-error` header; absent: the message is stored. */
  readonly deadLetter?: RegExp;
  /** For stored messages: the event or item id to find. */
  readonly storedId?: string;
}

const withContext = (context: string) =>
  JSON.stringify(userEvent()).replace(/}$/, `,"context":${context}}`);

const kafkaCases: KafkaCase[] = [
  {
    input: 'catalog.items: invalid UTF-8 bytes',
    topic: 'catalog.items',
    value: () => Buffer.from([0x7b, 0xff, 0xfe, 0x7d]),
    deadLetter: /^value: invalid UTF-8$/,
  },
  {
    input: 'user.events: tombstone (null value)',
    topic: 'user.events',
    value: () => null,
    deadLetter: /^value: empty message$/,
  },
  {
    input: 'catalog.items: tombstone (null value)',
    topic: 'catalog.items',
    value: () => null,
    deadLetter: /^value: empty message$/,
  },
  {
    input: 'user.events: 2 MiB value (topic allows 4 MiB)',
    topic: 'user.events',
    value: () => JSON.stringify({ ...userEvent(), context: { pad: 'x'.repeat(2 * MiB) } }),
    deadLetter: /^value: \d+ bytes exceeds the limit of 65536$/,
  },
  {
    input: 'catalog.items: 2 MiB value (topic allows 4 MiB)',
    topic: 'catalog.items',
    value: () => JSON.stringify(catalogItem({ description: 'd'.repeat(2 * MiB) })),
    deadLetter: /^value: \d+ bytes exceeds the limit of 65536$/,
  },
  {
    input: 'user.events: JSON number',
    topic: 'user.events',
    value: () => '42',
    deadLetter: /^value: must be a JSON object$/,
  },
  {
    input: 'user.events: JSON array',
    topic: 'user.events',
    value: () => JSON.stringify([userEvent()]),
    deadLetter: /^value: must be a JSON object$/,
  },
  {
    input: 'catalog.items: JSON string',
    topic: 'catalog.items',
    value: () => '"item"',
    deadLetter: /^value: must be a JSON object$/,
  },
  {
    input: 'user.events: userId with U+0000',
    topic: 'user.events',
    value: () => JSON.stringify(userEvent({ userId: 'user\u0000' })),
    deadLetter: /^userId: must not contain U\+0000$/,
  },
  {
    input: 'user.events: U+0000 inside context',
    topic: 'user.events',
    value: () => JSON.stringify(userEvent({ context: { page: 'home\u0000' } })),
    deadLetter: /^context\.page: must not contain U\+0000$/,
  },
  {
    input: 'user.events: context nested 5,000 levels',
    topic: 'user.events',
    value: () => withContext(`${'{"a":'.repeat(5000)}1${'}'.repeat(5000)}`),
    deadLetter: /^context(\.a)+: nested deeper than 32 levels$/,
  },
  {
    input: 'catalog.items: description with U+0000',
    topic: 'catalog.items',
    value: () => JSON.stringify(catalogItem({ description: 'soft\u0000' })),
    deadLetter: /^description: must not contain U\+0000$/,
  },
  {
    input: 'catalog.items: itemId with U+0007',
    topic: 'catalog.items',
    value: () => JSON.stringify(catalogItem({ itemId: 'item\u0007' })),
    deadLetter: /^itemId: must not contain control characters$/,
  },
  {
    input: 'user.events: unknown keys (top level)',
    topic: 'user.events',
    value: () =>
      JSON.stringify({ ...userEvent({ eventId: 'evt-unknown-keys' }), colour: 'red', extra: {} }),
    storedId: 'evt-unknown-keys',
  },
  {
    input: 'catalog.items: unknown keys (top level)',
    topic: 'catalog.items',
    value: () => JSON.stringify({ ...catalogItem({ itemId: 'item-unknown-keys' }), colour: 'red' }),
    storedId: 'item-unknown-keys',
  },
];

async function isStored(topic: Topic, id: string): Promise<boolean> {
  const sql =
    topic === 'user.events'
      ? 'SELECT 1 FROM events WHERE event_id = $1'
      : 'SELECT 1 FROM items WHERE item_id = $1';
  return (await query(context.config.postgres.url, sql, [id])).length > 0;
}

describe('Kafka abuse', () => {
  it.each(kafkaCases.map((kafkaCase, i) => ({ ...kafkaCase, key: `abuse-${i}` })))(
    'handles $input',
    async ({ input, topic, value, deadLetter, storedId, key }) => {
      const started = performance.now();
      await producer.send({
        topic: `${context.config.kafka.topicPrefix}${topic}`,
        messages: [{ key, value: value() }],
      });
      let outcome: string;
      let ms: number;
      if (deadLetter !== undefined) {
        await eventually(() => Promise.resolve(deadLetters.has(key)), 30_000, {
          what: `dead letter ${key}`,
        });
        const letter = deadLetters.get(key);
        const error = letter?.headers[DLQ_HEADERS.error] ?? '';
        expect(error).toMatch(deadLetter);
        expect(letter?.headers[DLQ_HEADERS.topic]).toBe(
          `${context.config.kafka.topicPrefix}${topic}`,
        );
        const cut = letter?.headers[DLQ_HEADERS.valueBytes];
        if (cut !== undefined) expect(letter?.size).toBe(MAX_VALUE_BYTES);
        outcome = `DLQ ${DLQ_HEADERS.error}="${error}"${cut === undefined ? '' : ` (value cut to ${MAX_VALUE_BYTES} B, ${DLQ_HEADERS.valueBytes}=${cut})`}`;
        ms = (letter?.arrivedAt ?? started) - started;
      } else {
        const id = storedId ?? '';
        await eventually(() => isStored(topic, id), 30_000, { what: `stored ${id}` });
        ms = performance.now() - started;
        outcome = 'stored; unknown keys dropped';
      }
      table.push({ surface: 'Kafka', input, outcome, ms });
      await expectHealthy();
    },
  );

  it('stores an event with a null key (the key only routes)', async () => {
    const started = performance.now();
    await producer.send({
      topic: `${context.config.kafka.topicPrefix}user.events`,
      messages: [{ key: null, value: JSON.stringify(userEvent({ eventId: 'evt-null-key' })) }],
    });
    await eventually(() => isStored('user.events', 'evt-null-key'), 30_000, {
      what: 'evt-null-key',
    });
    table.push({
      surface: 'Kafka',
      input: 'user.events: null key, valid value',
      outcome: 'stored (userId comes from the value)',
      ms: performance.now() - started,
    });
  });

  it('is refused by the broker: 2 MiB on a topic with the default 1 MiB limit', async () => {
    const started = performance.now();
    const error = await producer
      .send({
        topic: `${context.config.kafka.topicPrefix}default-limit`,
        messages: [{ key: 'big', value: 'x'.repeat(2 * MiB) }],
      })
      .then(
        () => undefined,
        (reason: unknown) => reason,
      );
    const message = error instanceof Error ? error.message : String(error);
    table.push({
      surface: 'Kafka',
      input: '2 MiB value on a topic with the broker default limit',
      outcome: `producer error: ${message}`,
      ms: performance.now() - started,
    });
    expect(message).toMatch(/larger than the max message size/);
  });

  it('carries on: valid messages after the abuse are stored, nothing malformed is', async () => {
    const prefix = context.config.kafka.topicPrefix;
    await producer.send({
      topic: `${prefix}user.events`,
      messages: [{ key: 'u', value: JSON.stringify(userEvent({ eventId: 'evt-after-abuse' })) }],
    });
    await producer.send({
      topic: `${prefix}catalog.items`,
      messages: [{ key: 'i', value: JSON.stringify(catalogItem({ itemId: 'item-after-abuse' })) }],
    });
    await eventually(() => isStored('user.events', 'evt-after-abuse'), 30_000, {
      what: 'evt-after-abuse',
    });
    await eventually(() => isStored('catalog.items', 'item-after-abuse'), 30_000, {
      what: 'item-after-abuse',
    });

    const events = await query<{ event_id: string; user_id: string; context: unknown }>(
      context.config.postgres.url,
      'SELECT event_id, user_id, context FROM events ORDER BY event_id',
    );
    expect(events.map((row) => row.event_id)).toEqual([
      'evt-after-abuse',
      'evt-null-key',
      'evt-unknown-keys',
    ]);
    expect(events.every((row) => row.context === null)).toBe(true);
    const items = await query<{ item_id: string }>(
      context.config.postgres.url,
      'SELECT item_id FROM items ORDER BY item_id',
    );
    expect(items.map((row) => row.item_id)).toEqual(['item-after-abuse', 'item-unknown-keys']);
    await expectHealthy();
  });
});
