import { Global, Inject, Module } from '@nestjs/common';
import { APP_CONFIG } from '../../config/config.module';
import type { AppConfig } from '../../config/config';
import { MetricsController } from './metrics.controller';
import { Metrics } from './metrics.registry';

@Global()
@Module({
  controllers: [MetricsController],
  providers: [
    {
      provide: Metrics,
      inject: [APP_CONFIG],
      useFactory: (config: AppConfig) => new Metrics({ role: config.role }),
    },
  ],
  exports: [Metrics],
})
export class MetricsModule {
  constructor(@Inject(Metrics) readonly metrics: Metrics) {}
}
