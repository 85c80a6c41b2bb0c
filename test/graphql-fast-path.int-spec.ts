import { GraphQLSchemaHost } from '@nestjs/graphql';
import { NestFastifyApplication } from '@nestjs/platform-fastify';
import { GraphQLObjectType } from 'graphql';
import { PinnedModels, startApp } from './support/app';
import { fakeCategoryModel } from './support/fakes/category-model';
import { insertItems, RANK_QUERY } from './support/ranking-helpers';
import { createTestContext, TestContext } from './support/test-context';

const ITEMS = [
  { itemId: 'fp-1', title: 'Kettle', category: 'kitchen', price: 30 },
  { itemId: 'fp-2', title: 'Teapot', category: 'kitchen', price: 12.5 },
  { itemId: 'fp-3', title: 'Lamp', category: 'lighting', price: 80 },
  { itemId: 'fp-4', title: 'Bulb', category: 'lighting' },
];

/**
 * The requests both modes must answer alike but for the request id. (Alike as JSON: on an error
 * without data the fast path writes `errors` before `data`, plain Mercurius after.)
 */
const CASES: Record<string, Record<string, unknown>> = {
  'candidates with caller features, one unknown to the catalog': {
    userId: 'fp-user',
    candidates: [
      { itemId: 'fp-3', features: [{ name: 'margin', value: 0.4 }] },
      { itemId: 'fp-1' },
      { itemId: 'fp-unknown' },
      { itemId: 'fp-2', features: [{ name: 'margin', value: 1 }] },
    ],
  },
  'an invalid nested variable': {
    userId: 'fp-user',
    candidates: [{ itemId: 'fp-1', features: [{ name: 'margin', value: 'high' }] }],
  },
  'a missing required variable': { candidates: [{ itemId: 'fp-1' }] },
  'a list over GRAPHQL_MAX_LIST_LENGTH': {
    userId: 'fp-user',
    candidates: ITEMS.map(({ itemId }) => ({ itemId })).concat({ itemId: 'fp-5' }),
  },
  'a rank refused by the service (duplicate ids)': {
    userId: 'fp-user',
    candidates: [{ itemId: 'fp-1' }, { itemId: 'fp-1' }],
  },
};

describe('GRAPHQL_FAST_PATH=true and =false answer alike (real stack, api role)', () => {
  let context: TestContext;
  let fast: NestFastifyApplication;
  let plain: NestFastifyApplication;

  beforeAll(async () => {
    context = await createTestContext({ RANK_MAX_CANDIDATES: '4', GRAPHQL_MAX_LIST_LENGTH: '4' });
    await context.createServiceTopics();
    await insertItems(context.config.postgres.url, ITEMS);
    const model = fakeCategoryModel(ITEMS, { versionId: 'fp' });
    const { config } = context;
    fast = await startApp(
      { ...config, graphql: { ...config.graphql, fastPath: true } },
      { role: 'api', models: new PinnedModels({ model }) },
    );
    plain = await startApp(
      { ...config, graphql: { ...config.graphql, fastPath: false } },
      { role: 'api', models: new PinnedModels({ model }) },
    );
  });
  afterAll(async () => {
    await fast.close();
    await plain.close();
    await context.cleanup();
  });

  async function rank(app: NestFastifyApplication, variables: Record<string, unknown>) {
    const response = await app.inject({
      method: 'POST',
      url: '/graphql',
      payload: { query: RANK_QUERY, variables },
    });
    const requestId = String(response.headers['x-request-id']);
    const body = response.body.replaceAll(`"requestId":"${requestId}"`, '"requestId":"…"');
    return { status: response.statusCode, body: JSON.parse(body) as unknown };
  }

  it.each(Object.entries(CASES))('%s', async (_, variables) => {
    // Mercurius compiles a query on its second use: three rounds cover graphql-js and graphql-jit.
    for (let round = 0; round < 3; round++) {
      const answer = await rank(fast, variables);
      expect(await rank(plain, variables)).toEqual(answer);
    }
  });

  it('compares two different paths: only the fast one drops the property resolvers', () => {
    const resolverOf = (app: NestFastifyApplication) =>
      (app.get(GraphQLSchemaHost).schema.getType('RankedItem') as GraphQLObjectType).getFields()
        .score.resolve;
    expect(resolverOf(fast)).toBeUndefined();
    expect(resolverOf(plain)).toBeInstanceOf(Function);
  });

  it('answers the rank with every part (the comparison above is not of empty answers)', async () => {
    const { status, body } = await rank(fast, Object.values(CASES)[0] ?? {});
    expect(status).toBe(200);
    const { items } = (body as { data: { rank: { items: { parts: { name: string }[] }[] } } }).data
      .rank;
    expect(items).toHaveLength(4);
    expect(items.flatMap((item) => item.parts.map((part) => part.name))).toEqual(
      expect.arrayContaining(['prior', 'popularity', 'price', 'feature:margin']),
    );
  });
});
