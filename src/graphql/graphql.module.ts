import { DynamicModule, Module } from '@nestjs/common';
import { APP_FILTER } from '@nestjs/core';
import { GraphQLModule } from '@nestjs/graphql';
import { MercuriusDriver, MercuriusDriverConfig } from '@nestjs/mercurius';
import type { FastifyRequest } from 'fastify';
import type { DocumentNode, GraphQLSchema } from 'graphql';
import type { MercuriusContext } from 'mercurius';
import { APP_CONFIG } from '../config/config.module';
import type { AppConfig } from '../config/config';
import { graphqlMetricsHooks } from '../modules/metrics/graphql-hooks';
import { Metrics } from '../modules/metrics/metrics.registry';
import { DomainErrorFilter } from './domain-error.filter';
import { mercuriusErrorFormatter } from './errors';
import { propertyFieldHooks } from './fast-path/property-fields';
import { deferredVariables } from './fast-path/variables';
import { requestLimitHooks } from './limits';
import { OperationGates } from './operation-gates';

export interface GraphqlContext {
  readonly requestId: string;
  readonly request: FastifyRequest;
}

/**
 * Mercurius options for the configured mode. The request limits and the error formatter apply in
 * both (safety, not speed); with GRAPHQL_FAST_PATH=false the rest is plain Mercurius: no
 * graphql-jit, variables coerced by graphql-js, Nest's field resolvers kept.
 */
export function mercuriusOptions(
  config: AppConfig,
  metrics: Metrics,
  gates: OperationGates,
): MercuriusDriverConfig {
  const limits = requestLimitHooks(config.graphql);
  const timing = graphqlMetricsHooks(metrics);
  const deferred = config.graphql.fastPath ? deferredVariables() : undefined;
  return {
    ...(config.graphql.fastPath ? propertyFieldHooks() : {}),
    autoSchemaFile: true,
    sortSchema: true,
    path: '/graphql',
    // GraphiQL at /graphiql for the local demo only; a deployment with API keys serves no IDE.
    graphiql: config.auth.mode === 'off',
    // graphql-jit compiles a query on its second use; variable coercion and result building
    // dominate rank. 0: never.
    jit: config.graphql.fastPath ? 1 : 0,
    queryDepth: 12,
    // Parsed documents cached for repeats, valid and invalid ones apart. ~70 bytes of AST per
    // source byte, so 128 each × GRAPHQL_MAX_DOCUMENT_BYTES (16 KiB) stays under ~300 MB.
    cache: 128,
    context: (request: FastifyRequest): GraphqlContext => ({ requestId: request.id, request }),
    ...(deferred ? { additionalRouteOptions: { preHandler: deferred.routePreHandler } } : {}),
    hooks: {
      ...limits,
      // The limits first: a gate may authenticate, which costs more than counting fields.
      preValidation: [
        limits.preValidation,
        (_schema: GraphQLSchema, document: DocumentNode, context: MercuriusContext) =>
          gates.check(document, context.reply.request),
      ],
      // Mercurius runs a list in order.
      preExecution: deferred ? [timing.preExecution, deferred.preExecution] : timing.preExecution,
      onResolution: timing.onResolution,
    },
    errorFormatter: mercuriusErrorFormatter,
  };
}

@Module({})
class GraphqlEdgeModule {}

/**
 * Code-first GraphQL on Mercurius (measured faster than Apollo; see docs/design-notes.md), with
 * domain errors passed to the error formatter without Nest's log line for each.
 */
export function graphqlModule(): DynamicModule {
  return {
    module: GraphqlEdgeModule,
    imports: [
      GraphQLModule.forRootAsync<MercuriusDriverConfig>({
        driver: MercuriusDriver,
        inject: [APP_CONFIG, Metrics, OperationGates],
        useFactory: mercuriusOptions,
      }),
    ],
    providers: [{ provide: APP_FILTER, useClass: DomainErrorFilter }],
  };
}
