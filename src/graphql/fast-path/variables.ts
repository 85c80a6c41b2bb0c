import type { FastifyRequest } from 'fastify';
import {
  DocumentNode,
  getOperationAST,
  getVariableValues,
  GraphQLError,
  GraphQLSchema,
} from 'graphql';
import type { MercuriusContext, PreExecutionHookResponse } from 'mercurius';

const DEFERRED = Symbol('deferredVariables');

interface Deferred {
  readonly variables: unknown;
  /** Set once the request reaches execution. */
  operation?: { schema: GraphQLSchema; document: DocumentNode };
}

interface Deferring {
  [DEFERRED]?: Deferred;
}

/** The variables a request sent, whether or not they were deferred. */
export function requestVariables(request: FastifyRequest): unknown {
  const body: unknown = request.body;
  if (typeof body === 'object' && body !== null && 'variables' in body && body.variables != null) {
    return body.variables;
  }
  return (request as Deferring)[DEFERRED]?.variables;
}

/**
 * graphql-js's errors for a request's deferred variables; undefined when they are valid or were not
 * deferred (then Mercurius refused them with graphql-js's errors itself). graphql-jit names a
 * refused nested field by its own name and without its path ("$value" for
 * `c[0].features[0].value`); this runs only for a response without data.
 */
export function variableErrors(request: FastifyRequest): readonly GraphQLError[] | undefined {
  const deferred = (request as Deferring)[DEFERRED];
  if (deferred?.operation === undefined) return undefined;
  const { schema, document } = deferred.operation;
  const body = request.body as { operationName?: unknown };
  const operation = getOperationAST(
    document,
    typeof body.operationName === 'string' ? body.operationName : undefined,
  );
  if (operation == null) return undefined;
  const coerced = getVariableValues(
    schema,
    operation.variableDefinitions ?? [],
    (deferred.variables ?? {}) as Record<string, unknown>,
  );
  return coerced.errors;
}

/**
 * With jit on, Mercurius coerces a POST request's variables twice: with graphql-js to validate
 * them, then with graphql-jit's compiled parser when it executes. For `rank` (100 input objects)
 * the first pass cost ~9 % of the request. The route's preHandler takes the variables out of the
 * body, so Mercurius skips its pass, and preExecution hands them back to the executor, which
 * refuses invalid values with the same graphql-js messages (errors without data: HTTP 400).
 */
export function deferredVariables() {
  return {
    routePreHandler: (request: FastifyRequest, _reply: unknown, done: () => void) => {
      const body: unknown = request.body;
      if (typeof body === 'object' && body !== null && 'variables' in body) {
        (request as Deferring)[DEFERRED] = { variables: body.variables };
        body.variables = undefined;
      }
      done();
    },
    preExecution: (
      schema: GraphQLSchema,
      document: DocumentNode,
      context: MercuriusContext,
    ): Promise<PreExecutionHookResponse<Error> | undefined> => {
      const deferred = (context.reply.request as Deferring)[DEFERRED];
      if (deferred?.variables == null) return Promise.resolve(undefined);
      deferred.operation = { schema, document };
      // The executor checks the shape: a list or a string is refused like any invalid value.
      return Promise.resolve({ variables: deferred.variables as Record<string, unknown> });
    },
  };
}
