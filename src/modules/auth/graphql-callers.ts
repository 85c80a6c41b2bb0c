import { Inject, Injectable } from '@nestjs/common';
import { APP_CONFIG } from '../../config/config.module';
import type { AppConfig } from '../../config/config';
import { ApiKeyRole, roleSatisfies } from './api-key';
import { ApiKeyAuthService, Principal } from './api-key-auth.service';

/**
 * Who each GraphQL request acts as: the guard records the key a request authenticated with;
 * resolvers charge work beyond the root field itself (each candidate text encoded) to it, and
 * record it as who triggered what they change.
 */
@Injectable()
export class GraphqlCallers {
  private readonly principals = new WeakMap<object, Principal>();
  private readonly enabled: boolean;

  constructor(
    private readonly auth: ApiKeyAuthService,
    @Inject(APP_CONFIG) config: AppConfig,
  ) {
    this.enabled = config.auth.mode === 'api-key';
  }

  /** The guard's record: `context` (the GraphQL context of a request) acts as `principal`. */
  remember(context: object, principal: Principal): void {
    this.principals.set(context, principal);
  }

  /** Who a change made through this request is recorded as: the API key's name. */
  triggeredBy(context: object): string {
    const principal = this.principals.get(context);
    return principal === undefined ? 'graphql' : `graphql (api key "${principal.name}")`;
  }

  /** Whether the request may do what `role` may (always, without API keys). */
  hasRole(context: object, role: ApiKeyRole): boolean {
    if (!this.enabled) return true;
    const principal = this.principals.get(context);
    return principal !== undefined && roleSatisfies(principal.role, role);
  }

  /**
   * Charges `units` to the request's key (RATE_LIMITED when its bucket cannot pay); nothing
   * without API keys, or for a request no key was needed for.
   */
  charge(context: object, units: number): void {
    if (!this.enabled) return;
    const principal = this.principals.get(context);
    if (principal !== undefined) this.auth.charge(principal, units);
  }
}
