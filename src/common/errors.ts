/** Codes every edge understands; each edge maps them to its own error shape in one place. */
export const ERROR_CODES = [
  'BAD_USER_INPUT',
  'NOT_FOUND',
  'CONFLICT',
  'UNAUTHENTICATED',
  'FORBIDDEN',
  'RATE_LIMITED',
  /** A bounded queue is full: the work was refused, not started; retry later or send less. */
  'RESOURCE_EXHAUSTED',
  'UNAVAILABLE',
  'TIMEOUT',
  'INTERNAL',
] as const;
export type ErrorCode = (typeof ERROR_CODES)[number];

export class DomainError extends Error {
  constructor(
    readonly code: ErrorCode,
    message: string,
    readonly details: Readonly<Record<string, unknown>> = {},
  ) {
    super(message);
    this.name = 'DomainError';
  }
}

/** Bad input names the field and the reason. */
export class ValidationError extends DomainError {
  constructor(
    readonly field: string,
    readonly reason: string,
  ) {
    super('BAD_USER_INPUT', `${field}: ${reason}`, { field, reason });
    this.name = 'ValidationError';
  }
}

/** Socket errors of a peer that is down, restarting or unreachable. */
const CONNECTION_ERRNOS = new Set([
  'ECONNREFUSED',
  'ECONNRESET',
  'EPIPE',
  'ETIMEDOUT',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'EAI_AGAIN',
]);
/** PostgreSQL shutting down, crashed, or not accepting connections yet (class 08 is checked apart). */
const UNAVAILABLE_SQLSTATES = new Set(['57P01', '57P02', '57P03']);
/** The pg driver's own errors for lost or refused connections (they carry no code). */
const CONNECTION_MESSAGES = [
  /^Connection terminated/,
  /timeout exceeded when trying to connect/,
  /encountered a connection error and is not queryable/,
];

/**
 * Whether `error` is a lost or refused connection to a backing service (PostgreSQL restarting, a
 * socket reset): a retry may succeed, unlike a bug. Duck-typed, so no driver is imported here.
 */
export function isConnectionFailure(error: unknown): boolean {
  // Not `instanceof Error`: Node's socket errors may come from another realm (vm, jest).
  if (typeof error !== 'object' || error === null) return false;
  const { code, message } = error as { code?: unknown; message?: unknown };
  if (typeof code === 'string') {
    if (CONNECTION_ERRNOS.has(code) || UNAVAILABLE_SQLSTATES.has(code)) return true;
    // SQLSTATE class 08: connection exception.
    if (/^08[0-9A-Z]{3}$/.test(code)) return true;
  }
  return (
    typeof message === 'string' && CONNECTION_MESSAGES.some((pattern) => pattern.test(message))
  );
}

/**
 * Whether PostgreSQL refused the data itself (SQLSTATE class 22 data exception, 23 integrity
 * constraint violation, 54 program limit such as an oversized index row): unlike an outage, the
 * same rows fail again on every retry.
 */
export function isDataRejection(error: unknown): boolean {
  if (typeof error !== 'object' || error === null) return false;
  const { code } = error as { code?: unknown };
  return typeof code === 'string' && /^(22|23|54)[0-9A-Z]{3}$/.test(code);
}

/** Why `signal` was aborted, as an Error. */
export function abortReason(signal: AbortSignal): Error {
  const reason: unknown = signal.reason;
  if (reason instanceof Error) return reason;
  // The default reason, a DOMException, may come from another realm (a vm context, a thread).
  if (typeof reason === 'object' && reason !== null && 'name' in reason && 'message' in reason) {
    return reason as Error;
  }
  return new Error('aborted');
}
