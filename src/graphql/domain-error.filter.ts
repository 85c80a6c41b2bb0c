import { ArgumentsHost, Catch, Logger } from '@nestjs/common';
import { BaseExceptionFilter } from '@nestjs/core';
import type { GqlContextType } from '@nestjs/graphql';
import { DomainError } from '../common/errors';
import { WarningThrottle } from '../common/logger';

/**
 * Domain errors go from resolvers to the GraphQL error formatter (errors.ts) as they are, without
 * Nest's error line and stack for each: bad input and refusals are expected traffic (a client can
 * send thousands a second), not the service failing. Outages and timeouts are logged as warnings,
 * at most one per code every 10 s (they come in bursts; the services that meet them count them),
 * an INTERNAL error (a bug) as an error, every one. Outside GraphQL, Nest's own handling.
 */
@Catch(DomainError)
export class DomainErrorFilter extends BaseExceptionFilter {
  /** Nest's logger: the app routes it into the service's own (NestPinoLogger). */
  private readonly logger = new Logger('graphql');
  private readonly throttles = {
    UNAVAILABLE: new WarningThrottle(),
    TIMEOUT: new WarningThrottle(),
  };

  override catch(error: DomainError, host: ArgumentsHost): void {
    if (host.getType<GqlContextType>() !== 'graphql') {
      super.catch(error, host);
      return;
    }
    switch (error.code) {
      case 'BAD_USER_INPUT':
      case 'NOT_FOUND':
      case 'CONFLICT':
      case 'UNAUTHENTICATED':
      case 'FORBIDDEN':
      case 'RATE_LIMITED':
      case 'RESOURCE_EXHAUSTED':
        break;
      case 'UNAVAILABLE':
      case 'TIMEOUT':
        if (this.throttles[error.code].allows())
          this.logger.warn(`${error.code}: ${error.message}`);
        break;
      case 'INTERNAL':
        this.logger.error(error.message, error.stack);
        break;
    }
    throw error;
  }
}
