import { DynamicModule, Module, Type } from '@nestjs/common';
import { AppConfig, Role } from './config/config';
import { ConfigModule } from './config/config.module';
import { Logger } from './common/logger';
import { InfraModule } from './infra/infra.module';
import { AuthModule } from './modules/auth/auth.module';
import { ConsoleModule } from './modules/console/console.module';
import { ExperimentsApiModule } from './modules/experiments/experiments.module';
import { HealthModule } from './modules/health/health.module';
import { MetricsModule } from './modules/metrics/metrics.module';
import { InspectorModule } from './modules/inspector/inspector.module';
import { IngestApiModule, IngestModule } from './modules/ingest/ingest.module';
import { EmbeddingApiModule, EmbeddingModule } from './modules/embedding/embedding.module';
import { RankingModule } from './modules/ranking/ranking.module';
import { RegistryApiModule } from './modules/registry/registry.module';
import { ServedLogIngestModule } from './modules/served-log/served-log.module';
import { ServingModule } from './modules/serving/serving.module';
import { TrainingModule } from './modules/training/training.module';
import { graphqlModule } from './graphql/graphql.module';
import { OperationGatesModule } from './graphql/operation-gates';

/**
 * What each role runs. Every role serves health and metrics over HTTP (for probes and scraping);
 * only roles that answer storefronts mount GraphQL.
 */
export const ROLE_MODULES: Record<Exclude<Role, 'all'>, { graphql: boolean; modules: Type[] }> = {
  api: {
    graphql: true,
    modules: [
      AuthModule,
      IngestApiModule,
      EmbeddingApiModule,
      ServingModule,
      RankingModule,
      RegistryApiModule,
      ExperimentsApiModule,
      InspectorModule,
      ConsoleModule,
    ],
  },
  ingest: { graphql: false, modules: [IngestModule, ServedLogIngestModule, EmbeddingModule] },
  train: { graphql: false, modules: [TrainingModule] },
};

export function modulesFor(role: Role): { graphql: boolean; modules: Type[] } {
  if (role !== 'all') return ROLE_MODULES[role];
  const all = Object.values(ROLE_MODULES);
  return {
    graphql: all.some((entry) => entry.graphql),
    modules: [...new Set(all.flatMap((entry) => entry.modules))],
  };
}

@Module({})
export class AppModule {
  static forRole(config: AppConfig, logger: Logger): DynamicModule {
    const { graphql, modules } = modulesFor(config.role);
    return AppModule.withModules(config, logger, modules, graphql);
  }

  /** The shared infrastructure plus `modules` (the CLI picks the few a command needs). */
  static withModules(
    config: AppConfig,
    logger: Logger,
    modules: readonly Type[],
    graphql = false,
  ): DynamicModule {
    return {
      module: AppModule,
      imports: [
        ConfigModule.forRoot(config),
        InfraModule.forRoot(logger),
        MetricsModule,
        HealthModule,
        ...(graphql ? [OperationGatesModule, graphqlModule()] : []),
        ...modules,
      ],
    };
  }
}
