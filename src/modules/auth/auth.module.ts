import { Module } from '@nestjs/common';
import { APP_GUARD } from '@nestjs/core';
import type { Logger } from '../../common/logger';
import { APP_CONFIG } from '../../config/config.module';
import type { AppConfig } from '../../config/config';
import { createPgListener } from '../../infra/pg-listener';
import { LOGGER } from '../../infra/tokens';
import { ApiKeyAuthService, AUTH_LISTENER } from './api-key-auth.service';
import { ApiKeyGuard } from './api-key.guard';
import { ApiKeyRepository } from './api-key.repository';
import { ApiKeyService } from './api-key.service';
import { IntrospectionGate } from './introspection-gate';
import { GraphqlCallers } from './graphql-callers';

/** API keys of the api role: every GraphQL root field but `health` needs one (AUTH_MODE). */
@Module({
  providers: [
    ApiKeyRepository,
    ApiKeyService,
    {
      provide: AUTH_LISTENER,
      inject: [APP_CONFIG, LOGGER],
      useFactory: (config: AppConfig, logger: Logger) => createPgListener(config.postgres, logger),
    },
    ApiKeyAuthService,
    GraphqlCallers,
    IntrospectionGate,
    { provide: APP_GUARD, useClass: ApiKeyGuard },
  ],
  exports: [ApiKeyService, ApiKeyAuthService, GraphqlCallers],
})
export class AuthModule {}
