import { Module } from '@nestjs/common';
import { APP_GUARD } from '@nestjs/core';
import { ApiKeyAuthService } from './api-key-auth.service';
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
    ApiKeyAuthService,
    GraphqlCallers,
    IntrospectionGate,
    { provide: APP_GUARD, useClass: ApiKeyGuard },
  ],
  exports: [ApiKeyService, ApiKeyAuthService, GraphqlCallers],
})
export class AuthModule {}
