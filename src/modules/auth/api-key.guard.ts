import { CanActivate, ExecutionContext, Inject, Injectable } from '@nestjs/common';
import { Reflector } from '@nestjs/core';
import type { GqlContextType } from '@nestjs/graphql';
import type { FastifyReply } from 'fastify';
import { GraphQLResolveInfo, OperationTypeNode } from 'graphql';
import { APP_CONFIG } from '../../config/config.module';
import type { AppConfig } from '../../config/config';
import type { GraphqlContext } from '../../graphql/graphql.module';
import { Access, ACCESS_METADATA, AuthError } from './access';
import { presentedApiKey } from './api-key';
import { ApiKeyAuthService, Principal } from './api-key-auth.service';
import { GraphqlCallers } from './graphql-callers';

/** Mercurius adds the reply to the context it hands resolvers. */
type ResolverContext = GraphqlContext & { readonly reply: FastifyReply };

/** What a root field needs: a query its decorator's access (default read), a mutation always ops. */
export function requiredAccess(declared: Access | undefined, operation: OperationTypeNode): Access {
  switch (operation) {
    case OperationTypeNode.MUTATION:
      return 'ops';
    case OperationTypeNode.QUERY:
    case OperationTypeNode.SUBSCRIPTION:
      return declared ?? 'read';
  }
}

/**
 * Global guard of the api role's GraphQL root fields. A request is authenticated once, by its
 * first root field; each root field (every alias of it too) then costs one unit of the key's rate
 * limit and checks the role it needs. HTTP routes (health, metrics) are never guarded.
 */
@Injectable()
export class ApiKeyGuard implements CanActivate {
  private readonly enabled: boolean;
  private readonly declared = new Map<object, Access | undefined>();
  private readonly requests = new WeakMap<object, Promise<Principal>>();

  constructor(
    private readonly reflector: Reflector,
    private readonly auth: ApiKeyAuthService,
    private readonly costs: GraphqlCallers,
    @Inject(APP_CONFIG) config: AppConfig,
  ) {
    this.enabled = config.auth.mode === 'api-key';
  }

  async canActivate(context: ExecutionContext): Promise<boolean> {
    if (!this.enabled || context.getType<GqlContextType>() !== 'graphql') return true;
    const info = context.getArgByIndex<GraphQLResolveInfo>(3);
    // A nested field resolver runs under a root field that was checked already.
    if (info.path.prev !== undefined) return true;
    const required = requiredAccess(this.declaredAccess(context), info.operation.operation);
    if (required === 'anonymous') return true;
    const resolverContext = context.getArgByIndex<ResolverContext>(2);
    try {
      const principal = await this.principalOf(resolverContext);
      this.auth.authorize(principal, required, info.operation.operation, info.fieldName);
      this.auth.charge(principal, 1);
      this.costs.remember(resolverContext, principal);
    } catch (error) {
      if (error instanceof AuthError && typeof error.details.retryAfterSeconds === 'number') {
        void resolverContext.reply.header('retry-after', String(error.details.retryAfterSeconds));
      }
      throw error;
    }
    return true;
  }

  private declaredAccess(context: ExecutionContext): Access | undefined {
    const handler = context.getHandler();
    if (!this.declared.has(handler)) {
      this.declared.set(
        handler,
        this.reflector.getAllAndOverride<Access | undefined>(ACCESS_METADATA, [
          handler,
          context.getClass(),
        ]),
      );
    }
    return this.declared.get(handler);
  }

  private principalOf(context: ResolverContext): Promise<Principal> {
    let principal = this.requests.get(context);
    if (principal === undefined) {
      principal = this.auth.authenticate(presentedApiKey(context.request.headers));
      this.requests.set(context, principal);
    }
    return principal;
  }
}
