import {
  DynamicModule,
  Global,
  Inject,
  Module,
  OnApplicationShutdown,
  OnModuleInit,
} from '@nestjs/common';
import { Pool } from 'pg';
import { APP_CONFIG } from '../config/config.module';
import type { AppConfig } from '../config/config';
import type { Logger } from '../common/logger';
import { createDirectPgPool, createPgPool } from './postgres';
import { createRedisClient } from './redis';
import type { RedisClient } from './redis';
import { KafkaClients } from './kafka';
import { PgBulkReader } from './pg-bulk-reader';
import { createPgListener, PgListener } from './pg-listener';
import {
  KAFKA,
  LOGGER,
  PG_DIRECT_POOL,
  PG_BULK_READER,
  PG_LISTENER,
  PG_POOL,
  REDIS,
} from './tokens';
import { withTimeout } from '../common/timeout';
import { ShutdownDeadline } from '../common/shutdown-deadline';

const REDIS_START_WAIT_MS = 3000;

/**
 * Owns every external client. Shutdown closes them in dependency order: Kafka consumers and
 * producer first (they may still flush work into PostgreSQL/Redis), then Redis and PostgreSQL.
 */
@Global()
@Module({
  providers: [
    {
      provide: PG_POOL,
      inject: [APP_CONFIG, LOGGER],
      useFactory: (config: AppConfig, logger: Logger) => createPgPool(config.postgres, logger),
    },
    {
      provide: PG_DIRECT_POOL,
      inject: [APP_CONFIG, LOGGER],
      useFactory: (config: AppConfig, logger: Logger) =>
        createDirectPgPool(config.postgres, logger),
    },
    {
      provide: PG_BULK_READER,
      inject: [APP_CONFIG],
      useFactory: (config: AppConfig) => new PgBulkReader(config.postgres),
    },
    {
      provide: PG_LISTENER,
      inject: [APP_CONFIG, LOGGER],
      useFactory: (config: AppConfig, logger: Logger) => createPgListener(config.postgres, logger),
    },
    {
      provide: REDIS,
      inject: [APP_CONFIG, LOGGER],
      useFactory: (config: AppConfig, logger: Logger) => createRedisClient(config.redis, logger),
    },
    {
      provide: ShutdownDeadline,
      inject: [APP_CONFIG],
      useFactory: (config: AppConfig) => new ShutdownDeadline(config.shutdownTimeoutMs),
    },
    {
      provide: KAFKA,
      inject: [APP_CONFIG, LOGGER],
      useFactory: (config: AppConfig, logger: Logger) => new KafkaClients(config.kafka, logger),
    },
  ],
  exports: [PG_POOL, PG_DIRECT_POOL, PG_BULK_READER, PG_LISTENER, REDIS, KAFKA, ShutdownDeadline],
})
export class InfraModule implements OnModuleInit, OnApplicationShutdown {
  static forRoot(logger: Logger): DynamicModule {
    return {
      module: InfraModule,
      providers: [{ provide: LOGGER, useValue: logger }],
      exports: [LOGGER],
    };
  }

  constructor(
    @Inject(PG_POOL) private readonly pool: Pool,
    @Inject(PG_DIRECT_POOL) private readonly directPool: Pool,
    @Inject(PG_BULK_READER) private readonly bulkReader: PgBulkReader,
    @Inject(PG_LISTENER) private readonly listener: PgListener,
    @Inject(REDIS) private readonly redis: RedisClient,
    @Inject(KAFKA) private readonly kafka: KafkaClients,
    @Inject(LOGGER) private readonly logger: Logger,
    private readonly deadline: ShutdownDeadline,
  ) {}

  async onModuleInit(): Promise<void> {
    // Redis reconnects on its own: wait briefly for it, but an absent Redis must not block the start.
    const connecting = this.redis.connect();
    await withTimeout(connecting, REDIS_START_WAIT_MS, 'redis connect').catch((error: unknown) => {
      this.logger.warn({ err: error }, 'redis not reachable at start, retrying in background');
    });
  }

  async onApplicationShutdown(signal?: string): Promise<void> {
    this.logger.info({ signal }, 'closing clients');
    // Each close waits at most a step, within the shutdown's deadline: a server that answers
    // nothing (a host gone without a reset) would hold it until the kernel gives up on the
    // connection. What is left open ends with the process. Kafka and the stores close at once:
    // neither needs the other by now.
    if (!this.redis.isOpen) this.redis.destroy();
    const closingStores = Promise.all([
      this.redis.isOpen ? this.redis.close().catch(() => undefined) : undefined,
      this.bulkReader.close(),
      this.listener.close(),
      this.pool.end(),
      this.directPool.end(),
    ]);
    await Promise.all([
      this.deadline.wait(this.kafka.close(), 'closing Kafka', this.logger),
      this.deadline.wait(closingStores, 'closing Redis and PostgreSQL', this.logger),
    ]);
    this.logger.info('clients closed');
  }
}
