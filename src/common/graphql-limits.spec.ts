import { buildSchema, parse, validate } from 'graphql';
import { operationLimitsRule } from './graphql-limits';

const schema = buildSchema(`
  type Item { id: ID!, name: String, related: [Item!]! }
  type Query { item: Item, items: [Item!]! }
`);

function errors(query: string, maxComplexity = 10, maxAliases = 2) {
  return validate(schema, parse(query), [operationLimitsRule({ maxComplexity, maxAliases })]).map(
    (error) => error.extensions,
  );
}

describe('operationLimitsRule', () => {
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

  it('survives a fragment cycle (reported by graphql itself)', () => {
    const query =
      'fragment A on Item { related { ...B } } fragment B on Item { related { ...A } } { item { ...A } }';
    expect(() => errors(query, 100)).not.toThrow();
  });
});
