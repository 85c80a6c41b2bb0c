import 'reflect-metadata';
import { Module } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import {
  Field,
  Float,
  GraphQLModule,
  GraphQLSchemaHost,
  ID,
  Info,
  ObjectType,
  Parent,
  Query,
  ResolveField,
  Resolver,
} from '@nestjs/graphql';
import { MercuriusDriver, MercuriusDriverConfig } from '@nestjs/mercurius';
import { FastifyAdapter, NestFastifyApplication } from '@nestjs/platform-fastify';
import Fastify, { FastifyInstance, FastifyRequest } from 'fastify';
import {
  GraphQLFloat,
  GraphQLID,
  GraphQLInputObjectType,
  GraphQLInt,
  GraphQLList,
  GraphQLNonNull,
  GraphQLObjectType,
  GraphQLResolveInfo,
  GraphQLScalarType,
  GraphQLSchema,
  GraphQLString,
} from 'graphql';
import mercurius, { MercuriusContext, MercuriusOptions } from 'mercurius';
import { mercuriusErrorFormatter } from '../errors';
import { requestLimitHooks } from '../limits';
import { propertyFieldHooks } from './property-fields';
import { deferredVariables, requestVariables } from './variables';

/**
 * Contract tests: the Mercurius, graphql-jit and @nestjs/graphql behaviours the fast path is built
 * on, each checked on the real libraries. A failure after an upgrade means the assumption named in
 * its describe block no longer holds. Mercurius loads its document cache with import(), which jest
 * runs only under --experimental-vm-modules (`npm run test:unit` sets it).
 */
function reliesOn(assumption: string, tests: () => void): void {
  describe(
    `the fast path relies on ${assumption}; re-check src/graphql/fast-path before upgrading`,
    tests,
  );
}

/** Set in the resolve info graphql-jit builds (its resolverInfoEnricher); graphql-js's lacks it. */
interface JitMarked {
  jit?: true;
}
type ProbeInfo = GraphQLResolveInfo & JitMarked;
type WithCompilerOptions = MercuriusOptions & {
  compilerOptions: { resolverInfoEnricher: (info: GraphQLResolveInfo) => JitMarked };
};

/** How often graphql-js or graphql-jit coerced a `Probe` variable. */
let coercions = 0;

const Probe = new GraphQLScalarType({
  name: 'Probe',
  parseValue: (value) => {
    coercions++;
    return `coerced:${String(value)}`;
  },
});
const Feature = new GraphQLInputObjectType({
  name: 'Feature',
  fields: {
    name: { type: new GraphQLNonNull(GraphQLString) },
    value: { type: new GraphQLNonNull(GraphQLFloat) },
  },
});
const Candidate = new GraphQLInputObjectType({
  name: 'Candidate',
  fields: {
    itemId: { type: new GraphQLNonNull(GraphQLID) },
    features: { type: new GraphQLList(new GraphQLNonNull(Feature)) },
  },
});
const schema = new GraphQLSchema({
  query: new GraphQLObjectType({
    name: 'Query',
    fields: {
      echo: {
        type: new GraphQLNonNull(GraphQLString),
        args: { value: { type: new GraphQLNonNull(Probe) } },
        resolve: (_root, args: { value: string }, _context, info: ProbeInfo) =>
          `${args.value} by ${info.jit ? 'graphql-jit' : 'graphql-js'}`,
      },
      count: {
        type: new GraphQLNonNull(GraphQLInt),
        args: { c: { type: new GraphQLNonNull(new GraphQLList(new GraphQLNonNull(Candidate))) } },
        resolve: (_root, args: { c: unknown[] }) => args.c.length,
      },
    },
  }),
});

const ECHO = 'query Echo($v: Probe!) { echo(value: $v) }';
const COUNT = 'query Count($c: [Candidate!]!) { count(c: $c) }';
const INVALID = { c: [{ itemId: 'a', features: [{ name: 'x', value: 'high' }] }] };

interface Setup {
  /** The route preHandler and preExecution hook of ./variables. */
  readonly deferred: boolean;
  readonly jit: number;
  /** Runs after the deferred variables' preExecution hook. */
  readonly preExecution?: (schema: unknown, document: unknown, context: MercuriusContext) => void;
  readonly preParsing?: (schema: unknown, source: string, context: MercuriusContext) => void;
  readonly maxListLength?: number;
}

const apps: FastifyInstance[] = [];
afterAll(async () => {
  await Promise.all(apps.map((app) => app.close()));
});

async function server(setup: Setup): Promise<FastifyInstance> {
  const app = Fastify();
  apps.push(app);
  const deferred = setup.deferred ? deferredVariables() : undefined;
  const options: WithCompilerOptions = {
    schema,
    jit: setup.jit,
    compilerOptions: { resolverInfoEnricher: () => ({ jit: true }) },
    errorFormatter: mercuriusErrorFormatter,
    ...(deferred ? { additionalRouteOptions: { preHandler: deferred.routePreHandler } } : {}),
  };
  await app.register(mercurius, options);
  if (deferred) app.graphql.addHook('preExecution', deferred.preExecution);
  const { preExecution, preParsing, maxListLength } = setup;
  if (preExecution) {
    app.graphql.addHook('preExecution', (s, document, context) => {
      preExecution(s, document, context);
      return Promise.resolve();
    });
  }
  if (preParsing) {
    app.graphql.addHook('preParsing', (s, source, context) => {
      preParsing(s, source, context);
      return Promise.resolve();
    });
  }
  if (maxListLength !== undefined) {
    const limits = requestLimitHooks({
      maxListLength,
      maxDocumentBytes: 10_000,
      maxComplexity: 100,
      maxAliases: 10,
    });
    app.graphql.addHook('preParsing', limits.preParsing);
  }
  return app;
}

async function post(app: FastifyInstance, query: string, variables: unknown) {
  const response = await app.inject({
    method: 'POST',
    url: '/graphql',
    payload: { query, variables },
  });
  return { status: response.statusCode, body: response.json<Record<string, unknown>>() };
}

/** Coercions of the `Probe` variable per request, over `requests` requests of the same query. */
async function coercionsPerRequest(app: FastifyInstance, requests: number): Promise<number[]> {
  const counts: number[] = [];
  for (let i = 0; i < requests; i++) {
    coercions = 0;
    expect((await post(app, ECHO, { v: `r${i}` })).status).toBe(200);
    counts.push(coercions);
  }
  return counts;
}

reliesOn(
  'Mercurius skipping its graphql-js variable coercion when the route preHandler removed body.variables',
  () => {
    it('coerces deferred variables once per request, graphql-jit compiled or not', async () => {
      // Control: without the deferral Mercurius coerces with graphql-js before the executor does
      // (but on the request that compiles).
      expect(await coercionsPerRequest(await server({ deferred: false, jit: 1 }), 3)).toEqual([
        2, 1, 2,
      ]);
      expect(await coercionsPerRequest(await server({ deferred: true, jit: 1 }), 3)).toEqual([
        1, 1, 1,
      ]);
    });

    it('lets invalid variables through to preExecution, so they fail only at execution', async () => {
      const reached = async (deferred: boolean) => {
        let calls = 0;
        const app = await server({ deferred, jit: 1, preExecution: () => calls++ });
        expect((await post(app, COUNT, INVALID)).status).toBe(400);
        return calls;
      };
      expect(await reached(false)).toBe(0);
      expect(await reached(true)).toBe(1);
    });
  },
);

reliesOn(
  'the executor running with the variables a preExecution hook returns, graphql-js on first use and graphql-jit (`jit: 1`) from the second',
  () => {
    it('answers with the deferred variables, by graphql-js once and by graphql-jit after', async () => {
      const app = await server({ deferred: true, jit: 1 });
      const answers = [];
      for (const v of ['a', 'b', 'c']) answers.push((await post(app, ECHO, { v })).body);
      expect(answers).toEqual([
        { data: { echo: 'coerced:a by graphql-js' } },
        { data: { echo: 'coerced:b by graphql-jit' } },
        { data: { echo: 'coerced:c by graphql-jit' } },
      ]);
    });

    it('never compiles with `jit: 0` (GRAPHQL_FAST_PATH=false)', async () => {
      const app = await server({ deferred: false, jit: 0 });
      for (const v of ['a', 'b', 'c']) {
        expect((await post(app, ECHO, { v })).body).toEqual({
          data: { echo: `coerced:${v} by graphql-js` },
        });
      }
    });
  },
);

reliesOn(
  "an invalid variable answering 400 without data, with graphql-js's message naming the field path (through our errorFormatter)",
  () => {
    const expected = {
      data: null,
      errors: [
        {
          message:
            'Variable "$c" got invalid value "high" at "c[0].features[0].value"; Float cannot represent non numeric value: "high"',
          locations: [{ line: 1, column: 13 }],
          extensions: { code: 'BAD_USER_INPUT' },
        },
      ],
    };

    it.each([
      ['deferred (fast path)', true, 1],
      ['in the body (plain Mercurius)', false, 0],
    ])('variables %s: the same body before and after compiling', async (_, deferred, jit) => {
      const app = await server({ deferred, jit });
      for (let round = 0; round < 3; round++) {
        expect(await post(app, COUNT, INVALID)).toEqual({ status: 400, body: expected });
      }
    });
  },
);

reliesOn(
  'the preParsing hook receiving context.reply.request with the parsed body (the list-length limit reads the variables there)',
  () => {
    it.each([true, false])('deferred: %s', async (deferred) => {
      const seen: { body: unknown; variables: unknown }[] = [];
      const capture = (_schema: unknown, _source: string, context: MercuriusContext) => {
        const request: FastifyRequest = context.reply.request;
        seen.push({ body: { ...(request.body as object) }, variables: requestVariables(request) });
      };
      const app = await server({ deferred, jit: 1, preParsing: capture, maxListLength: 2 });
      const c = [{ itemId: 'a' }, { itemId: 'b' }, { itemId: 'c' }];
      expect(await post(app, COUNT, { c })).toEqual({
        status: 400,
        body: {
          data: null,
          errors: [
            {
              message: 'c: at most 2 list elements (got 3)',
              extensions: { code: 'BAD_USER_INPUT', field: 'c', limit: 'listLength', max: 2 },
            },
          ],
        },
      });
      expect(seen).toEqual([
        { body: { query: COUNT, variables: deferred ? undefined : { c } }, variables: { c } },
      ]);
    });
  },
);

@ObjectType()
class Item {
  @Field(() => ID)
  id!: string;
  @Field(() => Float)
  score!: number;
  @Field(() => String)
  label!: string;
}

const probe = { scoreReads: 0, labels: [] as string[], compiled: new Set<string>() };

function item(id: string, score: number): Item {
  return Object.defineProperty({ id }, 'score', {
    enumerable: true,
    get: () => {
      probe.scoreReads++;
      return score;
    },
  }) as Item;
}

@Resolver(() => Item)
class ItemResolver {
  @Query(() => [Item])
  items(): Item[] {
    return [item('a', 0.5), item('b', 2)];
  }

  @ResolveField(() => String)
  label(@Parent() parent: Item, @Info() info: ProbeInfo): string {
    probe.labels.push(`${parent.id} by ${info.jit ? 'graphql-jit' : 'graphql-js'}`);
    return `label-${parent.id}`;
  }
}

reliesOn(
  '@nestjs/graphql applying transformResolvers and transformSchema, and graphql-jit reading a field without a resolver as a property',
  () => {
    let app: NestFastifyApplication;

    beforeAll(async () => {
      const options: MercuriusDriverConfig & WithCompilerOptions = {
        driver: MercuriusDriver,
        ...propertyFieldHooks(),
        autoSchemaFile: true,
        jit: 1,
        compilerOptions: {
          // Called once per field graphql-jit compiles into a resolver call.
          resolverInfoEnricher: (info) => {
            probe.compiled.add(`${info.parentType.name}.${info.fieldName}`);
            return { jit: true };
          },
        },
      };
      @Module({ imports: [GraphQLModule.forRoot(options)], providers: [ItemResolver] })
      class ProbeModule {}
      app = await NestFactory.create<NestFastifyApplication>(ProbeModule, new FastifyAdapter(), {
        logger: false,
      });
      await app.init();
      await app.getHttpAdapter().getInstance().ready();
    });
    afterAll(async () => {
      await app.close();
    });

    it('leaves a resolver only on the fields a resolver class resolves', () => {
      const type = app.get(GraphQLSchemaHost).schema.getType('Item') as GraphQLObjectType;
      const fields = type.getFields();
      expect(fields.id.resolve).toBeUndefined();
      expect(fields.score.resolve).toBeUndefined();
      expect(fields.label.resolve).toBeInstanceOf(Function);
    });

    it('reads each plain field once per value, runs the field resolvers, compiles only those', async () => {
      const answers = [];
      for (let i = 0; i < 3; i++) {
        const response = await app.inject({
          method: 'POST',
          url: '/graphql',
          payload: { query: '{ items { id score label } }' },
        });
        answers.push(response.json());
      }
      const data = {
        items: [
          { id: 'a', score: 0.5, label: 'label-a' },
          { id: 'b', score: 2, label: 'label-b' },
        ],
      };
      expect(answers).toEqual([{ data }, { data }, { data }]);
      expect(probe.scoreReads).toBe(6);
      expect(probe.labels).toEqual([
        'a by graphql-js',
        'b by graphql-js',
        'a by graphql-jit',
        'b by graphql-jit',
        'a by graphql-jit',
        'b by graphql-jit',
      ]);
      expect([...probe.compiled].sort()).toEqual(['Item.label', 'Query.items']);
    });
  },
);
