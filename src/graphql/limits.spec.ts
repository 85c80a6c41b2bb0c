import { buildSchema, parse } from 'graphql';
import type { MercuriusContext } from 'mercurius';
import { operationLimitErrors, overlongList, RequestRejected, requestLimitHooks } from './limits';

const schema = buildSchema(`
  type Item { id: ID!, name: String, related: [Item!]! }
  type Query { item: Item, items: [Item!]! }
`);

function errors(query: string, maxComplexity = 10, maxAliases = 2) {
  return operationLimitErrors(parse(query), { maxComplexity, maxAliases }).map(
    (error) => error.extensions,
  );
}

describe('operationLimitErrors', () => {
  it('accepts a query within the limits', () => {
    expect(errors('{ item { id name related { id } } }')).toEqual([]);
  });

  it('counts fragment fields at every spread', () => {
    const query = `
      fragment F on Item { id name related { id name } }
      { a: item { ...F } b: item { ...F } }`;
    expect(errors(query, 11)).toEqual([{ code: 'BAD_USER_INPUT', limit: 'complexity', max: 11 }]);
    expect(errors(query, 12)).toEqual([]);
  });

  it('limits aliases', () => {
    expect(errors('{ a: item { id } b: item { id } c: item { id } }', 100, 2)).toEqual([
      { code: 'BAD_USER_INPUT', limit: 'aliases', max: 2 },
    ]);
  });

  it('reports each operation over a limit', () => {
    expect(
      errors('query A { item { id } } query B { a: item { id } b: item { id } c: item { id } }'),
    ).toEqual([{ code: 'BAD_USER_INPUT', limit: 'aliases', max: 2 }]);
  });

  it('survives a fragment cycle (reported by graphql itself)', () => {
    const query =
      'fragment A on Item { related { ...B } } fragment B on Item { related { ...A } } { item { ...A } }';
    expect(() => errors(query, 100)).not.toThrow();
  });
});

describe('requestLimitHooks', () => {
  const limits = { maxComplexity: 10, maxAliases: 2, maxDocumentBytes: 200, maxListLength: 3 };
  const hooks = requestLimitHooks(limits);
  const contextWith = (body: unknown) => ({ reply: { request: { body } } }) as MercuriusContext;
  const preParsing = (source: string, variables: unknown = {}) =>
    hooks.preParsing(schema, source, contextWith({ query: source, variables }));
  const rejection = async (promise: () => Promise<void>) => {
    try {
      await promise();
    } catch (error) {
      if (!(error instanceof RequestRejected)) throw error;
      return { status: error.statusCode, errors: error.errors.map((e) => e.extensions) };
    }
    return undefined;
  };

  it('passes a small document with short lists', async () => {
    await expect(rejection(() => preParsing('{ item { id } }', { ids: [1, 2, 3] }))).resolves.toBe(
      undefined,
    );
  });

  it('refuses a document over the byte limit before parsing it', async () => {
    await expect(
      rejection(() => preParsing(`{ item { id } } #${'é'.repeat(100)}`)),
    ).resolves.toEqual({
      status: 400,
      errors: [{ code: 'BAD_USER_INPUT', limit: 'documentBytes', max: 200 }],
    });
  });

  it.each(['{"kind":"Document","definitions":[]}', ' [1]', '"x"', '42', 'null'])(
    'refuses JSON in place of a document: %s',
    async (source) => {
      await expect(rejection(() => preParsing(source))).resolves.toMatchObject({
        errors: [{ code: 'BAD_USER_INPUT', field: 'query' }],
      });
    },
  );

  it('names the first overlong list in the variables, however deep', async () => {
    const variables = { ok: [1], c: [{ itemId: 'a', features: [1, 2, 3, 4] }] };
    await expect(rejection(() => preParsing('{ item { id } }', variables))).resolves.toEqual({
      status: 400,
      errors: [{ code: 'BAD_USER_INPUT', field: 'c[0].features', limit: 'listLength', max: 3 }],
    });
    let deep: unknown = [1, 2, 3, 4];
    for (let i = 0; i < 100_000; i++) deep = [deep];
    expect(overlongList({ deep }, 3)?.length).toBe(4);
  });

  it('checks the operation limits before graphql-js validates', async () => {
    const document = parse('{ a: item { id } b: item { id } c: item { id } }');
    await expect(rejection(() => hooks.preValidation(schema, document))).resolves.toEqual({
      status: 400,
      errors: [{ code: 'BAD_USER_INPUT', limit: 'aliases', max: 2 }],
    });
  });
});
