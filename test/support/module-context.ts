import { INestApplicationContext, Module, Type } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import { createLogger } from '../../src/common/logger';
import type { AppConfig } from '../../src/config/config';
import { ConfigModule } from '../../src/config/config.module';
import { InfraModule } from '../../src/infra/infra.module';
import { MetricsModule } from '../../src/modules/metrics/metrics.module';

/** A Nest context of only `modules` over the real infra (clients, config, metrics) of `config`. */
export async function startModules(
  config: AppConfig,
  modules: readonly Type[],
): Promise<INestApplicationContext> {
  @Module({
    imports: [
      ConfigModule.forRoot(config),
      InfraModule.forRoot(createLogger('warn')),
      MetricsModule,
      ...modules,
    ],
  })
  class ModulesUnderTest {}
  return NestFactory.createApplicationContext(ModulesUnderTest, {
    logger: false,
    abortOnError: false,
  });
}
