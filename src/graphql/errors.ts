import { ExecutionResult, GraphQLError, GraphQLFormattedError } from 'graphql';
import type { MercuriusContext } from 'mercurius';
import { DomainError, ErrorCode, isConnectionFailure } from '../common/errors';
import { variableErrors } from './fast-path/variables';

/** HTTP status of a response that failed as a whole (no data) with one of these codes. */
const HTTP_STATUS: Partial<Record<ErrorCode, number>> = {
  UNAUTHENTICATED: 401,
  FORBIDDEN: 403,
  RATE_LIMITED: 429,
  RESOURCE_EXHAUSTED: 429,
};

/** graphql-jit's errors may come without `extensions`. */
function extensionsOf(error: GraphQLError): Readonly<Record<string, unknown>> {
  const { extensions } = error as { extensions?: Record<string, unknown> };
  return extensions ?? {};
}

function codeOf(error: GraphQLError, fallback: string): string {
  const { code } = extensionsOf(error);
  return typeof code === 'string' ? code : fallback;
}

/** Refusals of the HTTP layer before GraphQL runs (body too large, malformed JSON): 4xx status. */
function isClientHttpError(error: Error): boolean {
  const status = (error as { statusCode?: unknown }).statusCode;
  return typeof status === 'number' && status >= 400 && status < 500;
}

/**
 * The single place where errors become GraphQL errors: domain errors keep their code and details,
 * GraphQL's own parse and validation errors and the HTTP layer's 4xx refusals become
 * BAD_USER_INPUT, a lost or refused connection to a backing service becomes UNAVAILABLE (retry),
 * anything else is reported as INTERNAL without its message so internals never leak.
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
      // Details such as the refused field or the exceeded limit stay.
      extensions: { ...extensionsOf(error), code: codeOf(error, 'BAD_USER_INPUT') },
    };
  }
  if (isClientHttpError(original)) {
    return { message: original.message, path, locations, extensions: { code: 'BAD_USER_INPUT' } };
  }
  if (isConnectionFailure(original)) {
    return {
      message: 'A backing service is unavailable; retry shortly',
      path,
      locations,
      extensions: { code: 'UNAVAILABLE' },
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
    return wrapped.map((inner: unknown) => {
      if (inner instanceof GraphQLError) return inner;
      // graphql-js parses recursively: a document nested thousands of levels deep overflows.
      if (inner instanceof Error && inner.name === 'RangeError') {
        return new GraphQLError('Query document is nested too deeply to parse', {
          extensions: { code: 'BAD_USER_INPUT', limit: 'depth' },
        });
      }
      return new GraphQLError(inner instanceof Error ? inner.message : String(inner));
    });
  }
  return [error];
}

/** Mercurius `errorFormatter`: HTTP status as graphql-over-http says, bodies from formatGraphqlError. */
export function mercuriusErrorFormatter(
  execution: ExecutionResult & { errors: readonly GraphQLError[]; statusCode?: number },
  context: MercuriusContext | undefined,
): { statusCode: number; response: ExecutionResult } {
  const refused =
    execution.data == null && context !== undefined
      ? variableErrors(context.reply.request)
      : undefined;
  const errors = (refused ?? execution.errors).flatMap(flatten).map(formatGraphqlError);
  let statusCode = 200;
  if (!execution.data) {
    const single =
      execution.errors.length === 1
        ? (execution.errors[0]?.originalError as StatusCarrier | undefined)
        : undefined;
    if (refused !== undefined) statusCode = 400;
    else if (typeof execution.statusCode === 'number') statusCode = execution.statusCode;
    else if (typeof single?.statusCode === 'number') statusCode = single.statusCode;
    else if (single instanceof DomainError) statusCode = HTTP_STATUS[single.code] ?? statusCode;
  }
  return {
    statusCode,
    response: { data: execution.data ?? null, errors: errors as unknown as GraphQLError[] },
  };
}
