import { GraphQLScalarType, GraphQLSchema, isObjectType } from 'graphql';

type ResolverMap = Record<string, unknown>;

/**
 * Nest's code-first schema gives every object field a resolver (`root => root[name]`, there for
 * `@Field({ defaultValue })`, which no output type here uses). graphql-jit compiles a field that
 * has a resolver into a call with its own resolve info, response path and two closures per value,
 * and a field without one into a property read: for a 100-item `rank` that was ~100 KB of garbage
 * per request. These hooks note which fields a resolver class resolves, then drop the resolver of
 * every other field of a non-root object type.
 */
export function propertyFieldHooks<R>(): {
  transformResolvers: (resolvers: R) => R;
  transformSchema: (schema: GraphQLSchema) => GraphQLSchema;
} {
  const resolved = new Set<string>();
  return {
    transformResolvers: (resolvers) => {
      for (const map of [resolvers].flat() as ResolverMap[]) {
        for (const [typeName, fields] of Object.entries(map)) {
          if (fields instanceof GraphQLScalarType || typeof fields !== 'object' || !fields)
            continue;
          for (const fieldName of Object.keys(fields)) resolved.add(`${typeName}.${fieldName}`);
        }
      }
      return resolvers;
    },
    transformSchema: (schema) => {
      const roots = new Set(
        [schema.getQueryType(), schema.getMutationType(), schema.getSubscriptionType()].filter(
          (type) => type != null,
        ),
      );
      for (const type of Object.values(schema.getTypeMap())) {
        if (!isObjectType(type) || roots.has(type) || type.name.startsWith('__')) continue;
        for (const field of Object.values(type.getFields())) {
          if (field.args.length === 0 && !resolved.has(`${type.name}.${field.name}`)) {
            field.resolve = undefined;
          }
        }
      }
      return schema;
    },
  };
}
