import { ExecutionResult, GraphQLError, GraphQLFormattedError } from 'graphql';
import { DomainError } from './errors';

function codeOf(error: GraphQLError, fallback: string): string {
  return typeof error.extensions.code === 'string' ? error.extensions.code : fallback;
}

/**
 * The single place where errors become GraphQL errors: domain errors keep their code and details,
 * GraphQL's own parse and validation errors become BAD_USER_INPUT, anything else is reported as
 * INTERNAL without its message so internals never leak.
 */
export function formatGraphqlError(error: GraphQLError): GraphQLFormattedError {
  const { path, locations } = error;
  const original = error.originalError;
  if (original instanceof DomainError) {
    return {
      message: original.message,
      path,
      locations,
      extensions: { code: original.code, ...original.details },
    };
  }
  if (original === undefined || original instanceof GraphQLError) {
    return {
      message: error.message,
      path,
      locations,
      extensions: { code: codeOf(error, 'BAD_USER_INPUT') },
    };
  }
  return { message: 'Internal error', path, locations, extensions: { code: 'INTERNAL' } };
}

interface StatusCarrier {
  statusCode?: unknown;
  errors?: unknown;
}

/** Mercurius reports request-level failures (parse, validation) as one error wrapping a list. */
function flatten(error: GraphQLError): GraphQLError[] {
  const wrapped = (error.originalError as StatusCarrier | undefined)?.errors;
  if (Array.isArray(wrapped)) {
    return wrapped.map((inner: unknown) =>
      inner instanceof GraphQLError
        ? inner
        : new GraphQLError(inner instanceof Error ? inner.message : String(inner)),
    );
  }
  return [error];
}

/** Mercurius `errorFormatter`: HTTP status as graphql-over-http says, bodies from formatGraphqlError. */
export function mercuriusErrorFormatter(
  execution: ExecutionResult & { errors: readonly GraphQLError[]; statusCode?: number },
): { statusCode: number; response: ExecutionResult } {
  const errors = execution.errors.flatMap(flatten).map(formatGraphqlError);
  let statusCode = 200;
  if (!execution.data) {
    const single =
      execution.errors.length === 1
        ? (execution.errors[0]?.originalError as StatusCarrier | undefined)
        : undefined;
    if (typeof execution.statusCode === 'number') statusCode = execution.statusCode;
    else if (typeof single?.statusCode === 'number') statusCode = single.statusCode;
  }
  return {
    statusCode,
    response: { data: execution.data ?? null, errors: errors as unknown as GraphQLError[] },
  };
}
