import { SetMetadata } from '@nestjs/common';
import { DomainError } from '../../common/errors';
import type { ApiKeyRole } from './api-key';

/** What a GraphQL root field asks of the caller: a key with at least this role, or nothing. */
export type Access = ApiKeyRole | 'anonymous';

export const ACCESS_METADATA = 'recsys:access';

/**
 * The role a query or mutation needs. Undecorated queries need `read`; every mutation needs
 * `ops` whatever its decorator says (the guard enforces both), so a new mutation is never open.
 */
export const RequireRole = (role: ApiKeyRole) => SetMetadata(ACCESS_METADATA, role);

/** Served without a key (the `health` query only). */
export const AllowAnonymous = () => SetMetadata(ACCESS_METADATA, 'anonymous');

export type AuthErrorCode = 'UNAUTHENTICATED' | 'FORBIDDEN' | 'RATE_LIMITED' | 'UNAVAILABLE';

/**
 * A refused request. Its own class so the GraphQL edge can pass it through without Nest logging
 * each one as an error (a client over its rate limit would otherwise flood the log).
 */
export class AuthError extends DomainError {
  constructor(
    override readonly code: AuthErrorCode,
    message: string,
    details: Readonly<Record<string, unknown>> = {},
  ) {
    super(code, message, details);
    this.name = 'AuthError';
  }
}
