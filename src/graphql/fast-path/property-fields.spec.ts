import { GraphQLObjectType, GraphQLScalarType, buildSchema, graphql, parse } from 'graphql';
import { compileQuery, isCompiledQuery } from 'graphql-jit';
import { propertyFieldHooks } from './property-fields';

/** A schema as Nest builds it: every object field carries a `root => root[name]` resolver. */
function nestLikeSchema() {
  const schema = buildSchema(`
    type Item { id: ID!, score: Float!, owner: User, tags(first: Int): [String!]! }
    type User { name: String! }
    type Query { items: [Item!]! }
    scalar Cursor
  `);
  for (const type of Object.values(schema.getTypeMap())) {
    if (!(type instanceof GraphQLObjectType) || type.name.startsWith('__')) continue;
    for (const field of Object.values(type.getFields())) {
      field.resolve = (root: Record<string, unknown>) => root[field.name];
    }
  }
  return schema;
}

function field(schema: ReturnType<typeof nestLikeSchema>, type: string, name: string) {
  return (schema.getType(type) as GraphQLObjectType).getFields()[name];
}

describe('propertyFieldHooks', () => {
  const resolvers = {
    Query: { items: () => [] },
    Item: { owner: () => ({ name: 'resolved' }) },
    Cursor: new GraphQLScalarType({ name: 'Cursor' }),
  };

  it('drops the resolver of fields no resolver class resolves, and only those', () => {
    const hooks = propertyFieldHooks<typeof resolvers>();
    expect(hooks.transformResolvers(resolvers)).toBe(resolvers);
    const schema = hooks.transformSchema(nestLikeSchema());

    expect(field(schema, 'Item', 'id').resolve).toBeUndefined();
    expect(field(schema, 'Item', 'score').resolve).toBeUndefined();
    expect(field(schema, 'User', 'name').resolve).toBeUndefined();
    expect(field(schema, 'Item', 'owner').resolve).toBeDefined();
    expect(field(schema, 'Item', 'tags').resolve).toBeDefined();
    expect(field(schema, 'Query', 'items').resolve).toBeDefined();
  });

  it('answers the same, and graphql-jit reads the properties directly', async () => {
    const hooks = propertyFieldHooks<typeof resolvers>();
    hooks.transformResolvers(resolvers);
    const schema = hooks.transformSchema(nestLikeSchema());
    field(schema, 'Query', 'items').resolve = () => [
      { id: 'a', score: 0.5 },
      { id: 7, score: 2 },
    ];
    const source = '{ items { id score } }';

    const compiled = compileQuery(schema, parse(source), undefined, {
      debug: true,
    } as Parameters<typeof compileQuery>[3]);
    if (!isCompiledQuery(compiled)) throw new Error('did not compile');
    const code = (compiled as unknown as Record<string, string>)
      .__DO_NOT_USE_THIS_OR_YOU_WILL_BE_FIRED_compilation;
    expect(code).toContain('__currentItem.score');
    expect(code).not.toContain('ItemscoreResolver');

    const expected = {
      data: {
        items: [
          { id: 'a', score: 0.5 },
          { id: '7', score: 2 },
        ],
      },
    };
    expect(await compiled.query(undefined, {}, {})).toEqual(expected);
    expect(await graphql({ schema, source })).toEqual(expected);
  });
});
